"""A loopback TCP proxy that can break what passes through it, to test how the
studio copes with a dropped WebSocket or a backend that goes away mid-render."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) /[^ \r\n]* HTTP/1\.[01]")


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    websocket: bool
    doomed: bool = False


@dataclass
class FlakyProxy:
    target_port: int
    port: int = 0
    refuse_websockets: bool = False
    # Share of POST /prompt whose answer is cut off after the server accepted the prompt.
    lose_prompt_answers: float = 0.0
    lost_answers: int = 0
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._prompt_posts = 0
        self._loop = asyncio.new_event_loop()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(65536)
        if not first:
            writer.close()
            return
        websocket = first.startswith(b"GET /ws")
        if websocket and self.refuse_websockets:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer, websocket)
        self._links.add(link)
        self._record(first, link)
        up_writer.write(first)
        await asyncio.gather(
            self._pump(reader, up_writer, link=link),
            self._pump(up_reader, writer, answers=link),
            return_exceptions=True,
        )
        self._links.discard(link)

    def _record(self, chunk: bytes, link: _Link) -> None:
        # Kept-alive connections carry many requests: note every request line seen.
        lines = REQUEST_LINE.findall(chunk)
        self.requests.extend(lines)
        for line in lines:
            if line.startswith(b"POST /prompt") and self.lose_prompt_answers:
                self._prompt_posts += 1
                # Every n-th answer rather than a random share: the test must lose some, every run.
                if self._prompt_posts % max(1, round(1 / self.lose_prompt_answers)) == 0:
                    link.doomed = True

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link | None = None,
        answers: _Link | None = None,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if link is not None:
                    self._record(chunk, link)
                if answers is not None and answers.doomed:
                    # The server accepted the prompt; its answer never arrives.
                    self.lost_answers += 1
                    answers.client.transport.abort()
                    answers.upstream.transport.abort()
                    return
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    def _call(self, action) -> None:  # type: ignore[no-untyped-def]
        done = threading.Event()

        def run() -> None:
            action()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def kill_websockets(self) -> None:
        """Cut every WebSocket now; with `refuse_websockets` new ones are refused too."""

        def cut() -> None:
            for link in [link for link in self._links if link.websocket]:
                link.client.transport.abort()
                link.upstream.transport.abort()

        self._call(cut)

    def go_down(self) -> None:
        """The backend vanishes: every connection is cut and new ones are refused."""

        def down() -> None:
            assert self._server is not None
            self._server.close()
            for link in list(self._links):
                link.client.transport.abort()
                link.upstream.transport.abort()

        self._call(down)

    def count(self, request_line_prefix: bytes) -> int:
        return sum(1 for line in self.requests if line.startswith(request_line_prefix))

    def close(self) -> None:
        self.go_down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
