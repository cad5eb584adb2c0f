"""Pillow drawing: storyboard frames, sampler previews and PNG files."""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import json
import pathlib
import textwrap

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo


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
) -> Image.Image:
    """One labelled storyboard frame: the prompt text, seed, size and sampler node."""
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
    return image


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


def storyboard_chunk(label: str, seed: int | None, width: int, height: int) -> str:
    return json.dumps({"label": label, "seed": seed, "width": width, "height": height})
