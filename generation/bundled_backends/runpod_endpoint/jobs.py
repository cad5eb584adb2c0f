"""The endpoint's job table: RunPod's queue states, timings and retention, in memory.

A job is IN_QUEUE until a worker takes it, IN_PROGRESS while it runs (with
delayTime), then COMPLETED, FAILED, CANCELLED or TIMED_OUT (with executionTime
and workerId). Results are kept for the retention time, jobs for their TTL;
after that /status answers 404, as the cloud does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclass
class Job:
    id: str
    input: Any
    policy: dict[str, Any]
    submitted_at: float
    # Test-only: how this job should end instead of running normally (see knobs.py).
    script: str = ""
    status: str = "IN_QUEUE"
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    output: Any = None
    error: str | None = None
    stream: list[Any] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def delay_ms(self) -> int:
        return int(((self.started_at or time.monotonic()) - self.submitted_at) * 1000)

    def execution_ms(self) -> int:
        if self.started_at is None:
            return 0
        return int(((self.finished_at or time.monotonic()) - self.started_at) * 1000)

    def body(self) -> dict[str, Any]:
        """The job object of /status, in the fields the cloud sends for each state."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.status == "IN_PROGRESS":
            body.update(delayTime=self.delay_ms(), input=self.input)
        elif self.status in ("COMPLETED", "FAILED", "TIMED_OUT") and self.started_at is not None:
            body.update(delayTime=self.delay_ms(), executionTime=self.execution_ms())
            if self.worker_id and self.status != "TIMED_OUT":
                body["workerId"] = self.worker_id
        if self.status == "FAILED":
            body["error"] = self.error or "Job failed"
        if self.output is not None and self.status in ("COMPLETED", "FAILED"):
            body["output"] = self.output
        return dict(sorted(body.items()))


class JobTable:
    def __init__(self, *, retention_s: float, default_ttl_ms: int) -> None:
        self.retention_s = retention_s
        self.default_ttl_ms = default_ttl_ms
        self.jobs: dict[str, Job] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.counters = {"completed": 0, "failed": 0, "retried": 0}

    def add(self, job_input: Any, policy: dict[str, Any], *, script: str = "", sync: bool = False) -> Job:
        prefix = "sync-" if sync else ""
        job = Job(
            id=f"{prefix}{uuid.uuid4()}-u1",
            input=job_input,
            policy=policy,
            submitted_at=time.monotonic(),
            script=script,
        )
        self.jobs[job.id] = job
        if script != "hold":
            self.queue.put_nowait(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, unless its TTL or its result's retention has run out (then it is gone)."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        now = time.monotonic()
        ttl_s = float(job.policy.get("ttl", self.default_ttl_ms)) / 1000
        expired = now - job.submitted_at > ttl_s or (
            job.finished_at is not None and now - job.finished_at > self.retention_s
        )
        if expired:
            if job.task is not None:
                job.task.cancel()
            del self.jobs[job_id]
            return None
        return job

    def finish(self, job: Job, status: str, *, output: Any = None, error: str | None = None) -> None:
        if job.terminal:
            return
        job.status = status
        job.finished_at = time.monotonic()
        job.output = output
        job.error = error
        if status == "COMPLETED":
            self.counters["completed"] += 1
        elif status in ("FAILED", "TIMED_OUT"):
            self.counters["failed"] += 1

    def health(self, *, workers: int) -> dict[str, Any]:
        live = [self.get(job_id) for job_id in list(self.jobs)]
        in_queue = sum(1 for j in live if j is not None and j.status == "IN_QUEUE")
        running = sum(1 for j in live if j is not None and j.status == "IN_PROGRESS")
        return {
            "jobs": {
                "completed": self.counters["completed"],
                "failed": self.counters["failed"],
                "inProgress": running,
                "inQueue": in_queue,
                "retried": self.counters["retried"],
            },
            "workers": {
                "idle": max(0, workers - running),
                "initializing": 0,
                "ready": max(0, workers - running),
                "running": min(running, workers),
                "throttled": 0,
                "unhealthy": 0,
            },
        }
