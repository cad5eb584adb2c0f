"""Nodes that steer or transform images: img2img encoding, ControlNet, CLIP vision and model upscaling.

Models are never loaded: a loader passes its file name on, and the nodes that
use an image remember it as a Guide so the final frame can show it.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
from typing import Any

from PIL import Image

from .nodebase import NodeContext, NodeResult, NodeRunner, NodeType, check_size
from .values import Conditioning, Guide, ImageBatch, Latent, ModelFile, Provenance

_SCALE_IN_NAME = re.compile(r"(?<![a-z0-9])x(\d+)|(?<![a-z0-9])(\d+)x(?![a-z])")
# Most upscale models are 4x; a name without a factor in it is assumed to be one.
_DEFAULT_UPSCALE = 4


def upscale_factor(model_name: str) -> int:
    """The scale an upscale model applies, read from its file name (RealESRGAN_x4plus, 4x-UltraSharp)."""
    match = _SCALE_IN_NAME.search(pathlib.PurePath(model_name).stem.lower())
    if match is None:
        return _DEFAULT_UPSCALE
    return max(1, int(match.group(1) or match.group(2)))


def _short_model_name(name: str) -> str:
    """`control_v11p_sd15_openpose.pth` -> `openpose`: enough to tell guides apart in a thumbnail caption."""
    return pathlib.PurePath(name).stem.rsplit("_", 1)[-1]


def _loader(kind: str, input_name: str) -> NodeRunner:
    async def run(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
        return NodeResult((ModelFile(kind, inputs[input_name]),))

    return run


async def _vae_encode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    pixels: ImageBatch = inputs["pixels"]
    # The VAE crops to whole 8-pixel cells, as ComfyUI's VAE.encode does.
    width, height = pixels.width // 8 * 8, pixels.height // 8 * 8
    if width == 0 or height == 0:
        raise RuntimeError(f"image of {pixels.width}x{pixels.height} is too small to encode")
    check_size(ctx.settings, width, height, len(pixels.frames))
    init = Guide("init", pixels.frames[0])
    return NodeResult((Latent(width=width, height=height, batch_size=len(pixels.frames), guides=(init,)),))


async def _controlnet_apply_advanced(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    positive: Conditioning = inputs["positive"]
    negative: Conditioning = inputs["negative"]
    strength: float = inputs["strength"]
    # ComfyUI returns the conditioning untouched at strength 0.
    if strength == 0:
        return NodeResult((positive, negative))
    control: ModelFile = inputs["control_net"]
    image: ImageBatch = inputs["image"]
    guide = Guide(f"{_short_model_name(control.name)} {strength:g}", image.frames[0])
    return NodeResult(
        (
            Conditioning(positive.text, (*positive.guides, guide)),
            Conditioning(negative.text, (*negative.guides, guide)),
        )
    )


async def _clip_vision_encode(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    image: ImageBatch = inputs["image"]
    return NodeResult((Guide("clip vision", image.frames[0]),))


async def _image_upscale_with_model(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    model: ModelFile = inputs["upscale_model"]
    image: ImageBatch = inputs["image"]
    factor = upscale_factor(model.name)
    width, height = image.width * factor, image.height * factor
    check_size(ctx.settings, width, height, len(image.frames))

    def scale() -> tuple[Image.Image, ...]:
        return tuple(frame.resize((width, height), Image.Resampling.LANCZOS) for frame in image.frames)

    scaled = await asyncio.to_thread(scale)
    label = image.provenance.label or f"upscaled x{factor} with {model.name}"
    return NodeResult((ImageBatch(scaled, Provenance(label=label, seed=image.provenance.seed)),))


NODE_TYPES = (
    NodeType("VAEEncode", _vae_encode),
    NodeType(
        "ControlNetLoader",
        _loader("CONTROL_NET", "control_net_name"),
        choices=(("control_net_name", lambda s: s.controlnets),),
    ),
    NodeType("ControlNetApplyAdvanced", _controlnet_apply_advanced),
    NodeType(
        "CLIPVisionLoader",
        _loader("CLIP_VISION", "clip_name"),
        choices=(("clip_name", lambda s: s.clip_vision),),
    ),
    NodeType("CLIPVisionEncode", _clip_vision_encode),
    NodeType(
        "UpscaleModelLoader",
        _loader("UPSCALE_MODEL", "model_name"),
        choices=(("model_name", lambda s: s.upscale_models),),
    ),
    NodeType("ImageUpscaleWithModel", _image_upscale_with_model),
)
