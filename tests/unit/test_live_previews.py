"""Which preview frames go out: real images only, none over the cap, one per interval per attempt."""

import base64
import io
import os
from itertools import pairwise

import pytest
from PIL import Image

from generation.live_previews import JPEG, PNG, WEBP, PreviewGate, card_sized, data_url, image_type


def _image(format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 9), "teal").save(buffer, format=format)
    return buffer.getvalue()


JPEG_BYTES, PNG_BYTES, WEBP_BYTES = _image("JPEG"), _image("PNG"), _image("WEBP")


def _gate(min_interval: float = 0.5, max_bytes: int = 512 * 1024) -> PreviewGate:
    return PreviewGate(min_interval=min_interval, max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG_BYTES, JPEG),
        (PNG_BYTES, PNG),
        (WEBP_BYTES, WEBP),
        (b"GIF89a" + b"\0" * 20, None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"RIFF\0\0\0\0WAVEfmt ", None),
        (b"\xff\xd8", None),
        (b"", None),
    ],
)
def test_an_image_is_known_by_its_own_bytes(data, expected):
    assert image_type(data) == expected


def test_the_first_frame_goes_out_and_those_within_the_interval_are_dropped():
    gate = _gate(min_interval=0.5)
    assert gate.admit(JPEG_BYTES, now=10.0) == JPEG
    assert gate.admit(JPEG_BYTES, now=10.1) is None
    assert gate.admit(JPEG_BYTES, now=10.49) is None
    assert gate.admit(JPEG_BYTES, now=10.5) == JPEG
    assert gate.admit(JPEG_BYTES, now=10.9) is None
    assert gate.admit(PNG_BYTES, now=11.0) == PNG


def test_frames_a_step_apart_go_out_at_most_once_per_interval():
    gate = _gate(min_interval=0.5)
    steps = [i * 0.083 for i in range(60)]  # 12 steps a second for five seconds
    sent = [now for now in steps if gate.admit(JPEG_BYTES, now=now)]
    assert sent[0] == 0.0
    assert all(later - earlier >= 0.5 for earlier, later in pairwise(sent))
    assert len(sent) == 9  # every seventh step: six come 0.498 s after the last one sent


def test_a_frame_over_the_cap_is_dropped_and_does_not_hold_back_the_next():
    gate = _gate(max_bytes=len(JPEG_BYTES))
    too_big = JPEG_BYTES + b"\0"
    assert gate.admit(too_big, now=0.0) is None
    assert gate.admit(JPEG_BYTES, now=0.01) == JPEG


def test_bytes_that_are_not_an_image_are_dropped_whatever_the_backend_calls_them():
    gate = _gate()
    assert gate.admit(b"<html><script>alert(1)</script></html>", now=0.0) is None
    assert gate.admit(JPEG_BYTES, now=0.01) == JPEG


def test_a_cap_of_zero_lets_nothing_through():
    assert _gate(max_bytes=0).admit(JPEG_BYTES, now=0.0) is None


def test_a_data_url_carries_the_image_unchanged():
    url = data_url(PNG_BYTES, PNG)
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == PNG_BYTES


@pytest.mark.parametrize(("min_interval", "max_bytes"), [(-0.1, 10), (0.5, -1)])
def test_a_negative_interval_or_cap_is_refused(min_interval, max_bytes):
    with pytest.raises(ValueError, match="must not be negative"):
        PreviewGate(min_interval=min_interval, max_bytes=max_bytes)


def _noise_jpeg(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_large_preview_goes_out_at_card_size_as_a_small_jpeg():
    frame = _noise_jpeg(512)
    sized = card_sized(frame, JPEG, max_side=320)
    assert sized is not None
    data, content_type = sized
    assert content_type == JPEG
    with Image.open(io.BytesIO(data)) as image:
        assert max(image.size) == 320
    assert len(data) < len(frame) / 2


def test_a_small_preview_goes_out_as_it_came():
    frame = _noise_jpeg(64)
    assert card_sized(frame, JPEG, max_side=320) == (frame, JPEG)


def test_bytes_that_only_start_like_an_image_are_dropped():
    assert card_sized(b"\xff\xd8\xff" + b"not a picture" * 100, JPEG, max_side=320) is None
