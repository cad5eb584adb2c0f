"""Checking on one render: ask its backend through the contract, and judge the answer.
Pure Python, no Django.

The render watcher checks every render out on a backend on its poll interval (and after
every reconnect of a ComfyUI socket), the reconciler whatever the watcher missed; both go
through `generation.attempts.attempt_check`, which asks and judges here and then acts on the
verdict in the database. The conformance suite follows its renders with the same two calls,
so the rules below are tested on the path production takes:

- an ended render (FINISHED or FAILED from `outcome`) ends the attempt;
- a backend that cannot be asked FAILED_POLLS times in a row is gone (its last error), a key
  it refuses at once (AUTH_FAILED); asked to slow down (RATE_LIMITED) is not a failure;
- a submitted render the backend lists nowhere UNKNOWN_STRIKES times in a row was forgotten
  (LOST: a restart or a cleared queue);
- a render still waiting or running past the policy's max wait, or after its max number of
  checks, has timed out (TIMEOUT; the caller cancels it on the backend).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from generation.providers.base import ErrorCode, Place, ProgressEvent, Provider, ProviderError, RemoteHandle

UNKNOWN_STRIKES = 2  # absent from the backend's queue and history this many checks in a row: forgotten
FAILED_POLLS = 3  # unreachable this many checks in a row: the backend is gone
MAX_BACKOFF = 30.0  # the longest wait between checks of a backend that is unreachable or rate limiting


class CheckOutcome(enum.StrEnum):
    """What asking a backend about an attempt found, and so what was done about it."""

    ENDED = "ended"  # it had already ended here: nothing asked
    CANCELLED = "cancelled"  # its job was cancelled: stopped on the backend
    PENDING = "pending"  # waiting in the backend's queue
    RUNNING = "running"
    DONE = "done"  # finished: its outputs are to be fetched
    FAILED = "failed"
    TIMEOUT = "timeout"  # past the policy's max wait or check limit
    UNKNOWN = "unknown"  # the backend does not know it (once; twice makes it lost)
    LOST = "lost"
    UNREACHABLE = "unreachable"  # the backend did not answer
    RATE_LIMITED = "rate_limited"

    @property
    def out_on_the_backend(self) -> bool:
        return self in (CheckOutcome.PENDING, CheckOutcome.RUNNING, CheckOutcome.DONE)

    @property
    def ends_the_render(self) -> bool:
        """The render is over here (its backend slot is free)."""
        return self in (
            CheckOutcome.DONE,
            CheckOutcome.FAILED,
            CheckOutcome.LOST,
            CheckOutcome.TIMEOUT,
            CheckOutcome.CANCELLED,
        )


@dataclass
class CheckCounters:
    """What the checks of one render have seen so far; kept with the attempt between checks
    (its telemetry's history_attempts, failed_polls and unknown_checks)."""

    history_attempts: int = 0
    failed_polls: int = 0
    unknown_checks: int = 0


@dataclass(frozen=True)
class CheckLimits:
    """The queue policy's bounds on one render."""

    max_wait_s: float
    max_polls: int = 0  # 0: no limit on the number of checks


@dataclass(frozen=True)
class Answer:
    """What the backend said about a render: how it ended (None while it has not), and where it is."""

    outcome: ProgressEvent | None
    place: Place


@dataclass(frozen=True)
class RenderCheck:
    """The verdict of one check."""

    found: CheckOutcome
    # Why it ended (FAILED, LOST, TIMEOUT).
    error: ProviderError | None = None
    # The telemetry's history_exit_reason, where this check decides it.
    exit_reason: str | None = None


def ask(provider: Provider, handle: RemoteHandle) -> Answer:
    """How the render ended, or else where it waits; ProviderError when the backend cannot say."""
    outcome = provider.outcome(handle)
    return Answer(outcome, "done" if outcome is not None else provider.queue_place(handle))


def judge(
    answer: Answer | ProviderError,
    counters: CheckCounters,
    *,
    submitted: bool,
    waited_s: float,
    limits: CheckLimits,
    backend: str = "the backend",
) -> RenderCheck:
    """The verdict on one check's answer (or the error asking raised); updates `counters`.

    `submitted`: the backend accepted the render (before that, not finding it proves nothing).
    `waited_s`: since it was submitted. `backend`: its name, for messages.
    """
    counters.history_attempts += 1
    verdict = _verdict(answer, counters, submitted=submitted, backend=backend)
    if verdict.found in (
        CheckOutcome.PENDING,
        CheckOutcome.RUNNING,
        CheckOutcome.UNREACHABLE,
        CheckOutcome.RATE_LIMITED,
    ):
        over_time = waited_s > limits.max_wait_s
        if over_time or (limits.max_polls and counters.history_attempts >= limits.max_polls):
            return RenderCheck(
                CheckOutcome.TIMEOUT,
                ProviderError(
                    ErrorCode.TIMEOUT,
                    f"the render did not finish within {limits.max_wait_s:.0f} s"
                    if over_time
                    else f"the render did not finish within {limits.max_polls} checks",
                ),
                exit_reason="maxWait" if over_time else "attemptLimit",
            )
    return verdict


def _verdict(
    answer: Answer | ProviderError, counters: CheckCounters, *, submitted: bool, backend: str
) -> RenderCheck:
    if isinstance(answer, ProviderError):
        if answer.code == ErrorCode.RATE_LIMITED:
            # Asked to slow down, not gone: the caller backs off and asks again.
            return RenderCheck(CheckOutcome.RATE_LIMITED)
        counters.failed_polls += 1
        if counters.failed_polls >= FAILED_POLLS or answer.code == ErrorCode.AUTH_FAILED:
            return RenderCheck(CheckOutcome.FAILED, answer)
        return RenderCheck(CheckOutcome.UNREACHABLE)
    counters.failed_polls = 0
    if answer.outcome is not None:
        error = answer.outcome.error
        if error is None:
            return RenderCheck(CheckOutcome.DONE, exit_reason="success")
        return RenderCheck(CheckOutcome.FAILED, error, exit_reason="failed")
    if answer.place == "unknown" and submitted:
        counters.unknown_checks += 1
        if counters.unknown_checks < UNKNOWN_STRIKES:
            return RenderCheck(CheckOutcome.UNKNOWN)
        return RenderCheck(
            CheckOutcome.LOST,
            ProviderError(
                ErrorCode.LOST,
                f"{backend} no longer knows this render (it restarted or its queue was cleared)",
            ),
            exit_reason="unknown",
        )
    counters.unknown_checks = 0
    if answer.place == "running":
        return RenderCheck(CheckOutcome.RUNNING)
    if answer.place == "pending":
        return RenderCheck(CheckOutcome.PENDING)
    return RenderCheck(CheckOutcome.UNKNOWN)  # not submitted yet, as far as we know


def render_check(
    provider: Provider,
    handle: RemoteHandle,
    counters: CheckCounters,
    *,
    submitted: bool = True,
    waited_s: float,
    limits: CheckLimits,
    backend: str = "the backend",
) -> RenderCheck:
    """Ask and judge in one: one check of one render through an open provider."""
    answer: Answer | ProviderError
    try:
        answer = ask(provider, handle)
    except ProviderError as exc:
        answer = exc
    return judge(answer, counters, submitted=submitted, waited_s=waited_s, limits=limits, backend=backend)


def next_check_delay(found: CheckOutcome, *, interval: float, previous: float | None) -> float:
    """How long to wait before the next check of a render polled on its own (RunPod): the poll
    interval, doubled up to MAX_BACKOFF while its backend is unreachable or rate limiting."""
    if found in (CheckOutcome.UNREACHABLE, CheckOutcome.RATE_LIMITED):
        return min(max((previous if previous is not None else interval) * 2, interval), MAX_BACKOFF)
    return interval
