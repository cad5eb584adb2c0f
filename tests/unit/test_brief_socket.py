import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from generation import services
from generation.consumers import BriefConsumer
from storycore.asgi import application


def _communicator(brief, user):
    app = BriefConsumer.as_asgi()
    communicator = WebsocketCommunicator(app, f"/ws/briefs/{brief.uuid}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"brief_uuid": brief.uuid}}
    return communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_watcher_gets_a_snapshot_then_numbered_updates(brief, template, backend, staff_user):
    communicator = _communicator(brief, staff_user)
    connected, _ = await communicator.connect()
    assert connected
    snapshot = await communicator.receive_json_from()
    assert snapshot["type"] == "snapshot"
    assert snapshot["jobs"] == []
    scene = await database_sync_to_async(brief.scenes.first)()
    await database_sync_to_async(services.render_job_submit)(scene=scene, user=staff_user)
    update = await communicator.receive_json_from(timeout=5)
    assert update["type"] == "job.updated"
    assert update["seq"] == snapshot["seq"] + 1
    assert update["data"]["scene"] == str(scene.uuid)
    assert update["data"]["state"] == "queued"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_anonymous_socket_is_closed(brief):
    communicator = _communicator(brief, AnonymousUser())
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_from_a_foreign_origin_is_refused(brief, staff_user):
    communicator = WebsocketCommunicator(
        application,
        f"/ws/briefs/{brief.uuid}/",
        headers=[(b"origin", b"http://evil.example"), (b"host", b"localhost")],
    )
    connected, _ = await communicator.connect()
    assert not connected
