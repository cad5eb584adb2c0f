"""The aiohttp application: ComfyUI's HTTP routes and the /ws socket."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import sys
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from . import files, nodes
from .appkeys import ENGINE_KEY, HUB_KEY, SETTINGS_KEY
from .engine import Engine
from .hub import Client, Hub
from .prompt_queue import SENSITIVE_EXTRA_DATA_KEYS, QueueItem
from .settings import PreviewSettings
from .validation import validate_prompt

logger = logging.getLogger(__name__)

COMFYUI_VERSION = "0.3.64"
FRONTEND_VERSION = "1.27.10"
TEMPLATES_VERSION = "0.1.95"
MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
    "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
]  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


@web.middleware
async def origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ComfyUI's guard against web pages POSTing to a local server: loopback Host must match Origin."""
    host = request.headers.get("Host")
    origin = request.headers.get("Origin")
    if host is not None and origin is not None:
        host_domain = host.lower()
        origin_domain = urllib.parse.urlparse(origin).netloc.lower()
        if _is_loopback(urllib.parse.urlsplit("//" + host_domain).hostname) and host_domain != origin_domain:
            logger.warning("request with non matching host and origin %s != %s, returning 403", host, origin)
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


@web.middleware
async def empty_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths get ComfyUI's empty chunked 404 (its static route answers them)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        response = web.StreamResponse(status=404)
        response.content_type = "application/octet-stream"
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write_eof()
        return response


def _memory() -> tuple[int, int]:
    """(total, available) RAM in bytes."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    return total, available


# ----- WebSocket -----------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.WebSocketResponse:
    engine, hub = request.app[ENGINE_KEY], request.app[HUB_KEY]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
    client = Client(sid, ws)
    first_frames: list[tuple[str, dict[str, Any]]] = [("status", {"status": engine.queue_info(), "sid": sid})]
    # A page reload mid-run learns which node is busy (no prompt_id, exactly as ComfyUI sends it).
    if engine.client_id == sid and engine.last_node_id is not None:
        first_frames.append(("executing", {"node": engine.last_node_id}))
    hub.attach(client, first_frames)
    first_message = True
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except json.JSONDecodeError:
                logger.warning("invalid JSON received from client %s", sid)
                continue
            try:
                # Only the very first message may negotiate features; later ones are ignored.
                if first_message and data.get("type") == "feature_flags":
                    flags = data.get("data", {})
                    client.feature_flags = flags if isinstance(flags, dict) else {}
                    client.push_json("feature_flags", _server_features(request.app[SETTINGS_KEY]))
                first_message = False
            except Exception as exc:
                logger.error("error processing websocket message: %s", exc)
    finally:
        hub.detach(client)
        await client.stop()
    return ws


def _server_features(settings: PreviewSettings) -> dict[str, Any]:
    return {"supports_preview_metadata": True, "max_upload_size": settings.max_upload_size}


# ----- prompts and queue ---------------------------------------------------------------------


async def post_prompt(request: web.Request) -> web.Response:
    settings, engine = request.app[SETTINGS_KEY], request.app[ENGINE_KEY]
    # Bodies that are not JSON raise here, and aiohttp answers 500 text/plain, as ComfyUI does.
    body: Any = await request.json()
    if "number" in body:
        number: int | float = float(body["number"])
    else:
        number = engine.number
        if body.get("front"):
            number = -number
        engine.number += 1

    if "prompt" not in body:
        error = {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        }
        return web.json_response({"error": error, "node_errors": {}}, status=400)

    prompt = body["prompt"]
    prompt_id = str(body.get("prompt_id", uuid.uuid4()))
    partial_targets = body.get("partial_execution_targets")
    result = validate_prompt(settings, prompt, partial_targets)
    extra_data = body["extra_data"] if "extra_data" in body else {}
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    if not result.ok:
        logger.warning("invalid prompt: %s", result.error)
        return web.json_response({"error": result.error, "node_errors": result.node_errors}, status=400)

    sensitive = {key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
    engine.queue.put(QueueItem(number, prompt_id, prompt, extra_data, result.good_outputs, sensitive))
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors})


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE_KEY].queue_info())


async def get_queue(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE_KEY].queue.snapshot())


async def post_queue(request: web.Request) -> web.Response:
    queue = request.app[ENGINE_KEY].queue
    body: Any = await request.json()
    if body.get("clear"):
        queue.clear_pending()
    if "delete" in body:
        for prompt_id in body["delete"]:
            queue.delete_pending(prompt_id)
    return web.Response(status=200)


async def post_interrupt(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        body = {}
    prompt_id = body.get("prompt_id")
    # A targeted interrupt only stops the prompt if it is the one running right now.
    if not prompt_id or prompt_id == engine.running_prompt_id:
        engine.interrupt()
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    await request.json()
    return web.Response(status=200)


async def get_history(request: web.Request) -> web.Response:
    query = request.rel_url.query
    max_items = int(query["max_items"]) if "max_items" in query else None
    offset = int(query["offset"]) if "offset" in query else -1
    return web.json_response(request.app[ENGINE_KEY].queue.get_history(max_items, offset))


async def get_history_entry(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE_KEY].queue.history_entry(request.match_info["prompt_id"]))


async def post_history(request: web.Request) -> web.Response:
    queue = request.app[ENGINE_KEY].queue
    body: Any = await request.json()
    if body.get("clear"):
        queue.clear_history()
    if "delete" in body:
        for prompt_id in body["delete"]:
            queue.delete_history(prompt_id)
    return web.Response(status=200)


# ----- information -----------------------------------------------------------------------------


async def system_stats(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ram_total, ram_free = _memory()
    mib = 1024 * 1024
    vram_total = settings.vram_total_mb * mib if settings.vram_total_mb is not None else ram_total
    vram_free = (
        settings.vram_free_mb * mib if settings.vram_free_mb is not None else min(ram_free, vram_total)
    )
    return web.json_response(
        {
            "system": {
                "os": os.name,
                "ram_total": ram_total,
                "ram_free": ram_free,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": FRONTEND_VERSION,
                "installed_templates_version": TEMPLATES_VERSION,
                "required_templates_version": TEMPLATES_VERSION,
                "python_version": sys.version,
                "pytorch_version": "none (storyboard preview)",
                "embedded_python": False,
                "argv": sys.argv,
            },
            "devices": [
                {
                    "name": settings.device_name,
                    "type": "cpu",
                    "index": None,
                    "vram_total": vram_total,
                    "vram_free": vram_free,
                    "torch_vram_total": vram_total,
                    "torch_vram_free": vram_free,
                }
            ],
        }
    )


async def get_object_info(request: web.Request) -> web.Response:
    return web.json_response(nodes.object_info(request.app[SETTINGS_KEY]))


async def get_object_info_node(request: web.Request) -> web.Response:
    name = request.match_info["node_class"]
    node_type = nodes.lookup(request.app[SETTINGS_KEY], name)
    if node_type is None:
        return web.json_response({})
    return web.json_response({name: node_type.object_info(request.app[SETTINGS_KEY])})


async def get_features(request: web.Request) -> web.Response:
    return web.json_response(_server_features(request.app[SETTINGS_KEY]))


async def get_empty_list(request: web.Request) -> web.Response:
    return web.json_response([])


async def get_model_folders(request: web.Request) -> web.Response:
    return web.json_response(MODEL_FOLDERS)


async def get_models(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    if folder not in MODEL_FOLDERS:
        return web.Response(status=404)
    settings = request.app[SETTINGS_KEY]
    listed = {
        "checkpoints": settings.checkpoints,
        "controlnet": settings.controlnets,
        "upscale_models": settings.upscale_models,
        "clip_vision": settings.clip_vision,
    }
    return web.json_response(list(listed.get(folder, [])))


# ----- application ------------------------------------------------------------------------------


def _routes() -> list[web.RouteDef]:
    return [
        web.get("/ws", websocket),
        web.get("/prompt", get_prompt),
        web.post("/prompt", post_prompt),
        web.get("/queue", get_queue),
        web.post("/queue", post_queue),
        web.post("/interrupt", post_interrupt),
        web.post("/free", post_free),
        web.get("/history", get_history),
        web.get("/history/{prompt_id}", get_history_entry),
        web.post("/history", post_history),
        web.get("/view", files.view),
        web.post("/upload/image", files.upload_image),
        web.get("/system_stats", system_stats),
        web.get("/object_info", get_object_info),
        web.get("/object_info/{node_class}", get_object_info_node),
        web.get("/features", get_features),
        web.get("/embeddings", get_empty_list),
        web.get("/extensions", get_empty_list),
        web.get("/models", get_model_folders),
        web.get("/models/{folder}", get_models),
    ]


def _prepare_data_dir(settings: PreviewSettings) -> None:
    # ComfyUI empties temp/ at start-up; PreviewImage files do not outlive the server.
    shutil.rmtree(settings.temp_dir, ignore_errors=True)
    for folder in (settings.input_dir, settings.output_dir, settings.temp_dir):
        folder.mkdir(parents=True, exist_ok=True)


def create_app(settings: PreviewSettings) -> web.Application:
    """The preview server as an aiohttp application; the worker starts with the app."""
    _prepare_data_dir(settings)
    app = web.Application(
        client_max_size=settings.max_upload_size, middlewares=[empty_not_found, origin_only]
    )
    hub = Hub()
    app[SETTINGS_KEY] = settings
    app[HUB_KEY] = hub
    app[ENGINE_KEY] = Engine(settings, hub)
    routes = _routes()
    # Every route is served both at its path and under /api, like ComfyUI.
    api_routes = [web.RouteDef(r.method, "/api" + r.path, r.handler, r.kwargs) for r in routes]
    app.add_routes(routes + api_routes)
    app.on_startup.append(_start_engine)
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_stop_engine)
    return app


async def _start_engine(app: web.Application) -> None:
    app[ENGINE_KEY].start()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB_KEY].close_all()


async def _stop_engine(app: web.Application) -> None:
    await app[ENGINE_KEY].stop()
