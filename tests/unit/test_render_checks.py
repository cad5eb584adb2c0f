"""What one check of a render means (generation.providers.checks): the rules attempt_check
acts on in the studio and the conformance suite follows renders with."""

from __future__ import annotations

from typing import Any

import pytest

from generation.providers.base import ErrorCode, EventKind, Place, ProgressEvent, ProviderError, RemoteHandle
from generation.providers.checks import (
    FAILED_POLLS,
    MAX_BACKOFF,
    Answer,
    CheckCounters,
    CheckLimits,
    CheckOutcome,
    judge,
    next_check_delay,
    render_check,
)

HANDLE = RemoteHandle("comfyui", "p-1")
LIMITS = CheckLimits(max_wait_s=60)
FINISHED = ProgressEvent(EventKind.FINISHED)


def _judge(answer: Answer | ProviderError, counters: CheckCounters, **options: Any) -> Any:
    options = {"submitted": True, "waited_s": 1.0, "limits": LIMITS, **options}
    return judge(answer, counters, **options)


def _waiting(place: Place) -> Answer:
    return Answer(None, place)


def test_an_ended_render_ends_the_check_with_its_own_error() -> None:
    counters = CheckCounters(failed_polls=2)
    done = _judge(Answer(FINISHED, "done"), counters)
    assert (done.found, done.error, done.exit_reason) == (CheckOutcome.DONE, None, "success")
    assert counters == CheckCounters(history_attempts=1)
    oom = ProviderError(ErrorCode.OUT_OF_MEMORY, "node 3 ran out of GPU memory")
    failed = _judge(Answer(ProgressEvent(EventKind.FAILED, error=oom), "done"), counters)
    assert (failed.found, failed.error, failed.exit_reason) == (CheckOutcome.FAILED, oom, "failed")


def test_a_backend_that_cannot_be_asked_three_times_in_a_row_fails_the_render_with_its_error() -> None:
    counters = CheckCounters()
    down = ProviderError(ErrorCode.UNAVAILABLE, "cannot be reached")
    found = [_judge(down, counters).found for _ in range(FAILED_POLLS - 1)]
    assert found == [CheckOutcome.UNREACHABLE] * (FAILED_POLLS - 1)
    assert _judge(_waiting("running"), counters).found == CheckOutcome.RUNNING  # an answer forgives
    for _ in range(FAILED_POLLS - 1):
        _judge(down, counters)
    last = _judge(down, counters)
    assert (last.found, last.error) == (CheckOutcome.FAILED, down)


def test_a_refused_key_fails_at_once_and_rate_limiting_is_no_failure() -> None:
    counters = CheckCounters()
    limited = ProviderError(ErrorCode.RATE_LIMITED, "HTTP 429")
    assert [_judge(limited, counters).found for _ in range(5)] == [CheckOutcome.RATE_LIMITED] * 5
    assert counters.failed_polls == 0
    refused = ProviderError(ErrorCode.AUTH_FAILED, "HTTP 401")
    assert _judge(refused, counters).found == CheckOutcome.FAILED


def test_a_submitted_render_listed_nowhere_twice_in_a_row_is_lost_naming_the_backend() -> None:
    counters = CheckCounters()
    assert _judge(_waiting("unknown"), counters).found == CheckOutcome.UNKNOWN  # once could be a blink
    lost = _judge(_waiting("unknown"), counters, backend="gpu-1")
    assert (lost.found, lost.exit_reason) == (CheckOutcome.LOST, "unknown")
    assert lost.error is not None and lost.error.code == ErrorCode.LOST
    assert lost.error.message.startswith("gpu-1 no longer knows this render")
    # Before the backend accepted it, not finding it proves nothing.
    early = CheckCounters()
    assert [_judge(_waiting("unknown"), early, submitted=False).found for _ in range(3)] == [
        CheckOutcome.UNKNOWN
    ] * 3
    assert early.unknown_checks == 0


@pytest.mark.parametrize(
    "answer", [_waiting("pending"), _waiting("running"), ProviderError(ErrorCode.UNAVAILABLE, "x")]
)
def test_a_render_still_out_past_the_max_wait_times_out(answer: Answer | ProviderError) -> None:
    late = _judge(answer, CheckCounters(), waited_s=61.0)
    assert (late.found, late.exit_reason) == (CheckOutcome.TIMEOUT, "maxWait")
    assert late.error is not None and late.error.code == ErrorCode.TIMEOUT
    assert late.error.message == "the render did not finish within 60 s"


def test_the_max_number_of_checks_times_out_and_an_ended_render_never_does() -> None:
    counters = CheckCounters()
    limits = CheckLimits(max_wait_s=60, max_polls=3)
    found = [_judge(_waiting("pending"), counters, limits=limits).found for _ in range(3)]
    assert found == [CheckOutcome.PENDING, CheckOutcome.PENDING, CheckOutcome.TIMEOUT]
    last = _judge(_waiting("pending"), CheckCounters(history_attempts=2), limits=limits)
    assert last.exit_reason == "attemptLimit" and "within 3 checks" in str(last.error)
    assert _judge(Answer(FINISHED, "done"), CheckCounters(), waited_s=600.0).found == CheckOutcome.DONE


class _Scripted:
    """Answers outcome and queue_place from a script; raises a scripted ProviderError."""

    def __init__(self, outcome: ProgressEvent | ProviderError | None, place: Place = "pending") -> None:
        self._outcome = outcome
        self._place = place
        self.asked: list[str] = []

    def outcome(self, handle: RemoteHandle) -> ProgressEvent | None:
        self.asked.append("outcome")
        if isinstance(self._outcome, ProviderError):
            raise self._outcome
        return self._outcome

    def queue_place(self, handle: RemoteHandle) -> Place:
        self.asked.append("queue_place")
        return self._place


def test_render_check_asks_the_queue_only_while_the_render_has_not_ended() -> None:
    finished = _Scripted(FINISHED)
    check = render_check(finished, HANDLE, CheckCounters(), waited_s=0, limits=LIMITS)
    assert check.found == CheckOutcome.DONE and finished.asked == ["outcome"]
    waiting = _Scripted(None, "running")
    check = render_check(waiting, HANDLE, CheckCounters(), waited_s=0, limits=LIMITS)
    assert check.found == CheckOutcome.RUNNING and waiting.asked == ["outcome", "queue_place"]
    down = _Scripted(ProviderError(ErrorCode.UNAVAILABLE, "down"))
    check = render_check(down, HANDLE, CheckCounters(), waited_s=0, limits=LIMITS)
    assert check.found == CheckOutcome.UNREACHABLE


def test_a_polled_render_backs_off_while_its_backend_is_unreachable_or_rate_limiting() -> None:
    delays = []
    previous = None
    for found in [CheckOutcome.UNREACHABLE] * 8 + [CheckOutcome.RATE_LIMITED, CheckOutcome.RUNNING]:
        previous = next_check_delay(found, interval=0.5, previous=previous)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, 0.5]
    assert next_check_delay(CheckOutcome.PENDING, interval=0.5, previous=8.0) == 0.5
