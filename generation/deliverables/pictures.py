"""Reading a final's picture: a still through Pillow, a clip's frames through PyAV, fitted to a box."""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import av
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from generation.deliverables.plan import MAX_IMAGE_PIXELS, BuildError, FinalFile, SceneEntry, open_checked

BLACK = (0, 0, 0)


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The whole picture inside `size`, centred on black (letterboxed or pillarboxed)."""
    image = image.convert("RGB")
    if image.size == size:
        return image
    scale = min(size[0] / image.width, size[1] / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", size, BLACK)
    canvas.paste(
        image.resize(inner, Image.Resampling.LANCZOS), ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2)
    )
    return canvas


def load_still(file: FinalFile, scene: SceneEntry, size: tuple[int, int]) -> Image.Image:
    with open_checked(file, scene) as handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(handle)
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise BuildError(
                        f"{scene.label}: its image is {image.width}x{image.height}, "
                        f"more than the {MAX_IMAGE_PIXELS:,} pixels a deliverable draws"
                    )
                image.draft("RGB", size)
                image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning, SyntaxError) as exc:
            raise BuildError(f"{scene.label}: its image {file.name} cannot be decoded ({exc})") from None
        return fit(image, size)


def clip_frames(
    file: FinalFile, scene: SceneEntry, size: tuple[int, int]
) -> Generator[tuple[float, Image.Image]]:
    """(time in seconds, fitted frame) for each frame of a clip, decoded as they are asked for."""
    handle = open_checked(file, scene)
    try:
        try:
            container: Any = av.open(handle, mode="r")
        except av.FFmpegError as exc:
            raise BuildError(f"{scene.label}: its clip {file.name} cannot be decoded ({exc})") from None
        with container:
            if not container.streams.video:
                raise BuildError(f"{scene.label}: its clip {file.name} has no video stream")
            stream = container.streams.video[0]
            count = 0
            try:
                for frame in container.decode(stream):
                    count += 1
                    yield float(frame.time or 0.0), fit(frame.to_image(), size)
            except av.FFmpegError as exc:
                raise BuildError(f"{scene.label}: its clip {file.name} cannot be decoded ({exc})") from None
            if count == 0:
                raise BuildError(f"{scene.label}: its clip {file.name} holds no frames")
    finally:
        handle.close()


def first_picture(scene: SceneEntry, size: tuple[int, int]) -> Image.Image:
    """The scene's still, or the first frame of its clip."""
    file = scene.picture
    if file.is_clip:
        frames = clip_frames(file, scene, size)
        try:
            return next(frames)[1]
        finally:
            frames.close()
    return load_still(file, scene, size)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def burn_title(image: Image.Image, text: str) -> Image.Image:
    """The text on a dark band along the bottom of a copy of the picture."""
    framed = image.copy()
    draw = ImageDraw.Draw(framed)
    face = font(max(14, image.height // 24))
    _left, top, _right, bottom = draw.textbbox((0, 0), text, font=face)
    pad = max(6, image.height // 90)
    band_top = image.height - (bottom - top) - 3 * pad
    draw.rectangle((0, band_top, image.width, image.height), fill=(0, 0, 0))
    draw.text((2 * pad, band_top + pad - top), text, font=face, fill=(255, 255, 255))
    return framed
