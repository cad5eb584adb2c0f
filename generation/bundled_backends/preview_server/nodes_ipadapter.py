"""Nodes of the ComfyUI_IPAdapter_plus custom node pack (cubiq), offered when settings enable the pack.

Their object_info entries were built from the pack's INPUT_TYPES; what they do
here is remember the reference image on the MODEL, so the sampled frame shows it.
The error texts are the pack's own, since users search for them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .nodebase import NodeContext, NodeResult, NodeType
from .values import Checkpoint, Guide, ImageBatch, ModelFile

PACK = "ComfyUI_IPAdapter_plus"


@dataclasses.dataclass(frozen=True)
class IPAdapterPipeline:
    """What IPAdapterUnifiedLoader hands on: an IPAdapter model and its CLIP vision encoder, picked by preset."""

    preset: str

    def __str__(self) -> str:
        return f"{{'clipvision': ..., 'ipadapter': <{self.preset}>, 'insightface': None}}"


async def _unified_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    preset = inputs["preset"]
    # The pack resolves a preset to model files on disk and fails at run time when they are missing.
    if preset not in ctx.settings.ipadapter_presets:
        raise Exception("IPAdapter model not found.")
    return NodeResult((inputs["model"], IPAdapterPipeline(preset)))


async def _model_loader(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    return NodeResult((ModelFile("IPADAPTER", inputs["ipadapter_file"]),))


async def _ipadapter_advanced(ctx: NodeContext, inputs: dict[str, Any]) -> NodeResult:
    model: Checkpoint = inputs["model"]
    ipadapter = inputs["ipadapter"]
    # A bare IPADAPTER from IPAdapterModelLoader brings no CLIP vision model of its own.
    if not isinstance(ipadapter, IPAdapterPipeline) and inputs.get("clip_vision") is None:
        raise Exception("Missing CLIPVision model.")
    image: ImageBatch = inputs["image"]
    guide = Guide(f"reference {inputs['weight']:g}", image.frames[0])
    return NodeResult((dataclasses.replace(model, guides=(*model.guides, guide)),))


NODE_TYPES = (
    NodeType("IPAdapterAdvanced", _ipadapter_advanced, pack=PACK),
    NodeType("IPAdapterUnifiedLoader", _unified_loader, pack=PACK),
    NodeType(
        "IPAdapterModelLoader",
        _model_loader,
        choices=(("ipadapter_file", lambda s: s.ipadapter_models),),
        pack=PACK,
    ),
)
