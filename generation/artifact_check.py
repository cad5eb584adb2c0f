"""Checks that a fetched output is complete and decodes, by what it is. Pure Python, no Django.

Stills and animated images (PNG, APNG, JPEG, WEBP, GIF) are decoded with Pillow; video (MP4,
WEBM) and audio (FLAC, MP3, Opus) with PyAV. The file's own bytes decide what it is: ComfyUI
reports animated images and videos alike, as `{"images": [...], "animated": [true]}`.
"""

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
    # The sum of an animation's frame durations (Pillow's `duration`, in ms); 0 for a still.
    duration_ms: int = 0


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
                duration_ms = 0
                for frame in range(found):
                    image.seek(frame)
                    image.load()  # decodes every byte: a truncated file fails here
                    if found > 1:
                        duration_ms += int(image.info.get("duration") or 0)
    except ProviderError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProviderError(ErrorCode.OUTPUT_INVALID, f"output {label} is not a usable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
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
        duration_ms=duration_ms,
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


# -- every output kind ------------------------------------------------------------------------
KINDS = ("image", "animated", "video", "audio")
# How each still or animated image format starts; anything else is opened as video or audio.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
# How the containers ComfyUI saves video and audio in start: a file that starts like one of
# these but does not open is damaged or still being written, not something else.
_MEDIA_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"fLaC", b"OggS", b"ID3")
# Seconds a decoded stream may fall short of the length its header declares (encoder delay
# and padding, an Opus pre-skip) before it counts as cut short.
_AUDIO_SLACK_S = 0.03


@dataclass(frozen=True)
class OutputFacts:
    """What a checked output is: its kind (image, animated, video, audio), its format, and what
    a card needs to show it."""

    kind: str
    format: str
    content_type: str
    extension: str
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration_s: float | None = None


def inspect_output(
    path: Path, *, max_pixels: int, label: str, frames: int | None = None, hint: str = "image"
) -> OutputFacts:
    """Check one fetched output by what its bytes are, and raise OUTPUT_INVALID naming it on any
    problem (`incomplete` in the detail where it may still be being written).

    `hint` is the kind the backend reported; the content decides. `frames` (what the workflow
    asks for) applies to animations and video only.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(_IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        moving = hint in ("animated", "video")
        image = inspect_image(path, max_pixels=max_pixels, label=label, frames=frames if moving else None)
        animated = image.frames > 1
        return OutputFacts(
            kind="animated" if animated else "image",
            format=image.format,
            content_type=image.content_type,
            extension=image.extension,
            width=image.width,
            height=image.height,
            frames=image.frames,
            duration_s=round(image.duration_ms / 1000, 3) if animated and image.duration_ms else None,
        )
    mp3_sync = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    looks_like_media = (
        hint in ("video", "audio") or head[4:8] == b"ftyp" or head.startswith(_MEDIA_SIGNATURES) or mp3_sync
    )
    if not looks_like_media:
        # FFmpeg would open nearly anything (as text for a terminal, say): only known starts go on.
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is not a usable image, video or audio file (it starts with {head[:8].hex()})",
        )
    return _inspect_media(path, max_pixels=max_pixels, label=label, frames=frames)


def _inspect_media(path: Path, *, max_pixels: int, label: str, frames: int | None) -> OutputFacts:
    import av  # PyAV loads FFmpeg's libraries: only where a video or audio file is checked

    mp4_problem = _mp4_problem(path)
    if mp4_problem:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is incomplete: {mp4_problem}",
            detail={"incomplete": True},
        )
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            stream = video or audio
            if stream is None:
                raise ProviderError(
                    ErrorCode.OUTPUT_INVALID, f"output {label} has neither a video nor an audio stream"
                )
            container_name = container.format.name
            codec = stream.codec_context.name
            if video is not None and video.width * video.height > max_pixels:
                raise ProviderError(
                    ErrorCode.OUTPUT_INVALID,
                    f"output {label} is {video.width}x{video.height}, above the limit of {max_pixels} pixels",
                )
            declared_frames = int(stream.frames or 0)
            declared_s = _declared_seconds(stream, container)
            decoded, end_s, step_s = _decode_all(container, stream)
    except ProviderError:
        raise
    except (av.error.FFmpegError, OSError, EOFError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is damaged or incomplete: decoding it stopped with {reason!r}",
            detail={"incomplete": True},
        ) from exc
    kind = "video" if video is not None else "audio"
    fmt, content_type, extension = _media_format(container_name, codec, kind)
    if not fmt:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is a {container_name} file with {codec}, not MP4/WEBM video or FLAC/MP3/Opus audio",
        )
    if decoded == 0:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} has no {kind} frame that decodes",
            detail={"incomplete": True},
        )
    if declared_frames and decoded < declared_frames:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} decodes {decoded} of the {declared_frames} frames its {fmt} header declares",
            detail={"incomplete": True},
        )
    slack = max(step_s / 2, 0.01) if kind == "video" else _AUDIO_SLACK_S
    if declared_s and end_s + slack < declared_s:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} stops after {end_s:.3f} s of the {declared_s:.3f} s its {fmt} header declares",
            detail={"incomplete": True},
        )
    if fmt == "OPUS" and not _ogg_ends_whole(path):
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} is incomplete: its Ogg stream has no last page",
            detail={"incomplete": True},
        )
    if kind == "video" and frames is not None and decoded < frames:
        raise ProviderError(
            ErrorCode.OUTPUT_INVALID,
            f"output {label} has {decoded} of the {frames} frames the workflow asks for",
            detail={"incomplete": True},
        )
    return OutputFacts(
        kind=kind,
        format=fmt,
        content_type=content_type,
        extension=extension,
        width=video.width if video is not None else None,
        height=video.height if video is not None else None,
        frames=decoded if kind == "video" else None,
        duration_s=round(end_s, 3),
    )


def _declared_seconds(stream: Any, container: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _decode_all(container: Any, stream: Any) -> tuple[int, float, float]:
    """Decode every frame of `stream`: (frames decoded, where the last one ends in seconds, the
    length of the last frame). The last frame is converted to pixels, so it surely decodes."""
    count = 0
    last = None
    for packet in container.demux(stream):
        for frame in packet.decode():
            count += 1
            last = frame
    if last is None:
        return 0, 0.0, 0.0
    if stream.type == "video":
        last.reformat(format="rgb24")
        step = float((last.duration or 0) * last.time_base) if last.time_base else 0.0
        if not step and stream.average_rate:
            step = float(1 / stream.average_rate)
    else:
        step = last.samples / last.sample_rate if last.sample_rate else 0.0
    start = float(last.pts * last.time_base) if last.pts is not None and last.time_base else 0.0
    return count, start + step, step


def _media_format(container_name: str, codec: str, kind: str) -> tuple[str, str, str]:
    """(format, content type, extension) of a container PyAV opened; empty where the studio does
    not keep that kind of file."""
    names = set(container_name.split(","))
    if "mp4" in names:
        return ("MP4", "video/mp4", "mp4") if kind == "video" else ("MP4", "audio/mp4", "m4a")
    if "webm" in names and codec in ("vp8", "vp9", "av1", "libdav1d", "libvpx-vp9", "opus", "vorbis"):
        return ("WEBM", "video/webm", "webm") if kind == "video" else ("WEBM", "audio/webm", "webm")
    if kind == "audio" and "flac" in names:
        return "FLAC", "audio/flac", "flac"
    if kind == "audio" and "mp3" in names:
        return "MP3", "audio/mpeg", "mp3"
    if kind == "audio" and "ogg" in names and codec in ("opus", "libopus"):
        return "OPUS", "audio/ogg", "opus"
    return "", "", ""


def _mp4_problem(path: Path) -> str:
    """Why an MP4 is not whole, read from its top-level boxes; "" when it is (or is not an MP4).
    A writer fills the index (`moov`) in last, so a file still being written has none, or ends
    inside a box."""
    with open(path, "rb") as handle:
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        handle.seek(0)
        head = handle.read(8)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return ""
        offset, seen = 0, list[str]()
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return f"its MP4 stops inside a box header at byte {offset} of {size}"
            length = int.from_bytes(header[:4], "big")
            box = header[4:8].decode("latin-1")
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                length = size - offset  # the last box runs to the end of the file
            if length < 8:
                return f"its MP4 has a box of impossible length {length} at byte {offset}"
            if offset + length > size:
                return (
                    f"its MP4 stops inside its {box!r} box "
                    f"({size - offset} of its {length} bytes are there)" + _moov_note(box, seen)
                )
            seen.append(box)
            offset += length
        if "moov" not in seen:
            return "its MP4 has no index (moov box), which a writer adds last"
        return ""


def _moov_note(box: str, seen: list[str]) -> str:
    if "moov" in seen:
        return ""
    if box == "moov":
        return "; its index (moov), written last, is cut short"
    return "; its index (moov), written last, is missing"


def _ogg_ends_whole(path: Path) -> bool:
    """Whether the last Ogg page carries the end-of-stream flag (written last)."""
    with open(path, "rb") as handle:
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65_536))
        tail = handle.read()
    at = tail.rfind(b"OggS")
    return at >= 0 and len(tail) > at + 5 and bool(tail[at + 5] & 0x04)
