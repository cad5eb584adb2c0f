"""What every node type is made of: its object_info entry, its run function and the context it runs in.

The node families live in nodes.py (the core txt2img and image nodes),
nodes_guided.py, nodes_video.py and nodes_ipadapter.py; nodes.py gathers
them into one registry.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .settings import PreviewSettings

_OBJECT_INFO_FILE = pathlib.Path(__file__).with_name("object_info.json")


class InterruptProcessing(Exception):
    """Raised inside a node when /interrupt stopped the running prompt."""


ProgressReporter = Callable[[int, int, Callable[[], bytes] | None], Awaitable[None]]


@dataclasses.dataclass
class PromptPace:
    """Keeps one prompt to the configured render time.

    Its samplers share the time; the last one also leaves room for the nodes after
    it (decoding, saving), as long as they took on the previous prompt. So a render
    takes `render_seconds` from execution_start to execution_success however fast
    this machine draws and encodes frames.
    """

    started: float
    render_seconds: float
    samplers: int
    tail: float = 0.0
    done: int = 0
    last_end: float | None = None

    def next_deadline(self) -> float:
        share = (self.done + 1) / max(self.samplers, 1)
        target = self.started + self.render_seconds * share
        if self.done + 1 >= self.samplers:
            target -= self.tail
        return target

    def sampler_finished(self) -> None:
        self.done += 1
        self.last_end = time.monotonic()


@dataclasses.dataclass
class NodeContext:
    """What a running node may use besides its inputs."""

    settings: PreviewSettings
    node_id: str
    # The prompt as ComfyUI hands it to nodes through the hidden PROMPT input.
    prompt: dict[str, Any]
    extra_pnginfo: Any
    # Survives between prompts while the same node id keeps the same class, like ComfyUI's node objects.
    state: dict[str, Any]
    report_progress: ProgressReporter
    sleep: Callable[[float], Awaitable[None]]
    pace: PromptPace | None = None


@dataclasses.dataclass(frozen=True)
class NodeResult:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


NodeRunner = Callable[[NodeContext, dict[str, Any]], Awaitable[NodeResult]]
# The names a model or file input offers; on a real server they come from the models folders on disk.
Choices = Callable[[PreviewSettings], list[str]]


@dataclasses.dataclass(frozen=True)
class NodeType:
    name: str
    run: NodeRunner
    # Returns a fingerprint that forces re-execution when it changes (ComfyUI's IS_CHANGED).
    is_changed: Callable[[PreviewSettings, dict[str, Any]], str] | None = None
    # ComfyUI's VALIDATE_INPUTS: True, or a message. Inputs it takes skip the min/max/list checks.
    custom_validation: Callable[[PreviewSettings, dict[str, Any]], bool | str] | None = None
    custom_validation_inputs: tuple[str, ...] = ()
    # Inputs whose list of names comes from the server's settings rather than the recorded entry.
    choices: tuple[tuple[str, Choices], ...] = ()
    # The custom node pack this node belongs to; None for ComfyUI's own nodes.
    pack: str | None = None

    @property
    def info(self) -> dict[str, Any]:
        return recorded_object_info()[self.name]

    @property
    def is_output(self) -> bool:
        return bool(self.info["output_node"])

    @property
    def output_types(self) -> tuple[Any, ...]:
        return tuple(self.info["output"])

    def available(self, settings: PreviewSettings) -> bool:
        return self.pack is None or self.pack in settings.node_packs

    def input_order(self) -> list[tuple[str, str]]:
        """(name, category) for required then optional inputs, in declaration order."""
        order = self.info.get("input_order", {})
        return [(name, category) for category in ("required", "optional") for name in order.get(category, [])]

    def input_spec(self, settings: PreviewSettings, name: str) -> tuple[Any, dict[str, Any]] | None:
        """(type, options) of an input, with the server's own lists filled in."""
        inputs = self.object_info(settings)["input"]
        for category in ("required", "optional"):
            spec = inputs.get(category, {}).get(name)
            if spec is not None:
                return spec[0], (spec[1] if len(spec) > 1 else {})
        return None

    def object_info(self, settings: PreviewSettings) -> dict[str, Any]:
        info = copy.deepcopy(self.info)
        for name, choices in self.choices:
            for category in ("required", "optional"):
                spec = info["input"].get(category, {}).get(name)
                if spec is None:
                    continue
                # Nodes on ComfyUI's newer schema declare "COMBO" with the names under "options".
                if spec[0] == "COMBO":
                    spec[1]["options"] = choices(settings)
                else:
                    spec[0] = choices(settings)
        return info


@functools.lru_cache(maxsize=1)
def recorded_object_info() -> dict[str, Any]:
    return json.loads(_OBJECT_INFO_FILE.read_text(encoding="utf-8"))


def check_size(settings: PreviewSettings, width: int, height: int, batch: int) -> None:
    if width * height * batch > settings.max_megapixels * 1_000_000:
        raise RuntimeError(
            f"storyboard preview refuses {batch}x{width}x{height}: more than "
            f"{settings.max_megapixels:g} megapixels"
        )


def prompt_metadata(ctx: NodeContext) -> dict[str, str]:
    """The prompt and extra_pnginfo entries ComfyUI's save nodes embed, as JSON text by key."""
    chunks = {"prompt": json.dumps(ctx.prompt)}
    if isinstance(ctx.extra_pnginfo, dict):
        for key, value in ctx.extra_pnginfo.items():
            chunks[str(key)] = json.dumps(value)
    return chunks
