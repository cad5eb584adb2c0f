"""Following a ComfyUI server: one socket carries every render submitted under its client id.
Pure Python, no Django.

ComfyUI sends a prompt's execution messages only to the socket of the client id that
submitted it, and replays nothing to a socket that (re)connects. So the studio submits every
prompt on a backend under the backend's client id and keeps one socket per backend, and
`SocketFollower` is that socket's loop:

- it connects through the URL policy's checked connector (`url_policy.connect_checked`) and,
  after a drop or a failed connect, tries again after 0.5 s, then every second: a backend that
  restarted is back in use within that second;
- after every (re)connect and every drop it asks for a check at once: nothing is replayed, so
  /history and /queue are what tell what happened meanwhile;
- each frame becomes (prompt_id, ProgressEvent) by `comfyui.parse_message`; a legacy preview
  frame names no prompt and belongs to the prompt executing when it came;
- between those, it asks for checks every poll interval while the socket is down, and every
  SOCKET_UP_POLL_FACTOR intervals while it is up (a message can still be lost).

What an event or a check means is its owner's business, through three callbacks: the render
watcher (generation/watcher.py) writes to the database and checks each render out on the
backend with `attempts.attempt_check`; the conformance suite (tests/following.py) runs the same
loop against recorded and preview servers and checks with `providers.checks`, as attempt_check
does. A callback that raises is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect

from generation.providers.base import EventKind, ProgressEvent
from generation.providers.comfyui import parse_message, ws_url
from generation.providers.url_policy import COMFYUI, Resolver, UrlRefused, check_url, connect_checked

log = logging.getLogger(__name__)

# While the socket is up, checks come this many poll intervals apart, as a safety net.
SOCKET_UP_POLL_FACTOR = 5
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 1.0
MAX_FRAME_BYTES = 64 * 1024 * 1024

OnEvent = Callable[[str, ProgressEvent], Awaitable[None]]
OnSocket = Callable[[bool], Awaitable[None]]
OnCheck = Callable[[], Awaitable[None]]


class SocketFollower:
    """One ComfyUI backend's socket, and the checks that back it up."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        *,
        on_event: OnEvent,
        on_socket: OnSocket,
        on_check: OnCheck,
        poll_interval: float,
        connect_timeout: float = 5.0,
        resolver: Resolver | None = None,
    ) -> None:
        """`on_event(prompt_id, event)` for each frame about a prompt; `on_socket(up)` when the
        socket comes up or goes down; `on_check()` when the renders out on the backend should be
        asked about."""
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.connected = False
        self._on_event = on_event
        self._on_socket = on_socket
        self._on_check = on_check
        self._resolver = resolver
        self._check_now = asyncio.Event()
        # The prompt whose nodes run now: legacy preview frames name none and belong to it.
        self._executing: str | None = None

    def check_soon(self) -> None:
        """Ask for a check now rather than at the next interval."""
        self._check_now.set()

    async def run(self) -> None:
        """Follow until cancelled."""
        checks = asyncio.create_task(self._checks())
        try:
            await self._follow_socket()
        finally:
            checks.cancel()
            await asyncio.gather(checks, return_exceptions=True)

    async def _follow_socket(self) -> None:
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                # The address is resolved and checked before the socket opens (url_policy.COMFYUI).
                target = check_url(self.base_url, COMFYUI)
                sock = await asyncio.to_thread(
                    connect_checked,
                    target.host,
                    target.port,
                    COMFYUI,
                    timeout=self.connect_timeout,
                    resolver=self._resolver,
                )
                try:
                    async with connect(
                        ws_url(self.base_url, self.client_id),
                        sock=sock,
                        open_timeout=self.connect_timeout,
                        max_size=MAX_FRAME_BYTES,
                        # Frames are read as they come; closing never takes long.
                        max_queue=None,
                        close_timeout=1,
                    ) as socket:
                        self.connected = True
                        self._executing = None
                        delay = FIRST_RETRY_DELAY
                        await self._tell(self._on_socket(True))
                        self._check_now.set()  # ComfyUI replays nothing: resync from /history at once
                        async for message in socket:
                            await self._on_message(message)
                finally:
                    sock.close()
            except asyncio.CancelledError:
                raise
            except UrlRefused as refused:
                log.warning("backend %s socket refused: %s", self.base_url, refused.message)
            except Exception as exc:
                log.info("backend %s socket: %s; following /history", self.base_url, exc.__class__.__name__)
            if self.connected:
                self.connected = False
                await self._tell(self._on_socket(False))
            self._check_now.set()
            await asyncio.sleep(delay)
            # Knocking once a second costs a refused connection; a backend that restarted is
            # back in use within that second, and its renders resync at once.
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _on_message(self, message: str | bytes) -> None:
        parsed = parse_message(message)
        if parsed is None:
            return
        prompt_id, event = parsed
        if prompt_id is None:
            # Legacy previews name no prompt, and a prompt posted without client_id sends its
            # previews to every socket: they are the executing prompt's, or nobody's we know.
            if event.kind != EventKind.PREVIEW or self._executing is None:
                return
            prompt_id = self._executing
        elif event.kind in (EventKind.STARTED, EventKind.NODE, EventKind.PROGRESS):
            self._executing = prompt_id
        elif event.kind in (EventKind.SUCCESS, EventKind.FINISHED, EventKind.FAILED):
            if self._executing == prompt_id:
                self._executing = None
        await self._tell(self._on_event(prompt_id, event))

    async def _checks(self) -> None:
        while True:
            interval = self.poll_interval * (SOCKET_UP_POLL_FACTOR if self.connected else 1)
            try:
                await asyncio.wait_for(self._check_now.wait(), interval)
            except TimeoutError:
                pass
            self._check_now.clear()
            await self._tell(self._on_check())

    async def _tell(self, call: Awaitable[None]) -> None:
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("backend %s: following its renders failed here; going on", self.base_url)
