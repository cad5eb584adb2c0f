"""Pillow drawing: storyboard frames, sampler previews and PNG files."""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import json
import pathlib
import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

# (caption, image) pairs: the init, control or reference images that steered a frame.
Thumbnail = tuple[str, Image.Image]


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(6, size))


def _palette(seed: int | None) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A background/ink pair that depends only on the seed, so reruns look the same."""
    digest = hashlib.sha256(str(seed).encode()).digest()
    hue = digest[0] / 255.0
    background = colorsys.hsv_to_rgb(hue, 0.35, 0.30)
    ink = colorsys.hsv_to_rgb(hue, 0.10, 0.97)
    return _rgb(background), _rgb(ink)


def _rgb(color: tuple[float, float, float]) -> tuple[int, int, int]:
    red, green, blue = color
    return int(red * 255), int(green * 255), int(blue * 255)


def draw_storyboard_frame(
    width: int,
    height: int,
    label: str,
    seed: int | None,
    node_id: str | None,
    frame_index: int = 0,
    frame_count: int = 1,
    thumbnails: Sequence[Thumbnail] = (),
) -> Image.Image:
    """One labelled storyboard frame: the prompt text, seed, size and sampler node.

    Thumbnails of the guiding images sit along the bottom right; frames of a
    clip (frame_count > 1) get a marker that travels across, so the clip visibly moves.
    """
    background, ink = _palette(seed)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    short_side = min(width, height)
    margin = max(1, short_side // 24)
    draw.rectangle(
        (margin, margin, width - 1 - margin, height - 1 - margin), outline=ink, width=max(1, margin // 3)
    )

    caption_size = max(6, short_side // 24)
    caption = f"seed {seed} · {width}x{height}"
    if node_id is not None:
        caption += f" · node {node_id}"
    if frame_count > 1:
        caption += f" · {frame_index + 1}/{frame_count}"
    caption_font = _font(caption_size)
    draw.text((margin * 2, height - margin * 2 - caption_size), caption, fill=ink, font=caption_font)

    text_size = max(6, short_side // 14)
    text_font = _font(text_size)
    chars_per_line = max(8, int((width - 4 * margin) / (text_size * 0.6)))
    lines = textwrap.wrap(label or "(no prompt)", width=chars_per_line)
    max_lines = max(1, (height - 6 * margin - caption_size) // (text_size + 2))
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: chars_per_line - 1] + "…"]
    y = margin * 3
    for line in lines:
        draw.text((margin * 2, y), line, fill=ink, font=text_font)
        y += text_size + 2
    if frame_count > 1:
        _draw_motion_marker(draw, width, height, margin, ink, frame_index, frame_count)
    if thumbnails:
        _paste_thumbnails(image, thumbnails, margin, caption_size, ink)
    return image


def _draw_motion_marker(
    draw: ImageDraw.ImageDraw,
    width: int,
    height: int,
    margin: int,
    ink: tuple[int, int, int],
    frame_index: int,
    frame_count: int,
) -> None:
    radius = max(1, min(width, height) // 20)
    travel = max(0, width - 2 * (margin * 3 + radius))
    x = margin * 3 + radius + travel * frame_index // max(1, frame_count - 1)
    y = height // 2
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)


def _paste_thumbnails(
    image: Image.Image,
    thumbnails: Sequence[Thumbnail],
    margin: int,
    caption_size: int,
    ink: tuple[int, int, int],
) -> None:
    # Each thumbnail gets at most a quarter of the short side, so the prompt text stays readable.
    box = max(4, min(image.width, image.height) // 4)
    draw = ImageDraw.Draw(image)
    font = _font(max(6, caption_size * 3 // 4))
    right = image.width - margin * 2
    bottom = image.height - margin * 3 - caption_size
    for caption, source in thumbnails:
        # contain() also enlarges, so a small reference image still reads as a picture.
        thumb = ImageOps.contain(source.convert("RGB"), (box, box))
        text = caption[:24]
        slot = max(thumb.width, int(draw.textlength(text, font=font)))
        left, top = right - thumb.width, bottom - thumb.height
        if right - slot < margin or top - caption_size < margin:
            break
        image.paste(thumb, (left, top))
        draw.rectangle((left - 1, top - 1, right, bottom), outline=ink)
        draw.text((right, top - 2), text, fill=ink, font=font, anchor="rd")
        right -= slot + margin * 2


def draw_sampler_preview(
    width: int, height: int, label: str, seed: int | None, step: int, steps: int, max_size: int
) -> bytes:
    """A JPEG in the shape latent2rgb sends: the latent grid scaled to fit max_size.

    It is drawn straight at the preview size (cheaper than drawing the full
    frame and scaling it) and fades in from noise as the steps pass.
    """
    latent_w, latent_h = max(1, width // 8), max(1, height // 8)
    scale = min(max_size / latent_w, max_size / latent_h)
    size = (max(1, round(latent_w * scale)), max(1, round(latent_h * scale)))
    frame = draw_storyboard_frame(size[0], size[1], label, seed, None)
    noise = Image.effect_noise(size, 64).convert("RGB")
    preview = Image.blend(noise, frame, max(0.0, min(1.0, step / max(1, steps))))
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def save_png(
    image: Image.Image, path: pathlib.Path, text_chunks: dict[str, str], compress_level: int
) -> None:
    info = PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    image.save(path, pnginfo=info, compress_level=compress_level)


def save_animated_webp(
    images: Sequence[Image.Image],
    path: pathlib.Path,
    exif_entries: dict[int, str],
    fps: float,
    lossless: bool,
    quality: int,
    method: int,
) -> None:
    """An animated WEBP as ComfyUI's SaveAnimatedWEBP writes it, metadata in EXIF tags."""
    exif = images[0].getexif()
    for tag, value in exif_entries.items():
        exif[tag] = value
    images[0].save(
        path,
        save_all=True,
        duration=int(1000.0 / fps),
        append_images=list(images[1:]),
        exif=exif,
        lossless=lossless,
        quality=quality,
        method=method,
    )


def save_animated_png(
    images: Sequence[Image.Image],
    path: pathlib.Path,
    text_chunks: dict[str, str],
    fps: float,
    compress_level: int,
) -> None:
    info = PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    images[0].save(
        path,
        pnginfo=info,
        compress_level=compress_level,
        save_all=True,
        duration=int(1000.0 / fps),
        append_images=list(images[1:]),
    )


def storyboard_chunk(label: str, seed: int | None, width: int, height: int) -> str:
    return json.dumps({"label": label, "seed": seed, "width": width, "height": height})
