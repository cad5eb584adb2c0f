import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from briefs.models import Brief
from briefs.selectors import brief_watchable_by, briefs_visible_to
from generation.events import brief_group, job_payload
from generation.live_order import ReorderBuffer
from generation.selectors import latest_job_per_scene

log = logging.getLogger(__name__)

# Closing code for "not allowed": an unknown brief, a forbidden one, and access lost later.
FORBIDDEN = 4403
# Answers kept at most this long before the database is asked again (as a share of the interval).
ACCESS_ANSWER_SHARE = 0.5

# One answer per event loop, user and brief at a time, shared by all of that user's sockets on the
# brief: 300 sockets of one director cost one query per interval, not 300.
_answers: dict[tuple[int, int | None, str], tuple[float, asyncio.Future[bool]]] = {}


async def _watchable(user_pk: int | None, brief_uuid: str) -> bool:
    loop = asyncio.get_running_loop()
    key = (id(loop), user_pk, brief_uuid)
    now = time.monotonic()
    kept = _answers.get(key)
    fresh_for = settings.LIVE_ACCESS_RECHECK_INTERVAL * ACCESS_ANSWER_SHARE
    if kept is None or now - kept[0] >= fresh_for or (kept[1].done() and kept[1].exception()):
        if len(_answers) > 10_000:  # forget answers nobody asked for lately
            for stale in [k for k, (at, _) in _answers.items() if now - at > 10 * fresh_for]:
                del _answers[stale]
        future = asyncio.ensure_future(
            database_sync_to_async(brief_watchable_by)(user_pk=user_pk, brief_uuid=brief_uuid)
        )
        kept = _answers[key] = (now, future)
    return await asyncio.shield(kept[1])


class BriefConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one brief, strictly in `seq` order, and preview frames of its renders as
    they come (no `seq`, never held or replayed). Read-only: the socket carries no commands.

    Access is asked again every LIVE_ACCESS_RECHECK_INTERVAL, off the path events take (a socket
    that waited on the database before relaying each event fell behind its own queue under load):
    a user deactivated or removed from the brief's team is closed out with 4403.
    """

    group: str | None = None
    user_pk: int | None = None
    brief_uuid: str = ""
    access_checked_at: float = 0.0
    recheck: asyncio.Task[None] | None = None
    order: ReorderBuffer[dict[str, Any]] | None = None
    order_lock: asyncio.Lock | None = None
    order_timer: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        brief_uuid = str(self.scope["url_route"]["kwargs"]["brief_uuid"])
        snapshot = None
        if user is not None and user.is_authenticated:
            # Join before the snapshot is read: an event committed meanwhile then arrives after it.
            self.group = brief_group(brief_uuid)
            await self.channel_layer.group_add(self.group, self.channel_name)
            snapshot = await self._snapshot(user, brief_uuid)
        if snapshot is None:
            # Unknown brief and forbidden brief look the same: nothing leaks.
            await self._leave()
            await self.close(code=FORBIDDEN)
            return
        self.user_pk, self.brief_uuid = user.pk, brief_uuid
        self.access_checked_at = time.monotonic()
        self.order = ReorderBuffer(delivered=snapshot["seq"], window=settings.LIVE_EVENTS_REORDER_WINDOW)
        self.order_lock = asyncio.Lock()
        await self.accept()
        await self.send_json(snapshot)
        self.recheck = asyncio.create_task(self._recheck_access())

    async def disconnect(self, code: int) -> None:
        for task in (self.recheck, self.order_timer):
            if task is not None:
                task.cancel()
        await self._leave()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Clients only listen.
        return

    async def brief_event(self, event: dict[str, Any]) -> None:
        if self.group is None or self.order is None or self.order_lock is None:
            return  # not accepted, or access was revoked and the close is on its way
        message = event["message"]
        async with self.order_lock:
            for due in self.order.offer(message["seq"], message, now=time.monotonic()):
                await self.send_json(due)
        if self.order.held and (self.order_timer is None or self.order_timer.done()):
            self.order_timer = asyncio.create_task(self._fill_holes())

    async def brief_preview(self, event: dict[str, Any]) -> None:
        """A preview frame (`job.preview`, no `seq`): relayed at once, outside the numbered order."""
        if self.group is None or self.order is None:
            return  # not accepted, or access was revoked and the close is on its way
        await self.send_json(event["message"])

    async def _fill_holes(self) -> None:
        """While events are held, wait out their window; a hole still open then gets a snapshot."""
        assert self.order is not None and self.order_lock is not None
        try:
            while (deadline := self.order.deadline()) is not None:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                async with self.order_lock:
                    if self.order.needs_resync(now=time.monotonic()):
                        await self._resync()
        except Exception:
            # The client's last resort: it reconnects and gets a snapshot that way.
            log.warning("live events resync failed; closing the socket", exc_info=True)
            await self.close()

    async def _resync(self) -> None:
        assert self.order is not None
        log.info(
            "live events of brief %s: seq %d never came; sending a snapshot",
            self.brief_uuid,
            self.order.delivered + 1,
        )
        if not await self._still_allowed():
            await self._revoke()
            return
        snapshot = await self._snapshot(self.scope.get("user"), self.brief_uuid)
        if snapshot is None:
            await self._revoke()
            return
        await self.send_json(snapshot)
        for due in self.order.restart(snapshot["seq"], now=time.monotonic()):
            await self.send_json(due)

    async def _recheck_access(self) -> None:
        while self.group is not None:
            await asyncio.sleep(settings.LIVE_ACCESS_RECHECK_INTERVAL)
            try:
                allowed = await self._still_allowed()
            except Exception:
                log.warning(
                    "could not re-check access to brief %s; will ask again", self.brief_uuid, exc_info=True
                )
                continue
            if not allowed:
                await self._revoke()
                return

    async def _still_allowed(self) -> bool:
        allowed = await _watchable(self.user_pk, self.brief_uuid)
        self.access_checked_at = time.monotonic()
        return allowed

    async def _revoke(self) -> None:
        if self.group is None:
            return  # revoked already (by the periodic check or an event's)
        await self._leave()
        await self.close(code=FORBIDDEN)

    async def _leave(self) -> None:
        if self.group is not None:
            group, self.group = self.group, None
            await self.channel_layer.group_discard(group, self.channel_name)

    @database_sync_to_async
    def _snapshot(self, user: Any, brief_uuid: str) -> dict[str, Any] | None:
        brief = briefs_visible_to(user).filter(uuid=brief_uuid).first()
        if brief is None:
            return None
        # The seq first: every event up to it has committed, so the jobs read next are at
        # least that new, and any later change comes after it as an event.
        seq = Brief.objects.filter(pk=brief.pk).values_list("event_seq", flat=True).get()
        jobs = latest_job_per_scene(brief)
        return {
            "type": "snapshot",
            "seq": seq,
            "brief": str(brief.uuid),
            "jobs": [job_payload(job) for job in jobs.values()],
        }
