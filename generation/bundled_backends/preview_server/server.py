"""Running the preview server as a blocking process."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from .app import create_app
from .settings import PreviewSettings


async def _serve(host: str, port: int, settings: PreviewSettings) -> None:
    runner = web.AppRunner(create_app(settings), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        shown_host = f"[{host}]" if ":" in host else host
        print(f"Storyboard preview server listening on http://{shown_host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        # Closes sockets, stops the worker and waits for in-flight requests.
        await runner.cleanup()


def run_server(host: str, port: int, settings: PreviewSettings) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    asyncio.run(_serve(host, port, settings))
