"""A real preview server on a loopback port, and helpers to compare it with the recordings."""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from generation.bundled_backends.preview_server import PreviewSettings, create_app
from tests.app_thread import AppThread

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "comfyui"
RECORDED_CHECKPOINT = "tiny_sd15_random.safetensors"
WS_TIMEOUT = 10.0


def recording(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def recorded_step(name: str, label: str) -> dict[str, Any]:
    for step in recording(name)["steps"]:
        if step["label"] == label:
            return step
    raise KeyError(label)


def recorded_frames(name: str, socket: str) -> list[dict[str, Any] | dict[str, Any]]:
    """Frames a recorded socket received: parsed JSON messages, or the binary frame descriptions."""
    frames = []
    for frame in recording(name)[socket]["received"]:
        frames.append(frame["json"] if "json" in frame else {"binary": frame["binary"]})
    return frames


@dataclasses.dataclass
class RunningServer:
    base_url: str
    ws_url: str
    settings: PreviewSettings
    http: httpx.Client

    def socket(self, client_id: str | None = None) -> ClientConnection:
        url = self.ws_url if client_id is None else f"{self.ws_url}?clientId={client_id}"
        return connect(url, open_timeout=WS_TIMEOUT, max_size=None)

    def post_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/prompt", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def upload(self, name: str, content: bytes, **fields: str) -> httpx.Response:
        return self.http.post("/upload/image", files={"image": (name, content, "image/png")}, data=fields)


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[Callable[..., RunningServer]]:
    """Start a preview server with settings overrides; each test gets a fresh data dir."""
    started: list[tuple[AppThread, httpx.Client]] = []

    def start(**overrides: Any) -> RunningServer:
        options: dict[str, Any] = {
            "data_dir": tmp_path / f"data{len(started)}",
            "render_seconds": 0.05,
            "checkpoints": [RECORDED_CHECKPOINT],
        }
        options.update(overrides)
        settings = PreviewSettings(**options)
        thread = AppThread(lambda: create_app(settings)).start()
        base_url = f"http://127.0.0.1:{thread.port}"
        http = httpx.Client(base_url=base_url, timeout=10.0)
        started.append((thread, http))
        return RunningServer(base_url, f"ws://127.0.0.1:{thread.port}/ws", settings, http)

    yield start
    for thread, http in started:
        http.close()
        thread.stop()


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


def receive(ws: ClientConnection, timeout: float = WS_TIMEOUT) -> dict[str, Any]:
    """The next frame: parsed JSON, or {"binary": bytes}."""
    frame = ws.recv(timeout=timeout)
    if isinstance(frame, bytes):
        return {"binary": frame}
    return json.loads(frame)


def receive_until_done(
    ws: ClientConnection, prompt_id: str, timeout: float = WS_TIMEOUT
) -> list[dict[str, Any]]:
    """Frames up to and including the final `executing {node: null}` for prompt_id."""
    frames = []
    while True:
        frame = receive(ws, timeout)
        frames.append(frame)
        if frame.get("type") == "executing" and frame["data"] == {"node": None, "prompt_id": prompt_id}:
            return frames


def receive_until(ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = receive(ws)
        frames.append(frame)
        if predicate(frame):
            return frames


def assert_silent(ws: ClientConnection, seconds: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        frame = ws.recv(timeout=seconds)
        pytest.fail(f"unexpected frame {frame!r}")


_TEMP_NAME = re.compile(r"ComfyUI_temp_[a-z]{5}_")


def normalise(value: Any, prompt_ids: dict[str, str]) -> Any:
    """Make a recorded or live message comparable: ids mapped, timestamps and random names masked,
    and floats/bools tagged so that 1.0 and 1 (or true and 1) do not compare equal."""
    value = copy.deepcopy(value)

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                prompt_ids.get(key, key): (
                    "<timestamp>" if key == "timestamp" and isinstance(sub, int) else walk(sub)
                )
                for key, sub in item.items()
            }
        if isinstance(item, list):
            return [walk(sub) for sub in item]
        if isinstance(item, str):
            item = prompt_ids.get(item, item)
            return _TEMP_NAME.sub("ComfyUI_temp_<rand>_", item)
        # 1 == 1.0 == True in Python, but clients see the difference in JSON; keep it visible.
        if isinstance(item, bool):
            return f"<bool {item}>"
        if isinstance(item, float):
            return f"<float {item!r}>"
        return item

    return walk(value)


def message_types(frames: list[dict[str, Any]]) -> list[str]:
    return [frame.get("type", "<binary>") for frame in frames]


def strip_tracebacks(value: Any) -> Any:
    """Tracebacks name the server's own source lines; keep their shape, drop their text."""
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if key == "traceback":
                assert isinstance(sub, list) and all(isinstance(line, str) for line in sub)
                out[key] = "<traceback>"
            else:
                out[key] = strip_tracebacks(sub)
        return out
    if isinstance(value, list):
        return [strip_tracebacks(sub) for sub in value]
    return value


def drain(ws: ClientConnection, quiet_seconds: float = 0.3) -> list[dict[str, Any]]:
    """Every frame that arrives until the socket stays quiet for quiet_seconds."""
    frames = []
    while True:
        try:
            frames.append(receive(ws, timeout=quiet_seconds))
        except TimeoutError:
            return frames


def wait_for_history(server: RunningServer, prompt_id: str, timeout: float = WS_TIMEOUT) -> dict[str, Any]:
    """The history entry of prompt_id once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.http.get(f"/history/{prompt_id}").json()
        if entry:
            return entry[prompt_id]
        time.sleep(0.02)
    raise AssertionError(f"prompt {prompt_id} did not finish")


def warm_txt2img_cache(server: RunningServer, body: dict[str, Any]) -> None:
    """Run a recorded txt2img graph once with another seed and a single step.

    The recorded server had already run this graph, so its checkpoint, text and
    latent nodes came from the cache; warming ours makes the runs comparable.
    """
    warm = copy.deepcopy(body)
    warm.pop("client_id", None)
    warm["prompt"]["3"]["inputs"].update(seed=1, steps=1)
    prompt_id = server.post_prompt(warm)["prompt_id"]
    wait_for_history(server, prompt_id)
