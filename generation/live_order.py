"""One ordering point per socket: a brief's live events leave it strictly in `seq` order.

A brief's events are numbered in the transactions that commit them, but they leave from
several processes (the web process queues jobs, the render watcher moves them), each
through its own sender, so they can reach a socket out of order. A `ReorderBuffer` sits
between the channel layer and one socket: it releases messages in `seq` order, drops what
was already delivered, holds early ones for a short window and, when a hole is still open
after that window, says so, so that the socket can be resynced with a fresh snapshot.

Pure: no Django and no clock of its own; callers pass `now` (any monotonic seconds).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    """Releases messages numbered `delivered + 1, delivered + 2, …` in order, each once."""

    def __init__(self, *, delivered: int, window: float) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        self.delivered = delivered
        self.window = window
        # seq -> (message, when it arrived)
        self._held: dict[int, tuple[T, float]] = {}

    @property
    def held(self) -> int:
        return len(self._held)

    def offer(self, seq: int, message: T, *, now: float) -> list[T]:
        """Take one message; return those now due, in order (empty while a hole is open)."""
        if seq <= self.delivered or seq in self._held:
            return []
        self._held[seq] = (message, now)
        return self._release()

    def deadline(self) -> float | None:
        """When the longest-held message will have waited a whole window; None when none is held."""
        if not self._held:
            return None
        return min(arrived for _, arrived in self._held.values()) + self.window

    def needs_resync(self, *, now: float) -> bool:
        """Whether a hole stayed open for a whole window: what fills it is not coming."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def restart(self, delivered: int, *, now: float) -> list[T]:
        """Go on from a snapshot taken at `delivered`: what it covers is dropped.

        Messages held past it get a fresh window (their hole opened after the snapshot was
        read); those now consecutive are returned, in order.
        """
        self.delivered = delivered
        self._held = {seq: (message, now) for seq, (message, _) in self._held.items() if seq > delivered}
        return self._release()

    def _release(self) -> list[T]:
        due: list[T] = []
        while (following := self.delivered + 1) in self._held:
            due.append(self._held.pop(following)[0])
            self.delivered = following
        return due
