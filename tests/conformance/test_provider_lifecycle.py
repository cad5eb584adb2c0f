"""Opening and closing the provider and its socket loop around renders."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time
from typing import Any

from .provider_fixtures import following_of, replay_target  # noqa: F401 (fixtures)


def test_stopping_the_socket_loop_and_closing_the_provider_after_an_unfollowed_render_return_at_once(
    replay_target: Any,
) -> None:
    # The client alone is at fault, so one server shows it; the replay does so deterministically.
    target = replay_target("prompt_emptyimage_save_preview.json")
    provider = target.provider("websocket_client")
    request = target.render_request("first submission")
    target.while_running(request.attempt_id)
    handle = provider.submit(request)
    # Nobody follows the render: its ~40 messages reach the loop all the same, as those of
    # every render under the backend's client id do.
    deadline = time.monotonic() + 5
    while provider.locate(handle) != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    following = following_of(provider)
    assert following.events[handle.remote_id], "the loop read none of the render's messages"

    started = time.monotonic()
    for close in (following.stop, provider.close):
        closer = threading.Thread(target=close, daemon=True)
        closer.start()
        closer.join(1.5)
        assert not closer.is_alive(), (
            f"{close.__qualname__} still waiting after {time.monotonic() - started:.1f} s"
        )
