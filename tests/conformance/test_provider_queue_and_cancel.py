"""locate() and cancel() while prompts queue and run, and a socket taken over mid-run."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

from generation.providers.base import ErrorCode, EventKind, ProgressEvent

from .conftest import recorded_step
from .provider_fixtures import collect_events, open_target  # noqa: F401 (fixtures)

QUEUE = "queue_and_interrupt.json"
RECONNECT = "ws_reconnect_mid_run_and_targeted_interrupt.json"
# Many short sampler steps: the long prompt keeps running while the test looks at the queue.
LONG_RUNS = {"render_seconds": 1000.0, "max_step_seconds": 0.01}


def _is(kind: EventKind) -> Any:
    return lambda event: event.kind == kind


def _cancelled(events: list[ProgressEvent]) -> bool:
    final = events[-1]
    return (
        final.kind == EventKind.FAILED and final.error is not None and final.error.code == ErrorCode.CANCELLED
    )


def test_locate_follows_a_prompt_from_running_to_done_and_cancel_deletes_pending_and_interrupts_running(
    open_target: Any,
) -> None:
    target = open_target(QUEUE, **LONG_RUNS)
    provider = target.provider("websocket_A")
    running_request = target.render_request("long running prompt")
    target.while_running(running_request.attempt_id)
    running = provider.submit(running_request)
    assert collect_events(provider, running, stop=_is(EventKind.STARTED))[-1].kind == EventKind.STARTED
    pending = [provider.submit(target.render_request(f"pending prompt {i}")) for i in range(3)]
    target.done_running()

    assert provider.locate(running) == "running"
    assert provider.locate(pending[0]) == "pending"

    # The recording deleted the second pending prompt; its history was only asked for later.
    if target.replay is not None:
        target.replay.stand_in_no_history(pending[1].remote_id)
    provider.cancel(pending[1])
    assert target.bodies_sent("POST", "/queue") == [{"delete": [pending[1].remote_id]}]
    if target.replay is not None:
        assert target.bodies_sent("POST", "/queue") == [
            recorded_step(QUEUE, "delete one pending prompt")["request"]["json"]
        ]
    assert provider.locate(pending[1]) == "unknown"

    target.done_running()
    provider.cancel(running)
    # Targeted, so it cannot stop someone else's prompt (the recording used a bare global interrupt).
    assert target.bodies_sent("POST", "/interrupt") == [{"prompt_id": running.remote_id}]

    target.while_running(running.remote_id)
    events = collect_events(provider, running)
    target.done_running()
    assert _cancelled(events), events[-1]
    assert provider.locate(running) == "done"
    history = provider.history(running)
    assert history is not None and (history.status, history.completed) == ("error", False)


def test_a_second_socket_with_the_same_client_id_takes_over_and_a_targeted_interrupt_stops_the_run(
    open_target: Any,
) -> None:
    target = open_target(RECONNECT, **LONG_RUNS)
    first = target.provider("websocket_C_original")
    request = target.render_request("long running prompt")
    target.while_running(request.attempt_id)
    handle = first.submit(request)
    assert collect_events(first, handle, stop=_is(EventKind.PROGRESS))[-1].kind == EventKind.PROGRESS

    # A restarted worker reconnects with the same client id; ComfyUI then talks only to it.
    second = target.provider("websocket_C_reconnected_same_client_id", client_id=first.client_id)
    progress = collect_events(second, handle, stop=_is(EventKind.PROGRESS))[-1]
    assert progress.kind == EventKind.PROGRESS and progress.value is not None and progress.value >= 2

    first.cancel(handle)
    assert target.bodies_sent("POST", "/interrupt") == [{"prompt_id": handle.remote_id}]
    if target.replay is not None:
        recorded = recorded_step(RECONNECT, "targeted interrupt of the running prompt")["request"]["json"]
        assert target.bodies_sent("POST", "/interrupt") == [recorded]

    events = collect_events(second, handle)
    target.done_running()
    assert _cancelled(events), events[-1]
    assert first.locate(handle) == "done"
