"""A render's preview frames reach the sockets of its brief while it runs, before its final image.

The storyboard preview server sends latent2rgb previews (binary frames, as ComfyUI does); the render
watcher follows it and publishes them through the channel layer (Redis pub/sub on a real Valkey, as
in production) to the brief's sockets. Nothing of ours is replaced."""

import asyncio
import base64
import io
import sys
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from PIL import Image

from generation import services
from generation.consumers import FORBIDDEN, BriefConsumer
from generation.models import Attempt, AttemptState, Backend, RenderJob
from generation.providers.base import EventKind, ProgressEvent
from generation.watcher import BackendWatch, Watcher
from storycore.valkey import valkey_server_argv
from tests.integration.test_comfyui_reliability import watcher_running
from tests.stack import free_port, running

pytestmark = pytest.mark.integration

PREVIEW_KEYS = {"type", "job", "scene", "attempt", "image"}


@pytest.fixture(scope="module")
def latent2rgb_preview(tmp_path_factory):
    """A preview server that sends a preview frame with every sampler step."""
    port = free_port()
    data = tmp_path_factory.mktemp("latent2rgb-preview")
    argv = [sys.executable, "manage.py", "preview_server", "--port", str(port), "--data-dir", str(data)]
    argv += ["--render-seconds", "1.5", "--preview-method", "latent2rgb"]
    with running("preview", argv, env=None, log_dir=data / "logs", port=port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def valkey_url(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("valkey")
    with running("valkey", valkey_server_argv(port=port, data_dir=data), env=None, log_dir=data, port=port):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def live(settings, valkey_url):
    """The production channel layer on the test's Valkey, and a watcher that acts quickly."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [valkey_url]},
        }
    }
    settings.REDIS_URL = valkey_url
    settings.RENDER_POLL_INTERVAL = 0.3
    settings.DISPATCH_INTERVAL = 0.3
    settings.RECONCILE_INTERVAL = 60
    settings.LIVE_ACCESS_RECHECK_INTERVAL = 0.2
    settings.LIVE_PREVIEW_MIN_INTERVAL_S = 0.3
    return settings


def _communicator(brief, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(BriefConsumer.as_asgi(), f"/ws/briefs/{brief.uuid}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"brief_uuid": brief.uuid}}
    return communicator


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await database_sync_to_async(condition)():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await asyncio.sleep(0.05)


def _decoded(image_url: str) -> Image.Image:
    prefix, _, encoded = image_url.partition(",")
    assert prefix == "data:image/jpeg;base64", prefix
    image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
    image.load()
    return image


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_preview_frames_reach_the_briefs_sockets_before_the_final_image(
    latent2rgb_preview, live, template, brief, staff_user
):
    user_model = get_user_model()
    outsider = await database_sync_to_async(user_model.objects.create_user)("outsider", password="pw-long-1")
    member = await database_sync_to_async(user_model.objects.create_user)("member", password="pw-long-2")
    await database_sync_to_async(brief.team.members.add)(member)
    scene = await database_sync_to_async(brief.scenes.first)()
    backend = await database_sync_to_async(services.backend_register_preview)(url=latent2rgb_preview)

    with watcher_running():
        await _until(
            lambda: Backend.objects.filter(pk=backend.pk, socket_connected=True).exists(),
            15,
            "the watcher's socket to the preview server",
        )
        owner = _communicator(brief, staff_user)
        assert (await owner.connect())[0]
        snapshot = await owner.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"

        # A user of another team is never admitted to the brief's group.
        stranger = _communicator(brief, outsider)
        assert await stranger.connect() == (False, FORBIDDEN)

        # A member admitted, then taken off the team, is closed out before the render starts.
        leaving = _communicator(brief, member)
        assert (await leaving.connect())[0]
        assert (await leaving.receive_json_from(timeout=5))["type"] == "snapshot"
        await database_sync_to_async(brief.team.members.remove)(member)
        assert await leaving.receive_output(timeout=5) == {"type": "websocket.close", "code": FORBIDDEN}

        job = await database_sync_to_async(services.render_job_submit)(scene=scene, user=staff_user)
        received: list[dict] = []
        while True:
            message = await owner.receive_json_from(timeout=20)
            received.append(message)
            if message["type"] == "job.updated" and message["data"]["state"] == "succeeded":
                break
        assert await leaving.receive_nothing(timeout=0.2)
        await owner.disconnect()
        await leaving.disconnect()

    previews = [m for m in received if m["type"] == "job.preview"]
    assert previews, [m["type"] for m in received]
    attempt = await database_sync_to_async(Attempt.objects.get)(job=job)
    for preview in previews:
        assert set(preview) == PREVIEW_KEYS  # no seq: it stays out of the numbered order
        assert preview["job"] == str(job.uuid)
        assert preview["scene"] == str(scene.uuid)
        assert preview["attempt"] == str(attempt.uuid)
        assert _decoded(preview["image"]).size[0] > 0
    # The numbered events around them came in order, none missing, none repeated.
    numbered = [m["seq"] for m in received if "seq" in m]
    assert numbered == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(numbered)))
    # The watcher let through one frame per interval at most (the server sends one per step).
    assert len(previews) <= 1.5 / 0.3 + 1


# ---- The watcher's side alone: frames handed to it as its backend socket would ----


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), "navy").save(buffer, format="JPEG")
    return buffer.getvalue()


async def _sent(layer, channel, timeout: float = 0.3) -> list[dict]:
    """What reached a channel of the brief's group within `timeout` of the last message."""
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout))
        except TimeoutError:
            return messages


def _attempts(brief, staff_user, backend, states: list[str]) -> list[Attempt]:
    job = services.render_job_submit(scene=brief.scenes.first(), user=staff_user)
    made = []
    for number, state in enumerate(states, start=1):
        attempt = Attempt(job=job, number=number, backend=backend, state=state)
        attempt.remote_handle = str(attempt.uuid)
        attempt.save()
        made.append(attempt)
    return made


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_watcher_sends_real_images_once_per_interval_under_the_cap_and_none_once_ended(
    settings, template, backend, brief, staff_user
):
    settings.LIVE_PREVIEW_MIN_INTERVAL_S = 60
    jpeg = _jpeg()
    settings.LIVE_PREVIEW_MAX_BYTES = len(jpeg)
    states = [AttemptState.RUNNING, AttemptState.SUBMITTING, AttemptState.SUCCEEDED]
    throttled, capped, ended = await database_sync_to_async(_attempts)(brief, staff_user, backend, states)
    job = await database_sync_to_async(RenderJob.objects.select_related("scene").get)(pk=throttled.job_id)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(f"brief.{brief.uuid}", channel)
    watcher = Watcher(workers=1)
    watch = BackendWatch(watcher, backend.pk, backend.base_url, "storycore-test")

    async def frame(attempt: Attempt, data: bytes, claimed: str = "image/png") -> None:
        event = ProgressEvent(EventKind.PREVIEW, preview=data, preview_type=claimed)
        await watch._on_event(str(attempt.uuid), event)

    try:
        await frame(throttled, b"<html>not an image</html>", claimed="image/jpeg")  # bytes decide
        await frame(throttled, jpeg)
        await frame(throttled, jpeg)  # within the interval: dropped
        sent = await _sent(layer, channel)
        assert [m["type"] for m in sent] == ["brief.preview"]
        assert sent[0]["message"] == {
            "type": "job.preview",
            "job": str(job.uuid),
            "scene": str(job.scene.uuid),
            "attempt": str(throttled.uuid),
            "image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(),
        }

        await frame(capped, jpeg + b"\0")  # one byte over the cap
        assert await _sent(layer, channel) == []
        await frame(capped, jpeg)
        assert [m["message"]["attempt"] for m in await _sent(layer, channel)] == [str(capped.uuid)]

        await frame(ended, jpeg)
        assert await _sent(layer, channel) == []
    finally:
        watcher.pool.shutdown(wait=True)
        watcher.background.shutdown(wait=True)
        watcher.dispatcher.shutdown(wait=True)
