"""The values that flow along the links of a workflow.

The real server passes torch tensors and model patchers around; the preview
server only needs to know enough to draw a believable storyboard frame.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from .tensor_repr import format_image_batch, format_mask_batch


@dataclasses.dataclass(frozen=True)
class Guide:
    """An image that steers sampling (init, control or reference), drawn as a thumbnail in the frame."""

    caption: str
    image: Image.Image = dataclasses.field(compare=False)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """MODEL, CLIP and VAE all just remember which checkpoint they came from.

    A MODEL patched by an adapter (IPAdapter) carries that adapter's reference images.
    """

    kind: str
    ckpt_name: str
    guides: tuple[Guide, ...] = ()

    def __str__(self) -> str:
        return f"<{self.kind} {self.ckpt_name}>"


@dataclasses.dataclass(frozen=True)
class Conditioning:
    text: str
    # Control images applied to this conditioning (ControlNetApply*) or the SVD init frame.
    guides: tuple[Guide, ...] = ()

    def __str__(self) -> str:
        return f"[[tensor(<CLIP embedding of {self.text!r}>), {{'pooled_output': tensor(...)}}]]"


@dataclasses.dataclass(frozen=True)
class Latent:
    """A latent batch: its pixel size plus whatever sampling put into it."""

    width: int
    height: int
    batch_size: int
    positive: str = ""
    negative: str = ""
    seed: int | None = None
    sampler_node: str | None = None
    steps: int | None = None
    guides: tuple[Guide, ...] = ()

    def __str__(self) -> str:
        return f"{{'samples': tensor(shape=[{self.batch_size}, 4, {self.height // 8}, {self.width // 8}])}}"


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A loaded model that is only ever passed on by name: CONTROL_NET, UPSCALE_MODEL, CLIP_VISION, IPADAPTER."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"<{self.kind} {self.name}>"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What a frame shows, written into the PNG as the `storyboard` chunk."""

    label: str = ""
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class ImageBatch:
    """An IMAGE value: RGB frames of one size, plus where they came from."""

    frames: tuple[Image.Image, ...]
    provenance: Provenance = Provenance()

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def height(self) -> int:
        return self.frames[0].height

    @property
    def channels(self) -> int:
        return len(self.frames[0].getbands())

    def __str__(self) -> str:
        return format_image_batch(self.frames)


@dataclasses.dataclass(frozen=True)
class MaskBatch:
    """A MASK value: single-band frames."""

    frames: tuple[Image.Image, ...]

    def __str__(self) -> str:
        return format_mask_batch(self.frames)


@dataclasses.dataclass(frozen=True)
class Audio:
    """An AUDIO value: silence of a length, rate and channel count (what EmptyAudio makes).

    ComfyUI passes `{"waveform": tensor[batch, channels, samples], "sample_rate": n}`.
    """

    sample_rate: int
    channels: int
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def __str__(self) -> str:
        return (
            f"{{'waveform': tensor(shape=[1, {self.channels}, {self.samples}]), "
            f"'sample_rate': {self.sample_rate}}}"
        )


@dataclasses.dataclass(frozen=True)
class Video:
    """A VIDEO value from CreateVideo: frames, a frame rate and an optional sound track."""

    images: ImageBatch
    fps: float
    audio: Audio | None = None

    def __str__(self) -> str:
        return "<comfy_api.latest._input_impl.video_types.VideoFromComponents object>"
