"""The audio nodes: EmptyAudio and the save nodes, which write real FLAC, MP3 and Opus files.

ComfyUI reports saved audio under `audio` (not `images`), one file per batch item, named
`{prefix}_{counter:05}_.{format}`; PreviewAudio writes FLAC to the temp folder.
"""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any

from . import media, paths
from .nodebase import NodeContext, NodeResult, NodeType, prompt_metadata
from .values import Audio

# Longest silence EmptyAudio makes here, so a workflow cannot fill the disk with it.
_MAX_SECONDS = 600.0


async def _empty_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    duration, sample_rate, channels = inputs["duration"], inputs["sample_rate"], inputs["channels"]
    if duration > _MAX_SECONDS:
        raise RuntimeError(
            f"storyboard preview refuses {duration:g} s of audio: more than {_MAX_SECONDS:g} s"
        )
    if sample_rate < 1:
        # torch would make an empty tensor; encoding it then fails in the save node.
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    return NodeResult(
        (Audio(sample_rate=sample_rate, channels=channels, samples=round(duration * sample_rate)),)
    )


async def _write_audio(
    ctx: NodeContext, audio: Audio, prefix: str, folder_type: str, audio_format: str, quality: str
) -> NodeResult:
    base = paths.folder_for_type(ctx.settings, folder_type)
    assert base is not None
    metadata = prompt_metadata(ctx)

    def write() -> list[dict[str, str]]:
        folder, stem, counter, subfolder = paths.save_image_path(prefix, base, 0, 0)
        body = media.encode_audio(audio, audio_format, quality, metadata)
        name = f"{stem.replace('%batch_num%', '0')}_{counter:05}_.{audio_format}"
        (folder / name).write_bytes(body)
        return [{"filename": name, "subfolder": subfolder, "type": folder_type}]

    try:
        results = await asyncio.to_thread(write)
    except paths.UnsafePathError as exc:
        # ComfyUI raises a bare Exception here; keep the type so error messages match.
        raise Exception(str(exc)) from None
    return NodeResult((), {"audio": results})


async def _save_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _write_audio(ctx, inputs["audio"], inputs["filename_prefix"], "output", "flac", "128k")


async def _save_audio_mp3(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _write_audio(
        ctx, inputs["audio"], inputs["filename_prefix"], "output", "mp3", inputs["quality"]
    )


async def _save_audio_opus(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return await _write_audio(
        ctx, inputs["audio"], inputs["filename_prefix"], "output", "opus", inputs["quality"]
    )


async def _preview_audio(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    # ComfyUI appends `_temp_` and five letters, picked once per node object, to "ComfyUI".
    suffix = ctx.state.setdefault(
        "temp_suffix", "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    )
    return await _write_audio(ctx, inputs["audio"], f"ComfyUI_temp_{suffix}", "temp", "flac", "128k")


NODE_TYPES = (
    NodeType("SaveAudio", _save_audio),
    NodeType("SaveAudioMP3", _save_audio_mp3),
    NodeType("SaveAudioOpus", _save_audio_opus),
    NodeType("PreviewAudio", _preview_audio),
    NodeType("EmptyAudio", _empty_audio),
)
