"""The animatic: the finals in scene order as one H.264 MP4, each held for its scene's duration.

The timeline is the scenes' durations end to end, rounded to whole frames at their cumulative
boundaries, so the film runs the sum of the durations to within one frame however many scenes
there are. A transition never changes that timeline: a dissolve blends across the cut, a fade
goes to black just before it and comes back just after it, and each lasts at most TRANSITION_S
(less for short scenes, so that the middle of every scene shows that scene alone).
"""

from __future__ import annotations

from collections.abc import Generator
from decimal import Decimal
from fractions import Fraction
from typing import Any, BinaryIO

import av
from PIL import Image

from generation.deliverables.pictures import BLACK, burn_title, clip_frames, load_still
from generation.deliverables.plan import (
    ANIMATIC_FPS,
    NO_PROGRESS,
    TRANSITION_S,
    BuildError,
    Plan,
    Progress,
    SceneEntry,
    frame_size,
)


def boundaries(durations: list[Decimal], fps: int = ANIMATIC_FPS) -> list[int]:
    """Frame index where each scene starts, plus the total frame count at the end."""
    edges = [0]
    elapsed = Decimal(0)
    for duration in durations:
        elapsed += duration
        edges.append(int((elapsed * fps).to_integral_value()))
    return edges


class _Source:
    """One scene's pictures, asked for at times that only move forward."""

    def __init__(self, scene: SceneEntry, size: tuple[int, int], titles: bool) -> None:
        self.scene = scene
        self.size = size
        self.titles = titles
        self.caption = f"{scene.position}. {scene.title}"
        file = scene.picture
        self.frames: Generator[tuple[float, Image.Image]] | None = None
        self.current: Image.Image
        self.upcoming: tuple[float, Image.Image] | None = None
        if file.is_clip:
            self.frames = clip_frames(file, scene, size)
            first = next(self.frames, None)
            if first is None:
                raise BuildError(f"{scene.label}: its clip {file.name} holds no frames")
            self.current = self._dress(first[1])
            self.upcoming = next(self.frames, None)
        else:
            self.current = self._dress(load_still(file, scene, size))

    def _dress(self, image: Image.Image) -> Image.Image:
        return burn_title(image, self.caption) if self.titles else image

    def at(self, seconds: float) -> Image.Image:
        # A clip plays from its start; one shorter than its scene holds its last frame.
        while self.frames is not None and self.upcoming is not None and self.upcoming[0] <= seconds + 1e-6:
            self.current = self._dress(self.upcoming[1])
            self.upcoming = next(self.frames, None)
        return self.current

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


def _dim(image: Image.Image, factor: float) -> Image.Image:
    return Image.blend(Image.new("RGB", image.size, BLACK), image, max(0.0, min(1.0, factor)))


def build_animatic(
    plan: Plan, out: BinaryIO, *, titles: bool = False, progress: Progress = NO_PROGRESS
) -> None:
    """Encode the animatic into `out` (a seekable binary file): H.264, yuv420p, 24 fps."""
    if not plan.scenes:
        raise BuildError("there are no scenes to put in an animatic")
    fps = ANIMATIC_FPS
    size = frame_size(plan.aspect_ratio)
    scenes = list(plan.scenes)
    edges = boundaries([scene.duration_s for scene in scenes], fps)
    total = edges[-1]
    if total < 1:
        raise BuildError("the scenes last less than one frame in all")
    lengths = [edges[i + 1] - edges[i] for i in range(len(scenes))]
    most = round(TRANSITION_S * fps / 2)
    # Frames each side of the cut after scene i that its transition takes.
    halves = [
        0
        if scenes[i].transition == "cut"
        else min(most, lengths[i] // 4, (lengths[i + 1] // 4) if i + 1 < len(scenes) else lengths[i] // 4)
        for i in range(len(scenes))
    ]
    sources: dict[int, _Source] = {}

    def source(index: int) -> _Source:
        if index not in sources:
            sources[index] = _Source(scenes[index], size, titles)
        return sources[index]

    def picture(index: int, frame: int) -> Image.Image:
        return source(index).at(max(0, frame - edges[index]) / fps)

    container: Any = av.open(out, mode="w", format="mp4")
    try:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "veryfast", "crf": "23"}
        index = 0
        for frame_number in range(total):
            while frame_number >= edges[index + 1]:
                # Scenes behind the one before are done with: free their decoders.
                for old in [key for key in sources if key < index]:
                    sources.pop(old).close()
                index += 1
            image = _frame(scenes, edges, halves, index, frame_number, picture)
            video = av.VideoFrame.from_image(image)
            video.pts = frame_number
            for packet in stream.encode(video):
                container.mux(packet)
            if frame_number % fps == 0:
                progress(frame_number / total * 0.98)
        for packet in stream.encode():
            container.mux(packet)
    except av.FFmpegError as exc:
        raise BuildError(f"the animatic could not be encoded ({exc})") from None
    finally:
        for opened in sources.values():
            opened.close()
        container.close()
    progress(1.0)


def _frame(
    scenes: list[SceneEntry],
    edges: list[int],
    halves: list[int],
    index: int,
    frame: int,
    picture: Any,
) -> Image.Image:
    # Into this scene from the one before it?
    if index > 0 and halves[index - 1] and frame < edges[index] + halves[index - 1]:
        half, cut = halves[index - 1], edges[index]
        if scenes[index - 1].transition == "dissolve":
            alpha = (frame - (cut - half) + 0.5) / (2 * half)
            return Image.blend(picture(index - 1, frame), picture(index, frame), alpha)
        return _dim(picture(index, frame), (frame - cut + 0.5) / half)
    # Out of this scene into the next one (or, for a fade, to black at the very end)?
    half, cut = halves[index], edges[index + 1]
    if half and frame >= cut - half:
        if scenes[index].transition == "dissolve" and index + 1 < len(scenes):
            alpha = (frame - (cut - half) + 0.5) / (2 * half)
            return Image.blend(picture(index, frame), picture(index + 1, frame), alpha)
        if scenes[index].transition == "fade":
            return _dim(picture(index, frame), (cut - frame - 0.5) / half)
    return picture(index, frame)
