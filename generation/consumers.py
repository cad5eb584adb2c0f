from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from briefs.models import Brief
from briefs.selectors import briefs_visible_to
from generation.events import brief_group, job_payload
from generation.selectors import latest_job_per_scene


class BriefConsumer(AsyncJsonWebsocketConsumer):
    """Live events of one brief. Read-only: the socket carries no commands."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        brief_uuid = self.scope["url_route"]["kwargs"]["brief_uuid"]
        snapshot = await self._snapshot(user, brief_uuid) if user is not None else None
        if snapshot is None:
            # Unknown brief and forbidden brief look the same: nothing leaks.
            await self.close(code=4403)
            return
        self.group = brief_group(brief_uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Clients only listen; a resync is a reconnect.
        return

    async def brief_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["message"])

    @database_sync_to_async
    def _snapshot(self, user: Any, brief_uuid: str) -> dict[str, Any] | None:
        brief = briefs_visible_to(user).filter(uuid=brief_uuid).first()
        if brief is None:
            return None
        jobs = latest_job_per_scene(brief)
        return {
            "type": "snapshot",
            "seq": Brief.objects.filter(pk=brief.pk).values_list("event_seq", flat=True).get(),
            "brief": str(brief.uuid),
            "jobs": [job_payload(job) for job in jobs.values()],
        }
