"""Checks that a fetched output is a complete, decodable image. Pure Python, no Django."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from generation.providers.base import ErrorCode, ProviderError

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int
    content_type: str
    extension: str
    frames: int = 1


def expected_frames(workflow: dict[str, Any]) -> int | None:
    """Frames a video workflow asks for (SVD's video_frames), or None for stills."""
    counts = [
        node["inputs"]["video_frames"]
        for node in workflow.values()
        if isinstance(node, dict)
        and isinstance(node.get("inputs"), dict)
        and isinstance(node["inputs"].get("video_frames"), int)
    ]
    return max(counts) if counts else None


def inspect_image(
    path: Path | IO[bytes], *, max_pixels: int, label: str, frames: int | None = None
) -> ImageFacts:
    """Decode the whole image once (every frame of an animation); raise OUTPUT_INVALID naming
    the output on any problem. A file that may still be being written (truncated, or fewer
    frames than `frames`) says so in the error's detail as `incomplete`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ProviderError(
                        ErrorCode.OUTPUT_INVALID,
                        f"output {label} is {width}x{height}, above the limit of {max_pixels} pixels",
                    )
                fmt = image.format or ""
                found = getattr(image, "n_frames", 1)
                for frame in range(found):
                    image.seek(frame)
                    image.load()  # decodes every byte: a truncated file fails here
    except ProviderError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} is not a usable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is damaged or incomplete: {exc}",
            detail={"incomplete": True},
        ) from exc
    if not _ends_whole(path, fmt):
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is incomplete: its {fmt} file stops before its last chunk",
            detail={"incomplete": True},
        )
    if frames is not None and found < frames:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} has {found} of the {frames} frames the workflow asks for",
            detail={"incomplete": True},
        )
    if fmt not in CONTENT_TYPES:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID, f"output {label} is a {fmt or 'unknown'} file, not PNG/JPEG/WEBP/GIF"
        )
    if width < 1 or height < 1:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} has no pixels")
    return ImageFacts(
        format=fmt,
        width=width,
        height=height,
        content_type=CONTENT_TYPES[fmt],
        extension=EXTENSIONS[fmt],
        frames=found,
    )


# How each format's last bytes look when the file is whole. Pillow decodes a PNG that
# lacks its IEND chunk without complaint, so a file still being written could pass.
_TRAILERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9", "GIF": b"\x3b"}


def _ends_whole(path: Path | IO[bytes], fmt: str) -> bool:
    with open(path, "rb") if isinstance(path, Path) else contextlib.nullcontext(path) as handle:
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        if fmt == "WEBP":
            handle.seek(4)
            declared = int.from_bytes(handle.read(4), "little")
            return declared + 8 == size  # RIFF: the header gives the length of the rest
        trailer = _TRAILERS.get(fmt)
        if trailer is None:
            return True
        # Written last, so absent while the file grows; some writers pad a little after it.
        handle.seek(max(0, size - 1024))
        return trailer in handle.read()
