"""Stable Video Diffusion, the animated save nodes and the video nodes.

SVD_img2vid_Conditioning turns its video_frames into the latent batch size, so
KSampler and VAEDecode produce one storyboard frame per video frame, and
SaveAnimatedWEBP writes them as one clip, reported the way ComfyUI does.
CreateVideo, SaveVideo (H.264 MP4) and SaveWEBM (VP9 or AV1) write real video
files with PyAV; ComfyUI reports them like animations, under `images` with
`animated: [true]`.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any

from . import frames, media, paths
from .nodebase import NodeContext, NodeResult, NodeType, check_size, prompt_metadata
from .values import Audio, Checkpoint, Conditioning, Guide, ImageBatch, Latent, ModelFile, Video

# The encoders ComfyUI's SaveWEBM picks for its `codec` choices.
_WEBM_CODECS = {"vp9": "libvpx-vp9", "av1": "libsvtav1"}
# ComfyUI's SaveAnimatedWEBP maps these names to Pillow's WEBP `method`.
_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}
# The EXIF tags ComfyUI writes: Model (0x0110) holds the prompt, extra_pnginfo counts down from Make.
_EXIF_PROMPT_TAG = 0x0110
_EXIF_FIRST_EXTRA_TAG = 0x010F


async def _image_only_checkpoint_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    name = inputs["ckpt_name"]
    return NodeResult((Checkpoint("MODEL", name), ModelFile("CLIP_VISION", name), Checkpoint("VAE", name)))


async def _svd_img2vid_conditioning(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    width, height, video_frames = inputs["width"], inputs["height"], inputs["video_frames"]
    check_size(ctx.settings, width, height, video_frames)
    init: ImageBatch = inputs["init_image"]
    label = (
        f"image to video: {video_frames} frames at {inputs['fps']} fps, motion {inputs['motion_bucket_id']}"
    )
    positive = Conditioning(label, (Guide("init frame", init.frames[0]),))
    # SVD's negative is the same conditioning zeroed out: nothing to show.
    negative = Conditioning("")
    return NodeResult((positive, negative, Latent(width=width, height=height, batch_size=video_frames)))


async def _video_linear_cfg_guidance(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((inputs["model"],))


def _exif_entries(ctx: NodeContext) -> dict[int, str]:
    metadata = prompt_metadata(ctx)
    entries = {_EXIF_PROMPT_TAG: f"prompt:{metadata.pop('prompt')}"}
    for offset, (key, value) in enumerate(metadata.items()):
        entries[_EXIF_FIRST_EXTRA_TAG - offset] = f"{key}:{value}"
    return entries


async def _save_animated(
    ctx: NodeContext, images: ImageBatch, prefix: str, extension: str, write: Callable[[pathlib.Path], None]
) -> list[dict[str, str]]:
    base = ctx.settings.output_dir

    def save() -> list[dict[str, str]]:
        folder, stem, counter, subfolder = paths.save_image_path(prefix, base, images.width, images.height)
        name = f"{stem}_{counter:05}_.{extension}"
        write(folder / name)
        return [{"filename": name, "subfolder": subfolder, "type": "output"}]

    try:
        return await asyncio.to_thread(save)
    except paths.UnsafePathError as exc:
        # ComfyUI raises a bare Exception here; keep the type so error messages match.
        raise Exception(str(exc)) from None


async def _save_animated_webp(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images: ImageBatch = inputs["images"]
    exif = _exif_entries(ctx)

    def write(path: pathlib.Path) -> None:
        frames.save_animated_webp(
            images.frames,
            path,
            exif,
            inputs["fps"],
            inputs["lossless"],
            inputs["quality"],
            _WEBP_METHODS[inputs["method"]],
        )

    results = await _save_animated(ctx, images, inputs["filename_prefix"], "webp", write)
    # ComfyUI reports a single-frame batch as not animated.
    return NodeResult((), {"images": results, "animated": [len(images.frames) != 1]})


async def _save_animated_png(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images: ImageBatch = inputs["images"]
    chunks = prompt_metadata(ctx)

    def write(path: pathlib.Path) -> None:
        frames.save_animated_png(images.frames, path, chunks, inputs["fps"], inputs["compress_level"])

    results = await _save_animated(ctx, images, inputs["filename_prefix"], "png", write)
    return NodeResult((), {"images": results, "animated": [True]})


async def _create_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    audio: Audio | None = inputs.get("audio")
    return NodeResult((Video(inputs["images"], float(inputs["fps"]), audio),))


async def _save_video(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    video: Video = inputs["video"]
    # "auto" means MP4 with H.264: the only container and codec this ComfyUI offers.
    metadata = prompt_metadata(ctx)

    def write(path: pathlib.Path) -> None:
        media.write_video(
            path,
            video.images.frames,
            video.fps,
            container_format="mp4",
            codec="h264",
            metadata=metadata,
            audio=video.audio,
        )

    results = await _save_animated(ctx, video.images, inputs["filename_prefix"], "mp4", write)
    return NodeResult((), {"images": results, "animated": [True]})


async def _save_webm(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    images: ImageBatch = inputs["images"]
    metadata = prompt_metadata(ctx)

    def write(path: pathlib.Path) -> None:
        media.write_video(
            path,
            images.frames,
            inputs["fps"],
            container_format="webm",
            codec=_WEBM_CODECS[inputs["codec"]],
            metadata=metadata,
            crf=inputs["crf"],
        )

    results = await _save_animated(ctx, images, inputs["filename_prefix"], "webm", write)
    return NodeResult((), {"images": results, "animated": [True]})


NODE_TYPES = (
    NodeType(
        "ImageOnlyCheckpointLoader",
        _image_only_checkpoint_loader,
        # Like ComfyUI, this loader lists the same checkpoints folder as CheckpointLoaderSimple.
        choices=(("ckpt_name", lambda s: s.checkpoints),),
    ),
    NodeType("SVD_img2vid_Conditioning", _svd_img2vid_conditioning),
    NodeType("VideoLinearCFGGuidance", _video_linear_cfg_guidance),
    NodeType("SaveAnimatedWEBP", _save_animated_webp),
    NodeType("SaveAnimatedPNG", _save_animated_png),
    NodeType("CreateVideo", _create_video),
    NodeType("SaveVideo", _save_video),
    NodeType("SaveWEBM", _save_webm),
)
