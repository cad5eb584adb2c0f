"""Options of the storyboard preview server."""

from __future__ import annotations

import dataclasses
import pathlib

PREVIEW_METHODS = ("none", "latent2rgb")
# Custom node packs the preview server can pretend to have installed.
NODE_PACKS = ("ComfyUI_IPAdapter_plus",)
# The presets IPAdapterUnifiedLoader offers; which of them work depends on the installed model files.
IPADAPTER_PRESETS = (
    "LIGHT - SD1.5 only (low strength)",
    "STANDARD (medium strength)",
    "VIT-G (medium strength)",
    "PLUS (high strength)",
    "PLUS FACE (portraits)",
    "FULL FACE - SD1.5 only (portraits stronger)",
)


def _default_checkpoints() -> list[str]:
    return [
        "storyboard-preview.safetensors",
        "v1-5-pruned-emaonly-fp16.safetensors",
        "sd_xl_base_1.0.safetensors",
        "svd_xt.safetensors",
    ]


def template_catalogue() -> dict[str, list[str]]:
    """Settings overrides that list every model and node pack the shipped workflows/ templates use.

    The defaults describe a stock ComfyUI with no extra models (what the recordings
    show), so a server that should render every template is started with these.
    """
    return {
        "checkpoints": _default_checkpoints(),
        "controlnets": [
            "control_v11p_sd15_openpose.pth",
            "control_v11f1p_sd15_depth.pth",
            "control_v11p_sd15_lineart.pth",
        ],
        "upscale_models": ["RealESRGAN_x4plus.pth", "RealESRGAN_x2plus.pth"],
        "clip_vision": ["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"],
        "ipadapter_models": ["ip-adapter-plus_sd15.safetensors"],
        "node_packs": list(NODE_PACKS),
    }


@dataclasses.dataclass
class PreviewSettings:
    """Everything the preview server can be told; the defaults behave like a stock ComfyUI on CPU."""

    data_dir: pathlib.Path
    # Wall time of one prompt, from execution_start to execution_success: its samplers
    # share it (spread evenly over their steps), less what the nodes after them took.
    render_seconds: float = 1.0
    preview_method: str = "none"
    checkpoints: list[str] = dataclasses.field(default_factory=_default_checkpoints)
    # The other model folders start empty, as on the recorded server; see template_catalogue().
    controlnets: list[str] = dataclasses.field(default_factory=list)
    upscale_models: list[str] = dataclasses.field(default_factory=list)
    clip_vision: list[str] = dataclasses.field(default_factory=list)
    ipadapter_models: list[str] = dataclasses.field(default_factory=list)
    # IPAdapterUnifiedLoader presets whose model files are "installed"; others fail at run time.
    ipadapter_presets: list[str] = dataclasses.field(default_factory=lambda: list(IPADAPTER_PRESETS))
    # Custom node packs whose nodes appear in /object_info and may be used in prompts.
    node_packs: list[str] = dataclasses.field(default_factory=list)
    # Upper bound for one sampler step, so a 10000-step prompt cannot hold the queue for ages.
    max_step_seconds: float | None = None
    # None reports system RAM, which is what ComfyUI does when it runs with --cpu.
    vram_total_mb: int | None = None
    vram_free_mb: int | None = None
    device_name: str = "storyboard preview (no GPU)"
    # latent2rgb previews are scaled to fit this square, like ComfyUI's --preview-size.
    preview_size: int = 512
    # Refuse images larger than this so a hostile workflow cannot exhaust memory.
    max_megapixels: float = 64.0
    max_upload_size: int = 100 * 1024 * 1024

    def __post_init__(self) -> None:
        self.data_dir = pathlib.Path(self.data_dir)
        if self.preview_method not in PREVIEW_METHODS:
            raise ValueError(f"preview_method must be one of {PREVIEW_METHODS}, not {self.preview_method!r}")
        if self.render_seconds < 0:
            raise ValueError("render_seconds must not be negative")
        if self.max_step_seconds is not None and self.max_step_seconds < 0:
            raise ValueError("max_step_seconds must not be negative")
        unknown = [pack for pack in self.node_packs if pack not in NODE_PACKS]
        if unknown:
            raise ValueError(f"unknown node packs {unknown}; known: {NODE_PACKS}")
        self.checkpoints = list(self.checkpoints)
        self.controlnets = list(self.controlnets)
        self.upscale_models = list(self.upscale_models)
        self.clip_vision = list(self.clip_vision)
        self.ipadapter_models = list(self.ipadapter_models)
        self.ipadapter_presets = list(self.ipadapter_presets)
        self.node_packs = list(self.node_packs)

    @property
    def input_dir(self) -> pathlib.Path:
        return self.data_dir / "input"

    @property
    def output_dir(self) -> pathlib.Path:
        return self.data_dir / "output"

    @property
    def temp_dir(self) -> pathlib.Path:
        return self.data_dir / "temp"
