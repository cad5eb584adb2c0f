"""What a deliverable is built from: the scenes in order, each with its final's files."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO

# Called with the share of the work done, 0.0 to 1.0; it may be called often (callers throttle).
Progress = Callable[[float], None]

ANIMATIC_HEIGHT = 720
ANIMATIC_FPS = 24
# How long a fade or a dissolve between two scenes lasts, at most (shorter scenes get less).
TRANSITION_S = 0.5
# Contact sheets and animatics draw stills at most this big: a bigger file is refused rather than
# decoded (Pillow only warns below its own bomb threshold).
MAX_IMAGE_PIXELS = 64_000_000


class BuildError(Exception):
    """A deliverable cannot be built; the message says which scene and what was wrong."""


def _no_progress(_done: float) -> None:
    return None


NO_PROGRESS: Progress = _no_progress


@dataclass(frozen=True)
class FinalFile:
    """One stored file of a final: a still (image/*) or a clip (video/*)."""

    name: str  # its stored name, for messages
    content_type: str
    size: int
    sha256: str  # as recorded when it was stored
    open: Callable[[], BinaryIO]

    @property
    def is_clip(self) -> bool:
        return self.content_type.startswith("video/")

    @property
    def extension(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "bin"


@dataclass(frozen=True)
class SceneEntry:
    position: int  # 1, 2, 3… in the order delivered (the brief's order)
    title: str
    duration_s: Decimal
    transition: str  # cut | fade | dissolve, into the next scene
    take: str  # the render job's uuid
    source: str  # "final" (picked) or "latest" (the newest take, no final picked)
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    template: str = ""
    template_version: int | None = None
    shot_type: str = ""
    camera_move: str = ""
    lens: str = ""
    lighting: str = ""
    mood: str = ""
    files: tuple[FinalFile, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return f"scene {self.position} ({self.title})"

    @property
    def picture(self) -> FinalFile:
        """The file that stands for the scene on a sheet or in the animatic: its first still or clip."""
        for file in self.files:
            if file.content_type.startswith(("image/", "video/")):
                return file
        raise BuildError(f"{self.label}: its take has no image or clip to show")

    def zip_name(self, index: int, file: FinalFile) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")[:40] or "scene"
        suffix = f"-{index + 1}" if len(self.files) > 1 else ""
        return f"finals/{self.position:03d}-{slug}{suffix}.{file.extension}"


@dataclass(frozen=True)
class Plan:
    brief_title: str
    brief_uuid: str
    aspect_ratio: str
    scenes: tuple[SceneEntry, ...]

    @property
    def total_s(self) -> Decimal:
        return sum((scene.duration_s for scene in self.scenes), Decimal(0))


def frame_size(aspect_ratio: str, height: int = ANIMATIC_HEIGHT) -> tuple[int, int]:
    """(width, height) for a ratio such as "16:9" or "2.39:1": the given height, an even width."""
    try:
        across, down = (float(part) for part in aspect_ratio.split(":"))
    except ValueError:
        raise BuildError(f"aspect ratio {aspect_ratio!r} is not of the form W:H") from None
    if across <= 0 or down <= 0:
        raise BuildError(f"aspect ratio {aspect_ratio!r} must have two positive sides")
    width = round(height * across / down / 2) * 2
    return max(width, 2), height


def open_checked(file: FinalFile, scene: SceneEntry) -> BinaryIO:
    try:
        return file.open()
    except FileNotFoundError:
        raise BuildError(f"{scene.label}: its file {file.name} is missing from storage") from None
    except OSError as exc:
        raise BuildError(f"{scene.label}: its file {file.name} cannot be read ({exc})") from None
