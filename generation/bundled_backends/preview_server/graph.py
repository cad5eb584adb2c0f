"""Execution order and cache keys for a prompt graph.

The order follows ComfyUI's ExecutionList (comfy_execution/graph.py): nodes
are staged depth-first from each output, and among the ready ones an output
node, or a node that feeds one within two hops, goes first. Clients see this
order in the `executing` messages, so it is kept exactly.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from .nodes import NODE_TYPES


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


class DependencyCycleError(Exception):
    pass


class ExecutionList:
    """Nodes still to run for one prompt, and which of them are ready."""

    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, set[int]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in self.prompt[unique_id]["inputs"].values():
                if is_link(value):
                    source_id, socket = value
                    if not self.is_cached(source_id):
                        stack.append(source_id)
                    links.append((source_id, socket, unique_id))
        for source_id, socket, target_id in links:
            self._add_strong_link(source_id, socket, target_id)

    def _add_strong_link(self, source_id: str, socket: int, target_id: str) -> None:
        if self.is_cached(source_id):
            return
        self.add_node(source_id)
        if target_id not in self.blocking[source_id]:
            self.blocking[source_id][target_id] = set()
            self.block_count[target_id] += 1
        self.blocking[source_id][target_id].add(socket)

    def is_empty(self) -> bool:
        return not self.pending

    def _is_output(self, node_id: str) -> bool:
        return NODE_TYPES[self.prompt[node_id]["class_type"]].is_output

    def next_node(self) -> str:
        ready = [node_id for node_id in self.pending if self.block_count[node_id] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(blocked) for blocked in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self.blocking[node_id]:
                if any(self._is_output(second) for second in self.blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for target_id in self.blocking.pop(node_id):
            self.block_count[target_id] -= 1


def cache_keys(prompt: dict[str, Any], is_changed: dict[str, Any]) -> dict[str, str]:
    """A key per node that changes whenever the node or anything upstream of it changes.

    Like ComfyUI's input-signature cache, the node id is not part of the key,
    so an identical node under another id reuses the result. `_meta` (titles)
    does not count. A node whose fingerprint failed, or that sits in a cycle or
    links to a missing node, gets a key that never matches.
    """
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def unmatched() -> str:
        return f"uncacheable:{uuid.uuid4().hex}"

    def key_of(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        node = prompt.get(node_id)
        if node_id in visiting or not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            return unmatched()
        fingerprint = is_changed.get(node_id)
        if isinstance(fingerprint, float):
            keys[node_id] = unmatched()
            return keys[node_id]
        visiting.add(node_id)
        try:
            parts = []
            for name in sorted(node["inputs"]):
                value = node["inputs"][name]
                if is_link(value):
                    parts.append([name, "link", key_of(value[0]), value[1]])
                else:
                    parts.append([name, "value", value])
            # Hashing keeps keys short however deep the graph is.
            text = json.dumps([node.get("class_type"), fingerprint, parts], sort_keys=True, default=repr)
            key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        finally:
            visiting.discard(node_id)
        keys[node_id] = key
        return key

    for node_id in prompt:
        key_of(node_id)
    return keys
