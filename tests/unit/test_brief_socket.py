import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from briefs.models import Brief, Team
from generation import events, services
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


def _reserve_seqs(brief, count: int) -> int:
    """Number `count` events for the brief as committed changes would; returns the last seq."""
    with transaction.atomic():
        return events._next_seq(brief.id, count)


async def _publish(brief, *messages: dict) -> None:
    layer = get_channel_layer()
    for message in messages:
        await layer.group_send(events.brief_group(brief.uuid), {"type": "brief.event", "message": message})


def _update(brief, seq: int, data: dict) -> dict:
    return {"type": "job.updated", "seq": seq, "brief": str(brief.uuid), "data": data}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_events_that_arrive_out_of_order_leave_in_order(brief, template, backend, staff_user, settings):
    settings.LIVE_EVENTS_REORDER_WINDOW = 0.3
    communicator = _communicator(brief, staff_user)
    await communicator.connect()
    snapshot = await communicator.receive_json_from()
    last = await database_sync_to_async(_reserve_seqs)(brief, 3)
    await _publish(brief, *(_update(brief, seq, {"n": seq}) for seq in (last, last - 2, last - 1)))
    received = [await communicator.receive_json_from(timeout=2) for _ in range(3)]
    assert [m["seq"] for m in received] == [snapshot["seq"] + 1, snapshot["seq"] + 2, snapshot["seq"] + 3]
    assert await communicator.receive_nothing(timeout=0.6)  # no resync snapshot
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_lost_event_brings_a_fresh_snapshot_within_the_window_then_events_in_order(
    brief, template, backend, staff_user, settings
):
    window = settings.LIVE_EVENTS_REORDER_WINDOW = 0.3
    communicator = _communicator(brief, staff_user)
    await communicator.connect()
    await communicator.receive_json_from()
    first, second = await database_sync_to_async(lambda: list(brief.scenes.order_by("position")))()
    job = await database_sync_to_async(services.render_job_submit)(scene=first, user=staff_user)
    queued = await communicator.receive_json_from(timeout=2)
    # Two more events commit; the first of them never reaches the layer.
    last = await database_sync_to_async(_reserve_seqs)(brief, 2)
    assert last == queued["seq"] + 2
    payload = await database_sync_to_async(events.job_payload)(job)
    sent_at = time.monotonic()
    await _publish(brief, _update(brief, last, payload))
    resync = await communicator.receive_json_from(timeout=window + 2)
    assert time.monotonic() - sent_at < window + 1
    assert resync["type"] == "snapshot"
    assert resync["seq"] == last
    assert [j["job"] for j in resync["jobs"]] == [str(job.uuid)]
    # The socket stays open and goes on from the snapshot.
    await database_sync_to_async(services.render_job_submit)(scene=second, user=staff_user)
    following = await communicator.receive_json_from(timeout=2)
    assert following["type"] == "job.updated"
    assert following["seq"] == last + 1
    assert following["data"]["scene"] == str(second.uuid)
    assert await communicator.receive_nothing(timeout=window + 0.3)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_event_committed_while_the_snapshot_is_read_still_arrives(
    brief, template, backend, staff_user, monkeypatch
):
    scene = await database_sync_to_async(brief.scenes.first)()
    read_snapshot = BriefConsumer.__dict__["_snapshot"].func

    def snapshot_then_a_render(consumer, user, brief_uuid):
        snapshot = read_snapshot(consumer, user, brief_uuid)
        services.render_job_submit(scene=scene, user=staff_user)
        return snapshot

    monkeypatch.setattr(BriefConsumer, "_snapshot", database_sync_to_async(snapshot_then_a_render))
    communicator = _communicator(brief, staff_user)
    await communicator.connect()
    snapshot = await communicator.receive_json_from()
    assert snapshot["jobs"] == []
    update = await communicator.receive_json_from(timeout=2)
    assert update["seq"] == snapshot["seq"] + 1
    assert update["data"]["state"] == "queued"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_resync_for_someone_who_lost_access_closes_the_socket(brief, writer, settings):
    settings.LIVE_EVENTS_REORDER_WINDOW = 0.2
    await database_sync_to_async(brief.team.members.add)(writer)
    communicator = _communicator(brief, writer)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.receive_json_from()

    def move_brief_to_another_team() -> int:
        Brief.objects.filter(pk=brief.pk).update(team=Team.objects.create(name="Other"))
        return _reserve_seqs(brief, 2)

    last = await database_sync_to_async(move_brief_to_another_team)()
    await _publish(brief, _update(brief, last, {}))
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4403}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_for_a_brief_the_user_may_not_see_is_closed(brief, writer):
    await database_sync_to_async(
        lambda: Brief.objects.filter(pk=brief.pk).update(team=Team.objects.create(name="Other"))
    )()
    communicator = _communicator(brief, writer)
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4403
    assert not get_channel_layer().groups.get(events.brief_group(brief.uuid))
