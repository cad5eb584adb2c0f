"""Checks that a fetched output is a complete, decodable image. Pure Python, no Django."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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


def inspect_image(path: Path | IO[bytes], *, max_pixels: int, label: str) -> ImageFacts:
    """Decode the whole image once; raise OUTPUT_INVALID naming the output on any problem."""
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
                image.load()  # decodes every byte: a truncated file fails here
    except ProviderError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} is not a usable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID, f"output {label} is damaged or incomplete: {exc}"
        ) from exc
    if fmt not in CONTENT_TYPES:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID, f"output {label} is a {fmt or 'unknown'} file, not PNG/JPEG/WEBP/GIF"
        )
    if width < 1 or height < 1:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} has no pixels")
    return ImageFacts(
        format=fmt, width=width, height=height, content_type=CONTENT_TYPES[fmt], extension=EXTENSIONS[fmt]
    )
