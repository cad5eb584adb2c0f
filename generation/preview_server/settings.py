"""Options of the storyboard preview server."""

from __future__ import annotations

import dataclasses
import pathlib

PREVIEW_METHODS = ("none", "latent2rgb")


def _default_checkpoints() -> list[str]:
    return ["storyboard-preview.safetensors", "v1-5-pruned-emaonly-fp16.safetensors"]


@dataclasses.dataclass
class PreviewSettings:
    """Everything the preview server can be told; the defaults behave like a stock ComfyUI on CPU."""

    data_dir: pathlib.Path
    # Wall time of one sampler node run, spread evenly over its steps.
    render_seconds: float = 1.0
    preview_method: str = "none"
    checkpoints: list[str] = dataclasses.field(default_factory=_default_checkpoints)
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
        self.checkpoints = list(self.checkpoints)

    @property
    def input_dir(self) -> pathlib.Path:
        return self.data_dir / "input"

    @property
    def output_dir(self) -> pathlib.Path:
        return self.data_dir / "output"

    @property
    def temp_dir(self) -> pathlib.Path:
        return self.data_dir / "temp"
