"""One job, run the way worker-comfyui 5.x runs it, against a ComfyUI-compatible server.

Upload the input images, open the socket under a fresh client id, POST /prompt,
wait for `executing` with node null (or `execution_error`), read /history, fetch
every non-temp image from /view, and return it as base64 or as an S3 URL. The
returned dict is what the handler returns: `{"error": str, ...}` for a failure.
The texts of the failures are worker-comfyui's (tests/data/runpod/worker-comfyui/).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

SOCKET_RECONNECTS = 5
SOCKET_RECONNECT_DELAY = 0.5
READY_TRIES = 20
READY_INTERVAL = 0.1
PRESIGNED_URL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class S3Target:
    """worker-comfyui's BUCKET_* variables: with an endpoint URL set, images go to S3."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> S3Target | None:
        environ = dict(os.environ) if environ is None else environ
        url = environ.get("BUCKET_ENDPOINT_URL", "")
        if not url:
            return None
        return cls(url, environ.get("BUCKET_ACCESS_KEY_ID", ""), environ.get("BUCKET_SECRET_ACCESS_KEY", ""))


def _validate(job_input: Any) -> tuple[dict[str, Any], list[dict[str, str]]] | dict[str, Any]:
    if job_input is None:
        return {"error": "Please provide input"}
    if isinstance(job_input, str):
        try:
            job_input = json.loads(job_input)
        except ValueError:
            return {"error": "Invalid JSON format in input"}
    workflow = job_input.get("workflow") if isinstance(job_input, dict) else None
    if workflow is None:
        return {"error": "Missing 'workflow' parameter"}
    images = job_input.get("images") or []
    if not isinstance(images, list) or not all(
        isinstance(item, dict) and "name" in item and "image" in item for item in images
    ):
        return {"error": "'images' must be a list of objects with 'name' and 'image' keys"}
    return workflow, images


def _rejection_text(status: int, text: str) -> str:
    """worker-comfyui's message for a /prompt that ComfyUI refused."""
    try:
        data = json.loads(text)
    except ValueError:
        return f"ComfyUI returned HTTP {status}. Raw response: {text}"
    message = "Workflow validation failed"
    details = []
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", message))
        if error.get("type") == "prompt_outputs_failed_validation":
            message = "Workflow validation failed"
    elif error is not None:
        message = str(error)
    for node_id, node_error in (data.get("node_errors") or {}).items() if isinstance(data, dict) else []:
        if isinstance(node_error, dict):
            for key, value in node_error.items():
                details.append(f"Node {node_id} ({key}): {value}")
        else:
            details.append(f"Node {node_id}: {node_error}")
    if details:
        return f"{message}:\n" + "\n".join(f"• {detail}" for detail in details)
    return f"{message}. Raw response: {text}"


class ComfyWorker:
    def __init__(self, comfyui_url: str, *, s3: S3Target | None = None) -> None:
        self.comfyui_url = comfyui_url.rstrip("/")
        self.s3 = s3

    async def run(self, job_id: str, job_input: Any) -> dict[str, Any]:
        checked = _validate(job_input)
        if isinstance(checked, dict):
            return checked
        workflow, images = checked
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        async with aiohttp.ClientSession(self.comfyui_url, timeout=timeout) as http:
            if not await self._ready(http):
                return {"error": f"ComfyUI server ({self.comfyui_url}) not reachable after multiple retries."}
            problems = await self._upload(http, images)
            if problems:
                return {"error": "Failed to upload one or more input images", "details": problems}
            client_id = str(uuid.uuid4())
            try:
                socket = await http.ws_connect(f"/ws?clientId={client_id}", heartbeat=None)
            except aiohttp.ClientError as exc:
                return {"error": f"WebSocket communication error: {exc.__class__.__name__}"}
            try:
                response = await http.post("/prompt", json={"prompt": workflow, "client_id": client_id})
                text = await response.text()
                if response.status != 200:
                    return {"error": _rejection_text(response.status, text)}
                prompt_id = str(json.loads(text)["prompt_id"])
                errors = await self._wait(http, socket, client_id, prompt_id)
            except aiohttp.ClientError as exc:
                return {"error": f"HTTP communication error with ComfyUI: {exc.__class__.__name__}: {exc}"}
            finally:
                await socket.close()
            if isinstance(errors, dict):
                return errors
            return await self._collect(http, job_id, prompt_id, errors)

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        for _ in range(READY_TRIES):
            if await self._ready_once(http):
                return True
            await asyncio.sleep(READY_INTERVAL)
        return False

    async def _upload(self, http: aiohttp.ClientSession, images: list[dict[str, str]]) -> list[str]:
        problems = []
        for item in images:
            name, data = str(item["name"]), str(item["image"])
            if "," in data:
                data = data.split(",", 1)[1]  # a data URI: everything up to the first comma goes
            try:
                content = base64.b64decode(data)
            except ValueError as exc:
                problems.append(f"Error decoding base64 for {name}: {exc}")
                continue
            form = aiohttp.FormData()
            form.add_field("image", content, filename=name, content_type="image/png")
            form.add_field("overwrite", "true")
            try:
                async with http.post("/upload/image", data=form) as response:
                    if response.status != 200:
                        problems.append(f"Error uploading {name}: HTTP {response.status}")
            except aiohttp.ClientError as exc:
                problems.append(f"Error uploading {name}: {exc}")
        return problems

    async def _wait(
        self,
        http: aiohttp.ClientSession,
        socket: aiohttp.ClientWebSocketResponse,
        client_id: str,
        prompt_id: str,
    ) -> list[str] | dict[str, Any]:
        """Errors seen while the prompt ran (empty on success), or the handler's error return."""
        errors: list[str] = []
        reconnects = 0
        while True:
            message = await socket.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                payload = json.loads(message.data)
                data = payload.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                if payload.get("type") == "executing" and data.get("node") is None:
                    return errors
                if payload.get("type") == "execution_error":
                    errors.append(
                        f"Workflow execution error: Node Type: {data.get('node_type')}, "
                        f"Node ID: {data.get('node_id')}, Message: {data.get('exception_message')}"
                    )
                    return errors
            elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                if not await self._ready_once(http) or reconnects >= SOCKET_RECONNECTS:
                    return {
                        "error": "WebSocket communication error: ComfyUI HTTP unreachable during websocket reconnect"
                    }
                reconnects += 1
                await asyncio.sleep(SOCKET_RECONNECT_DELAY)
                socket = await http.ws_connect(f"/ws?clientId={client_id}", heartbeat=None)

    async def _ready_once(self, http: aiohttp.ClientSession) -> bool:
        # worker-comfyui asks GET / (the frontend); the preview server serves no frontend, so
        # /system_stats, which every ComfyUI answers, stands in for it.
        try:
            async with http.get("/system_stats") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def _collect(
        self, http: aiohttp.ClientSession, job_id: str, prompt_id: str, errors: list[str]
    ) -> dict[str, Any]:
        async with http.get(f"/history/{prompt_id}") as response:
            history = await response.json()
        if prompt_id not in history:
            return {"error": f"Prompt ID {prompt_id} not found in history after execution."}
        images: list[dict[str, str]] = []
        for node_id, node_output in (history[prompt_id].get("outputs") or {}).items():
            for key in node_output:
                if key != "images":
                    log.warning("node %s output %r ignored: only images are returned", node_id, key)
            for image in node_output.get("images") or []:
                if image.get("type") == "temp":
                    continue
                params = {
                    "filename": image["filename"],
                    "subfolder": image.get("subfolder", ""),
                    "type": image.get("type", "output"),
                }
                async with http.get("/view", params=params) as view:
                    if view.status != 200:
                        errors.append(
                            f"Failed to fetch image data for {image['filename']} from /view endpoint."
                        )
                        continue
                    content = await view.read()
                if self.s3 is None:
                    data = base64.b64encode(content).decode("ascii")
                    images.append({"filename": image["filename"], "type": "base64", "data": data})
                    continue
                try:
                    url = await asyncio.get_running_loop().run_in_executor(
                        None, self._upload_s3, job_id, image["filename"], content
                    )
                except Exception as exc:
                    errors.append(f"Error uploading {image['filename']} to S3: {exc}")
                    continue
                images.append({"filename": image["filename"], "type": "s3_url", "data": url})
        if errors and not images:
            return {"error": "Job processing failed", "details": errors}
        if not images:
            return {"status": "success_no_images", "images": []}
        result: dict[str, Any] = {"images": images}
        if errors:
            result["errors"] = errors
        return result

    def _upload_s3(self, job_id: str, filename: str, content: bytes) -> str:
        """runpod's rp_upload.upload_image: bucket = month-year, key = job id / 8 hex + extension."""
        assert self.s3 is not None
        extension = os.path.splitext(filename)[1] or ".png"
        key = f"{job_id}/{uuid.uuid4().hex[:8]}{extension}"
        if not (self.s3.access_key_id and self.s3.secret_access_key):
            return f"simulated_uploaded/{key.split('/', 1)[1]}"
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            aws_access_key_id=self.s3.access_key_id,
            aws_secret_access_key=self.s3.secret_access_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )
        bucket = time.strftime("%m-%y")
        client.put_object(Bucket=bucket, Key=key, Body=content, ContentType="image/png")
        return str(
            client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGNED_URL_SECONDS
            )
        )
