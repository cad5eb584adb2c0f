"""Benchmark: fetching a large output through the ComfyUI adapter into a file.

Serves synthetic outputs of growing size from a loopback HTTP server that
answers /view like ComfyUI, streams each through `ComfyUIProvider.fetch` into a
temporary file (the same loop the runner uses), and prints throughput and the
peak memory the fetch added. Flat memory as the size grows is the goal.

    .venv/bin/python -m benchmarks.fetch_large_output            # 64 MiB, 256 MiB, 1 GiB
    .venv/bin/python -m benchmarks.fetch_large_output 128 2048   # sizes in MiB
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import sys
import tempfile
import threading
import time
import tracemalloc

from aiohttp import web

from generation.providers.base import RemoteOutput
from generation.providers.comfyui import ComfyUIProvider

CHUNK = b"\x89storycore" * 6554  # ~64 KiB of bytes that do not compress to nothing


async def view(request: web.Request) -> web.StreamResponse:
    size = int(request.query["filename"].split(".")[0])
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    )
    await response.prepare(request)
    sent = 0
    while sent < size:
        piece = CHUNK[: min(len(CHUNK), size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


def serve() -> tuple[str, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/view", view)
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{port[0]}", loop


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fetch_once(provider: ComfyUIProvider, size: int) -> tuple[float, float, int]:
    output = RemoteOutput(
        node_id="9", filename=f"{size}.bin", subfolder="", folder_type="output", kind="image"
    )
    digest = hashlib.sha256()
    written = 0
    tracemalloc.start()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as sink, provider.fetch(output) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            sink.write(chunk)
            written += len(chunk)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert written == size, (written, size)
    return elapsed, peak / 2**20, written


def main(sizes_mib: list[int]) -> None:
    url, _ = serve()
    print(f"{'size':>10} {'seconds':>8} {'MiB/s':>8} {'peak Python alloc':>18} {'process max RSS':>16}")
    with ComfyUIProvider(url) as provider:
        fetch_once(provider, 1 << 20)  # warm up connections and imports
        for mib in sizes_mib:
            elapsed, peak, written = fetch_once(provider, mib << 20)
            print(
                f"{mib:>7} MiB {elapsed:>8.2f} {written / 2**20 / elapsed:>8.0f} {peak:>14.2f} MiB {rss_mib():>12.0f} MiB"
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [64, 256, 1024])
