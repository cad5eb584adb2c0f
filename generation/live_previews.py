"""Which of a backend's preview frames reach the browsers watching a render.

A backend sends a preview with every sampler step (ComfyUI's binary frames), far more often
than a card can show them, and the content type it names is only its word. `PreviewGate`,
one per attempt, lets a frame through only when it is a JPEG, PNG or WEBP by its own bytes,
no larger than the cap, and at least the interval after the last one let through; the rest
are dropped, not queued: a newer frame follows soon enough.

Pure: no Django and no clock of its own; callers pass `now` (any monotonic seconds).
"""

from __future__ import annotations

import base64
import io

from PIL import Image

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"


def image_type(data: bytes) -> str | None:
    """The image's type by its magic bytes (JPEG, PNG or WEBP), or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


# Frames the size a card shows: one frame goes to every socket on the brief, so its bytes count
# many times over. A frame already this small is sent as it came.
SMALL_ENOUGH_BYTES = 48 * 1024
MAX_DECODE_PIXELS = 4096 * 4096


def card_sized(data: bytes, content_type: str, *, max_side: int) -> tuple[bytes, str] | None:
    """The frame scaled down to at most `max_side` pixels a side, as a JPEG; None when it does not
    decode as the image it claims to be (or is absurdly large), so that it is dropped."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_DECODE_PIXELS:
                return None
            if max(width, height) <= max_side and len(data) <= SMALL_ENOUGH_BYTES:
                image.verify()
                return data, content_type
            image.draft("RGB", (max_side, max_side))  # JPEG decodes at a fraction of its size
            picture = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    picture.thumbnail((max_side, max_side))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=75)
    return out.getvalue(), JPEG


def data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


class PreviewGate:
    """One attempt's preview frames: real images only, none over `max_bytes`, one per `min_interval`."""

    def __init__(self, *, min_interval: float, max_bytes: int) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must not be negative, not {min_interval}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        self.min_interval = min_interval
        self.max_bytes = max_bytes
        self.last_sent: float | None = None

    def admit(self, data: bytes, *, now: float) -> str | None:
        """The frame's content type when it goes out now, else None (dropped).

        A frame refused for its size or bytes leaves the interval as it was, so the next good
        one is not held back by it."""
        if self.last_sent is not None and now - self.last_sent < self.min_interval:
            return None
        if len(data) > self.max_bytes:
            return None
        found = image_type(data)
        if found is None:
            return None
        self.last_sent = now
        return found
