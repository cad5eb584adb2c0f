"""The prompt queue and history, shaped like ComfyUI's PromptQueue."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import heapq
import itertools
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclasses.dataclass
class QueueItem:
    number: int | float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    # Secrets from extra_data: handed to the executor but never shown by /queue or /history.
    sensitive: dict[str, Any]

    def public(self) -> list[Any]:
        """The 5-element list clients see in /queue and /history."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        # Heap entries sort by number first (so `front` prompts jump ahead), then arrival.
        self._heap: list[tuple[int | float, int, QueueItem]] = []
        self._arrivals = itertools.count()
        self._running: dict[int, QueueItem] = {}
        self._task_ids = itertools.count()
        self._wakeup = asyncio.Event()
        self.history: dict[str, dict[str, Any]] = {}

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, (item.number, next(self._arrivals), item))
        self._wakeup.set()
        self._on_change()

    async def get(self) -> tuple[int, QueueItem]:
        while not self._heap:
            self._wakeup.clear()
            await self._wakeup.wait()
        _, _, item = heapq.heappop(self._heap)
        task_id = next(self._task_ids)
        self._running[task_id] = item
        self._on_change()
        return task_id, item

    def task_done(self, task_id: int, result: dict[str, Any], status: dict[str, Any]) -> None:
        item = self._running.pop(task_id)
        while len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        entry: dict[str, Any] = {"prompt": item.public(), "outputs": {}, "status": status}
        entry.update(result)
        self.history[item.prompt_id] = entry
        self._on_change()

    def remaining(self) -> int:
        return len(self._heap) + len(self._running)

    def running(self) -> list[QueueItem]:
        return list(self._running.values())

    def snapshot(self) -> dict[str, list[Any]]:
        # Pending items are listed in heap order, as ComfyUI copies its heap list.
        return {
            "queue_running": copy.deepcopy([item.public() for item in self._running.values()]),
            "queue_pending": copy.deepcopy([entry[2].public() for entry in self._heap]),
        }

    def delete_pending(self, prompt_id: Any) -> bool:
        for index, entry in enumerate(self._heap):
            if entry[2].prompt_id == prompt_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                self._on_change()
                return True
        return False

    def clear_pending(self) -> None:
        self._heap = []
        self._on_change()

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        # Without an offset, max_items means "the newest N"; with one it counts from the oldest.
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: dict[str, Any] = {}
        for index, (prompt_id, entry) in enumerate(self.history.items()):
            if index >= offset:
                out[prompt_id] = entry
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def history_entry(self, prompt_id: str) -> dict[str, Any]:
        if prompt_id in self.history:
            return {prompt_id: copy.deepcopy(self.history[prompt_id])}
        return {}

    def delete_history(self, prompt_id: Any) -> None:
        if isinstance(prompt_id, str):
            self.history.pop(prompt_id, None)

    def clear_history(self) -> None:
        self.history = {}
