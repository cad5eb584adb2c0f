"""Per-attempt telemetry: GPU snapshots around the render and the contract record at its end.

A service: the attempt code calls `snapshot_before` just before a prompt is sent
and `attempt_record` once the attempt has ended; the record it returns is what
Attempt.telemetry holds. Telemetry never fails a render: a record the collector
finds inconsistent is still kept, with the collector's complaint as a warning,
and the validator reports it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from generation.models import Attempt, Backend, BackendKind
from generation.providers.url_policy import COMFYUI, GuardedTransport
from telemetry.collector import TelemetryInputError, build_attempt_record
from telemetry.probes import GpuSnapshot, gpu_probe_chain, take_snapshot

log = logging.getLogger(__name__)

LOCAL_PROBES = ("pynvml", "nvidia_smi")
# The counters the attempt code keeps while it follows a render; carried into the record.
COUNTERS = ("history_attempts", "failed_polls", "unknown_checks", "history_exit_reason")


def _on_this_machine(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def probe_order(backend: Backend) -> tuple[list[str], list[str]]:
    """The probes worth asking about this backend's GPU, and notes for those left out."""
    wanted = list(settings.TELEMETRY_GPU_PROBES)
    notes = []
    if backend.kind != BackendKind.COMFYUI:
        if wanted:
            notes.append(f"no probe reaches the GPU of {backend.kind} backend {backend.name}")
        return [], notes
    if not _on_this_machine(backend.base_url):
        skipped = [name for name in wanted if name in LOCAL_PROBES]
        if skipped:
            notes.append(f"{', '.join(skipped)} not asked: {backend.name} is not on this machine")
        wanted = [name for name in wanted if name not in LOCAL_PROBES]
    return wanted, notes


_clients: dict[int, httpx.Client] = {}


def _http_client() -> httpx.Client:
    """One client per process: building one costs ~15 ms (its TLS context), asking /system_stats
    through a kept one well under 1 ms. Per process, because a forked worker must not share
    its parent's sockets."""
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = httpx.Client(
            timeout=settings.TELEMETRY_PROBE_TIMEOUT, transport=GuardedTransport(COMFYUI)
        )
    return client


def gpu_snapshot(backend: Backend) -> GpuSnapshot:
    order, notes = probe_order(backend)
    chain = gpu_probe_chain(
        order=order,
        system_stats_url=backend.base_url,
        system_stats_client=_http_client() if "system_stats" in order else None,
        nvidia_smi=settings.TELEMETRY_NVIDIA_SMI,
        timeout_s=settings.TELEMETRY_PROBE_TIMEOUT,
    )
    snapshot = take_snapshot(chain)
    if notes:
        snapshot = GpuSnapshot(**{**asdict(snapshot), "notes": tuple(notes) + snapshot.notes})
    return snapshot


def _snapshot_to_json(snapshot: GpuSnapshot) -> dict[str, Any]:
    data = asdict(snapshot)
    data["notes"] = list(snapshot.notes)
    data["taken_at"] = snapshot.taken_at.isoformat() if snapshot.taken_at else None
    return data


def _snapshot_from_json(data: dict[str, Any] | None) -> GpuSnapshot | None:
    if not data:
        return None
    taken_at = datetime.fromisoformat(data["taken_at"]) if data.get("taken_at") else None
    return GpuSnapshot(**{**data, "notes": tuple(data.get("notes") or ()), "taken_at": taken_at})


def snapshot_before(attempt: Attempt) -> None:
    snapshot = gpu_snapshot(attempt.backend)
    Attempt.objects.filter(pk=attempt.pk).update(gpu_before=_snapshot_to_json(snapshot))
    attempt.gpu_before = _snapshot_to_json(snapshot)


def _exit_reason(kept: str | None, *, succeeded: bool) -> str:
    if succeeded:
        return "success"
    # The contract's other endings are how the wait ran out; an execution error, a
    # cancel or a forgotten prompt are told by the attempt's state and error code.
    return kept if kept in ("maxWait", "attemptLimit", "postExecution") else "unknown"


def attempt_record(
    attempt: Attempt,
    *,
    finished_at: datetime,
    succeeded: bool,
    output_complete: bool = False,
    output_wait_s: float | None = None,
    notes: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The contract record of an attempt that has ended, with the GPU as it is now."""
    kept = attempt.telemetry or {}
    runpod = kept.get("runpod") or {}  # delayTime and executionTime, as the RunPod provider saw them
    after = gpu_snapshot(attempt.backend)
    price = attempt.backend.price_per_second
    figures: dict[str, Any] = dict(
        backend_kind=attempt.backend.kind,
        attempt_number=attempt.number,
        policy=attempt.policy or {},
        started_at=attempt.created_at,
        finished_at=finished_at,
        queue_started_at=attempt.submitted_at,
        queue_ended_at=attempt.success_detected_at or (finished_at if attempt.submitted_at else None),
        execution_started_at=attempt.execution_started_at,
        success_detected_at=attempt.success_detected_at,
        history_attempts=int(kept.get("history_attempts", 0)),
        exit_reason=_exit_reason(kept.get("history_exit_reason"), succeeded=succeeded),
        output_complete_detected=output_complete,
        output_wait_s=output_wait_s,
        gpu_before=_snapshot_from_json(attempt.gpu_before),
        gpu_after=after,
        runpod_delay_time_ms=runpod.get("delay_ms"),
        runpod_execution_time_ms=runpod.get("execution_ms"),
        price_per_gpu_second_usd=float(price) if price is not None else None,
        notes=[str(note) for note in notes],
        failed_polls=kept.get("failed_polls"),
        unknown_checks=kept.get("unknown_checks"),
    )
    try:
        return build_attempt_record(**figures)
    except TelemetryInputError as exc:
        log.warning("attempt %s: telemetry does not satisfy the contract: %s", attempt.uuid, exc)
        record = build_attempt_record(**figures, check=False)
        record["warnings"].append(f"collector: {exc}")
        return record
