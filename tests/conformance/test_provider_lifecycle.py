"""Opening and closing the provider around renders."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time
from typing import Any

from .provider_fixtures import replay_target  # noqa: F401 (fixtures)


def test_closing_a_provider_that_left_socket_messages_unread_returns_at_once(replay_target: Any) -> None:
    # The client alone is at fault, so one server shows it; the replay does so deterministically.
    target = replay_target("prompt_emptyimage_save_preview.json")
    provider = target.provider("websocket_client")
    request = target.render_request("first submission")
    target.while_running(request.attempt_id)
    handle = provider.submit(request)
    # Nobody reads events(): the render's ~40 messages pile up in the socket's buffer, as they do
    # for a worker that stopped following a render (or for other prompts under its client id).
    deadline = time.monotonic() + 5
    while provider.locate(handle) != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)

    closer = threading.Thread(target=provider.close, daemon=True)
    started = time.monotonic()
    closer.start()
    closer.join(1.5)
    assert not closer.is_alive(), f"close() still waiting after {time.monotonic() - started:.1f} s"
