"""Waiting for a batch to end, for the stability sweep.

A selector that polls: the database is the truth about jobs, so the sweep reads
job states every poll interval instead of listening to events, and works the
same against an embedded studio or one spread over machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count

from generation.models import TERMINAL_STATES, RenderBatch


class SweepTimeout(Exception):
    """A batch whose jobs did not all end in time; the message says how far it got."""


@dataclass(frozen=True)
class BatchProgress:
    total: int
    by_state: dict[str, int]

    @property
    def ended(self) -> int:
        return sum(n for state, n in self.by_state.items() if state in TERMINAL_STATES)

    @property
    def finished(self) -> bool:
        return self.ended == self.total

    def describe(self) -> str:
        states = ", ".join(f"{state} {n}" for state, n in sorted(self.by_state.items()))
        return f"{self.ended} of {self.total} jobs ended ({states or 'no jobs'})"


def batch_progress(batch: RenderBatch) -> BatchProgress:
    rows = batch.jobs.order_by().values("state").annotate(n=Count("pk"))
    by_state = {row["state"]: row["n"] for row in rows}
    return BatchProgress(total=sum(by_state.values()), by_state=by_state)


def pause(seconds: float) -> None:
    time.sleep(seconds)


def wait_for_batch(
    batch: RenderBatch,
    *,
    timeout_s: float,
    poll_s: float,
    on_change: Callable[[BatchProgress], None],
) -> BatchProgress:
    """Poll until every job of the batch has ended; `on_change` hears each new state of it."""
    deadline = time.monotonic() + timeout_s
    shown: BatchProgress | None = None
    while True:
        progress = batch_progress(batch)
        if progress != shown:
            on_change(progress)
            shown = progress
        if progress.finished:
            return progress
        if time.monotonic() >= deadline:
            raise SweepTimeout(
                f"batch {batch.uuid} did not finish within {timeout_s:g} s: {progress.describe()}"
            )
        pause(min(poll_s, max(deadline - time.monotonic(), 0)))
