"""Video and audio files written with PyAV, the way ComfyUI's save nodes write them.

SaveVideo writes H.264 in MP4 with the prompt as metadata tags, SaveWEBM VP9 (or AV1) with a
constant-quality crf, SaveAudio and its MP3/Opus siblings one file per batch item.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import cast

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image

from .values import Audio

# ComfyUI resamples Opus to the next rate the codec supports.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# Silence is encoded a second at a time, so a long clip never sits in memory whole.
_AUDIO_CHUNK_SECONDS = 1


def _frame_rate(fps: float) -> Fraction:
    return Fraction(round(fps * 1000), 1000)


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def _silence(audio: Audio, sample_rate: int) -> Iterator[av.AudioFrame]:
    """The clip as float frames of at most a second each, with running timestamps."""
    total = round(audio.samples * sample_rate / audio.sample_rate) if audio.sample_rate else 0
    layout = _layout(audio.channels)
    done = 0
    while done < total:
        count = min(total - done, sample_rate * _AUDIO_CHUNK_SECONDS)
        frame = av.AudioFrame(format="flt", layout=layout, samples=count)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = sample_rate
        frame.pts = done
        done += count
        yield frame


def write_video(
    path: pathlib.Path,
    frames: Sequence[Image.Image],
    fps: float,
    *,
    container_format: str,
    codec: str,
    metadata: dict[str, str],
    crf: float | None = None,
    audio: Audio | None = None,
) -> None:
    options = {"movflags": "use_metadata_tags"} if container_format == "mp4" else {}
    with av.open(str(path), mode="w", format=container_format, options=options) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        stream = cast(VideoStream, container.add_stream(codec, rate=_frame_rate(fps)))
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p10le" if codec == "libsvtav1" else "yuv420p"
        if crf is not None:
            stream.bit_rate = 0
            stream.options = {"crf": str(crf)}
            if codec == "libsvtav1":
                stream.options["preset"] = "6"
        sound = None
        if audio is not None:
            sound = cast(
                AudioStream,
                container.add_stream("aac", rate=audio.sample_rate, layout=_layout(audio.channels)),
            )
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                container.mux(packet)
        container.mux(stream.encode())
        if sound is not None and audio is not None:
            # The track is cut to the clip, as ComfyUI's VideoFromComponents does.
            clip = Audio(
                audio.sample_rate,
                audio.channels,
                min(audio.samples, round(len(frames) / fps * audio.sample_rate)),
            )
            for chunk in _silence(clip, audio.sample_rate):
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))


def encode_audio(audio: Audio, audio_format: str, quality: str, metadata: dict[str, str]) -> bytes:
    """One batch item as FLAC, MP3 or Opus bytes (ComfyUI encodes in memory, then writes)."""
    sample_rate = audio.sample_rate
    if audio_format == "opus" and sample_rate not in OPUS_RATES:
        sample_rate = next((rate for rate in OPUS_RATES if rate > sample_rate), 48000)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=audio_format) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        layout = _layout(audio.channels)
        if audio_format == "opus":
            stream = cast(AudioStream, container.add_stream("libopus", rate=sample_rate, layout=layout))
            stream.bit_rate = int(quality.removesuffix("k")) * 1000
        elif audio_format == "mp3":
            stream = cast(AudioStream, container.add_stream("libmp3lame", rate=sample_rate, layout=layout))
            if quality == "V0":
                stream.codec_context.qscale = True
            else:
                stream.bit_rate = int(quality.removesuffix("k")) * 1000
        else:
            stream = cast(AudioStream, container.add_stream("flac", rate=sample_rate, layout=layout))
        for frame in _silence(audio, sample_rate):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
