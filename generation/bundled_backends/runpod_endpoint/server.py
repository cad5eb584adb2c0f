"""Running the local RunPod endpoint as a blocking process."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from .app import EndpointSettings, create_app


async def _serve(host: str, port: int, settings: EndpointSettings) -> None:
    runner = web.AppRunner(create_app(settings), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(
            f"Local RunPod endpoint {settings.endpoint_id!r} listening on http://{host}:{port}/v2 "
            f"(ComfyUI at {settings.comfyui_url})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_endpoint(host: str, port: int, settings: EndpointSettings) -> None:
    """Serve until SIGINT or SIGTERM. Jobs live in memory: a restart forgets them (404)."""
    asyncio.run(_serve(host, port, settings))
