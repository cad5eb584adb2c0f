"""The executor: one worker running queued prompts node by node, with a result cache.

Message order and content mirror ComfyUI 0.3.64's PromptExecutor and
prompt_worker, since clients (the StoryCore render pipeline among them)
drive their state machines from these messages.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from .graph import DependencyCycleError, ExecutionList, cache_keys, is_link
from .hub import Hub
from .nodebase import PromptPace
from .nodes import NODE_TYPES, InterruptProcessing, NodeContext, NodeResult, NodeType
from .prompt_queue import PromptQueue, QueueItem
from .settings import PreviewSettings
from .validation import full_type_name

# Nodes that stand for the GPU's sampling work: they take the prompt's render time.
SAMPLER_TYPES = frozenset({"KSampler"})

logger = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return str(value)


@dataclasses.dataclass
class CacheEntry:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


class OutputCache:
    """Node results keyed by input signature; holds only what the current prompt can use.

    ComfyUI's default ("classic") cache drops every entry the new prompt does
    not reference, so only results from the previous prompts survive.
    """

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}

    def keep_only(self, keys: set[str]) -> None:
        self._entries = {key: entry for key, entry in self._entries.items() if key in keys}

    def get(self, key: str) -> CacheEntry | None:
        return self._entries.get(key)

    def set(self, key: str, entry: CacheEntry) -> None:
        self._entries[key] = entry


class ProgressRegistry:
    """Per-prompt node progress, broadcast as `progress_state` like ComfyUI's WebUIProgressHandler."""

    def __init__(self, prompt_id: str, publish: Callable[[dict[str, Any]], None]) -> None:
        self.prompt_id = prompt_id
        self.nodes: dict[str, dict[str, Any]] = {}
        self._publish = publish

    def _entry(self, node_id: str) -> dict[str, Any]:
        # A node first seen at finish (a cached output) keeps int 0/1 values; nodes that
        # run are reset to floats. The recorded messages show exactly this difference.
        return self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def start(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="running", value=0.0, max=1.0)
        self._send()

    def update(self, node_id: str, value: int, maximum: int) -> None:
        entry = self._entry(node_id)
        entry.update(state="running", value=value, max=maximum)
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()

    def _send(self) -> None:
        nodes = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self.nodes.items()
            if entry["state"] != "pending"
        }
        self._publish({"prompt_id": self.prompt_id, "nodes": nodes})


@dataclasses.dataclass
class _NodeFailure:
    node_id: str
    interrupted: bool
    exception_message: str = ""
    exception_type: str = ""
    traceback: list[str] = dataclasses.field(default_factory=list)
    current_inputs: dict[str, Any] = dataclasses.field(default_factory=dict)


class Engine:
    def __init__(self, settings: PreviewSettings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.queue = PromptQueue(self.broadcast_status)
        self.cache = OutputCache()
        # Per-(node id, class) state kept between prompts, like ComfyUI's node objects cache.
        self.node_state: dict[tuple[str, str], dict[str, Any]] = {}
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.running_prompt_id: str | None = None
        self._interrupt = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        # Shared by POST /prompt: it counts every parsed request, even rejected ones.
        self.number = 0
        # Seconds the nodes after the last sampler took on recent prompts (see PromptPace).
        self.tail_seconds: float | None = None
        self.pace: PromptPace | None = None

    # ----- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run_worker())

    async def stop(self) -> None:
        if self._worker is None:
            return
        self._interrupt.set()
        # Python 3.11's wait_for can swallow a cancellation that races with the
        # interrupt wake-up, so keep cancelling until the worker has really ended.
        while not self._worker.done():
            self._worker.cancel()
            await asyncio.wait({self._worker}, timeout=0.1)
        if not self._worker.cancelled() and self._worker.exception() is not None:
            logger.error("preview worker ended with %r", self._worker.exception())
        self._worker = None

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def broadcast_status(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    def interrupt(self) -> None:
        self._interrupt.set()

    async def _run_worker(self) -> None:
        while True:
            task_id, item = await self.queue.get()
            try:
                result, status = await self._execute(item)
            except Exception:
                # A bug in the preview server must not kill the worker and wedge the queue.
                logger.exception("preview server failed while executing %s", item.prompt_id)
                result = {"outputs": {}, "meta": {}}
                status = {"status_str": "error", "completed": False, "messages": []}
            self.queue.task_done(task_id, result, status)
            if self.client_id is not None:
                self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, self.client_id)

    # ----- one prompt --------------------------------------------------------------------

    async def _execute(self, item: QueueItem) -> tuple[dict[str, Any], dict[str, Any]]:
        prompt_id, prompt = item.prompt_id, item.prompt
        # An interrupt that arrived while idle must not hit the next prompt.
        self._interrupt.clear()
        self.client_id = item.extra_data.get("client_id")
        self.running_prompt_id = prompt_id
        messages: list[list[Any]] = []
        success = False
        ui_outputs: dict[str, dict[str, Any]] = {}
        try:
            self._add_message(messages, "execution_start", {"prompt_id": prompt_id}, broadcast=False)
            self.pace = PromptPace(
                started=time.monotonic(),
                render_seconds=self.settings.render_seconds,
                samplers=sum(1 for node in prompt.values() if node.get("class_type") in SAMPLER_TYPES),
                tail=min(self.tail_seconds or 0.0, self.settings.render_seconds / 2),
            )
            registry = ProgressRegistry(
                prompt_id, lambda data: self.hub.send("progress_state", data, self.client_id)
            )

            fingerprints = await asyncio.to_thread(self._fingerprints, prompt)
            keys = cache_keys(prompt, fingerprints)
            self.cache.keep_only(set(keys.values()))
            wanted = {(node_id, node["class_type"]) for node_id, node in prompt.items()}
            self.node_state = {key: state for key, state in self.node_state.items() if key in wanted}

            cached_nodes = [node_id for node_id in prompt if self.cache.get(keys[node_id]) is not None]
            self._add_message(
                messages, "execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False
            )
            png_prompt = self._png_prompt(prompt, fingerprints)
            executed: list[str] = []
            current_outputs = list(prompt)
            order = ExecutionList(prompt, lambda node_id: self.cache.get(keys.get(node_id, "")) is not None)
            for output_id in item.outputs:
                order.add_node(output_id)

            failure: _NodeFailure | None = None
            while not order.is_empty():
                try:
                    node_id = order.next_node()
                except DependencyCycleError as exc:
                    failure = self._failure_from(next(iter(order.pending)), exc, {})
                    break
                failure = await self._execute_node(
                    item, node_id, keys, registry, png_prompt, ui_outputs, executed
                )
                if failure is not None:
                    break
                order.complete(node_id)

            if failure is None:
                success = True
                if self.pace.last_end is not None:
                    tail = time.monotonic() - self.pace.last_end
                    previous = self.tail_seconds
                    self.tail_seconds = tail if previous is None else 0.7 * previous + 0.3 * tail
                self._add_message(messages, "execution_success", {"prompt_id": prompt_id}, broadcast=False)
            else:
                self._report_failure(messages, prompt, failure, executed, current_outputs)
        finally:
            self.last_node_id = None
            self.running_prompt_id = None

        result = {
            "outputs": {node_id: ui["output"] for node_id, ui in ui_outputs.items()},
            "meta": {node_id: ui["meta"] for node_id, ui in ui_outputs.items()},
        }
        status = {"status_str": "success" if success else "error", "completed": success, "messages": messages}
        return result, status

    def _add_message(
        self, messages: list[list[Any]], event: str, data: dict[str, Any], broadcast: bool
    ) -> None:
        data = {**data, "timestamp": _now_ms()}
        messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.hub.send(event, data, self.client_id)

    def _fingerprints(self, prompt: dict[str, Any]) -> dict[str, Any]:
        fingerprints: dict[str, Any] = {}
        for node_id, node in prompt.items():
            node_type = NODE_TYPES[node["class_type"]]
            if node_type.is_changed is None:
                continue
            try:
                fingerprints[node_id] = node_type.is_changed(self.settings, node["inputs"])
            except Exception as exc:
                # ComfyUI marks such a node as never cached (NaN never equals itself).
                logger.warning("is_changed failed for node %s: %s", node_id, exc)
                fingerprints[node_id] = float("nan")
        return fingerprints

    @staticmethod
    def _png_prompt(prompt: dict[str, Any], fingerprints: dict[str, Any]) -> dict[str, Any]:
        # The PNG's prompt chunk carries the is_changed fingerprints ComfyUI adds to its nodes.
        png_prompt = copy.deepcopy(prompt)
        for node_id, fingerprint in fingerprints.items():
            png_prompt[node_id]["is_changed"] = [None if isinstance(fingerprint, float) else fingerprint]
        return png_prompt

    def _meta(self, node_id: str) -> dict[str, Any]:
        return {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}

    async def _execute_node(
        self,
        item: QueueItem,
        node_id: str,
        keys: dict[str, str],
        registry: ProgressRegistry,
        png_prompt: dict[str, Any],
        ui_outputs: dict[str, dict[str, Any]],
        executed: list[str],
    ) -> _NodeFailure | None:
        node = item.prompt[node_id]
        node_type = NODE_TYPES[node["class_type"]]
        cached = self.cache.get(keys[node_id])
        if cached is not None:
            if self.client_id is not None:
                output = cached.ui["output"] if cached.ui else None
                self.hub.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": output, "prompt_id": item.prompt_id},
                    self.client_id,
                )
            if cached.ui is not None:
                ui_outputs[node_id] = cached.ui
            registry.finish(node_id)
            return None

        inputs = self._resolve_inputs(node, node_type, keys)
        registry.start(node_id)
        if self.client_id is not None:
            self.last_node_id = node_id
            self.hub.send(
                "executing",
                {"node": node_id, "display_node": node_id, "prompt_id": item.prompt_id},
                self.client_id,
            )
        state = self.node_state.setdefault((node_id, node["class_type"]), {})
        context = NodeContext(
            settings=self.settings,
            node_id=node_id,
            prompt=png_prompt,
            extra_pnginfo=item.extra_data.get("extra_pnginfo"),
            state=state,
            report_progress=lambda value, maximum, preview: self._report_progress(
                registry, item.prompt_id, node_id, value, maximum, preview
            ),
            sleep=self._interruptible_sleep,
            pace=self.pace,
        )
        try:
            self._raise_if_interrupted()
            result: NodeResult = await node_type.run(context, inputs)
        except InterruptProcessing:
            return _NodeFailure(node_id=node_id, interrupted=True)
        except Exception as exc:
            return self._failure_from(node_id, exc, inputs)

        ui = None
        if result.ui:
            ui = {"meta": self._meta(node_id), "output": result.ui}
            ui_outputs[node_id] = ui
            if self.client_id is not None:
                self.hub.send(
                    "executed",
                    {
                        "node": node_id,
                        "display_node": node_id,
                        "output": result.ui,
                        "prompt_id": item.prompt_id,
                    },
                    self.client_id,
                )
        self.cache.set(keys[node_id], CacheEntry(outputs=result.outputs, ui=ui))
        registry.finish(node_id)
        executed.append(node_id)
        return None

    def _resolve_inputs(
        self, node: dict[str, Any], node_type: NodeType, keys: dict[str, str]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, _category in node_type.input_order():
            if name not in node["inputs"]:
                continue
            value = node["inputs"][name]
            if is_link(value):
                source = self.cache.get(keys[value[0]])
                assert source is not None, "upstream nodes run before their consumers"
                values[name] = source.outputs[value[1]]
            else:
                values[name] = value
        return values

    def _failure_from(self, node_id: str, exc: Exception, inputs: dict[str, Any]) -> _NodeFailure:
        exc_type, _, tb = sys.exc_info()
        return _NodeFailure(
            node_id=node_id,
            interrupted=False,
            exception_message=f"{exc}\n",
            exception_type=full_type_name(exc_type or type(exc)),
            traceback=traceback.format_tb(tb),
            current_inputs={name: [_format_value(value)] for name, value in inputs.items()},
        )

    def _report_failure(
        self,
        messages: list[list[Any]],
        prompt: dict[str, Any],
        failure: _NodeFailure,
        executed: list[str],
        current_outputs: list[str],
    ) -> None:
        # ComfyUI lists a set here; reverse order of execution matches the recorded runs.
        executed_ids = list(reversed(executed))
        base = {
            "prompt_id": self.running_prompt_id,
            "node_id": failure.node_id,
            "node_type": prompt[failure.node_id]["class_type"],
            "executed": executed_ids,
        }
        if failure.interrupted:
            self._add_message(messages, "execution_interrupted", base, broadcast=True)
            return
        data = {
            **base,
            "exception_message": failure.exception_message,
            "exception_type": failure.exception_type,
            "traceback": failure.traceback,
            "current_inputs": failure.current_inputs,
            "current_outputs": current_outputs,
        }
        self._add_message(messages, "execution_error", data, broadcast=False)

    # ----- sampler hooks -----------------------------------------------------------------

    def _raise_if_interrupted(self) -> None:
        if self._interrupt.is_set():
            raise InterruptProcessing()

    async def _interruptible_sleep(self, seconds: float) -> None:
        if seconds > 0:
            try:
                await asyncio.wait_for(self._interrupt.wait(), timeout=seconds)
            except TimeoutError:
                pass
        else:
            # Still yield, so a zero-length render cannot starve the sockets and HTTP handlers.
            await asyncio.sleep(0)
        self._raise_if_interrupted()

    async def _report_progress(
        self,
        registry: ProgressRegistry,
        prompt_id: str,
        node_id: str,
        value: int,
        maximum: int,
        preview: Callable[[], bytes] | None,
    ) -> None:
        """One sampler step, in ComfyUI's order: progress_state, [event 4], progress, [event 1]."""
        self._raise_if_interrupted()
        jpeg = await asyncio.to_thread(preview) if preview is not None else None
        registry.update(node_id, value, maximum)
        wants_metadata = self.hub.supports_preview_metadata(self.client_id)
        if jpeg is not None and wants_metadata:
            metadata = {
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            self.hub.send_preview_with_metadata(jpeg, metadata, self.client_id)
        self.hub.send(
            "progress",
            {"value": value, "max": maximum, "prompt_id": prompt_id, "node": node_id},
            self.client_id,
        )
        if jpeg is not None and not wants_metadata:
            self.hub.send_preview(jpeg, self.client_id)
