import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from briefs.models import Brief
from briefs.selectors import briefs_visible_to
from generation.events import brief_group, job_payload
from generation.live_order import ReorderBuffer
from generation.selectors import latest_job_per_scene

log = logging.getLogger(__name__)


class BriefConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one brief, strictly in `seq` order. Read-only: the socket carries no commands."""

    group: str | None = None
    order: ReorderBuffer[dict[str, Any]] | None = None
    order_lock: asyncio.Lock | None = None
    order_timer: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        brief_uuid = self.scope["url_route"]["kwargs"]["brief_uuid"]
        snapshot = None
        if user is not None and user.is_authenticated:
            # Join before the snapshot is read: an event committed meanwhile then arrives after it.
            self.group = brief_group(brief_uuid)
            await self.channel_layer.group_add(self.group, self.channel_name)
            snapshot = await self._snapshot(user, brief_uuid)
        if snapshot is None:
            # Unknown brief and forbidden brief look the same: nothing leaks.
            if self.group is not None:
                await self.channel_layer.group_discard(self.group, self.channel_name)
                self.group = None
            await self.close(code=4403)
            return
        self.order = ReorderBuffer(delivered=snapshot["seq"], window=settings.LIVE_EVENTS_REORDER_WINDOW)
        self.order_lock = asyncio.Lock()
        await self.accept()
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.order_timer is not None:
            self.order_timer.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Clients only listen.
        return

    async def brief_event(self, event: dict[str, Any]) -> None:
        if self.order is None or self.order_lock is None:
            return
        message = event["message"]
        async with self.order_lock:
            for due in self.order.offer(message["seq"], message, now=time.monotonic()):
                await self.send_json(due)
        if self.order.held and (self.order_timer is None or self.order_timer.done()):
            self.order_timer = asyncio.create_task(self._fill_holes())

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
        brief_uuid = self.scope["url_route"]["kwargs"]["brief_uuid"]
        log.info(
            "live events of brief %s: seq %d never came; sending a snapshot",
            brief_uuid,
            self.order.delivered + 1,
        )
        snapshot = await self._snapshot(self.scope.get("user"), brief_uuid)
        if snapshot is None:
            await self.close(code=4403)
            return
        await self.send_json(snapshot)
        for due in self.order.restart(snapshot["seq"], now=time.monotonic()):
            await self.send_json(due)

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
