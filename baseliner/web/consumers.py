"""The attempt events socket: read-only pushes of state, progress, scores and warnings."""
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from baseliner.attempts.access import attempt_for_user
from baseliner.attempts.lifecycle import attempt_enforce_deadline_by_id

from .events import attempt_group


@database_sync_to_async
def _may_see(user, attempt_id) -> bool:
    try:
        attempt = attempt_for_user(user=user, attempt_id=attempt_id)
    except Http404:
        return False
    attempt_enforce_deadline_by_id(attempt_id=attempt.pk)  # time up: the page hears "ended" on (re)connect
    return True


class AttemptEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.attempt_id = self.scope["url_route"]["kwargs"]["attempt_id"]
        self.group = None
        if not await _may_see(self.scope.get("user"), self.attempt_id):
            await self.close(code=4403)
            return
        self.group = attempt_group(self.attempt_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Nothing is accepted from the page on this socket. Any frame -- text, binary, not
        # JSON -- gets the same clear answer, never a crashed consumer.
        await self.send_json({"type": "error", "message": "This socket is read-only."})

    async def attempt_event(self, message):
        await self.send_json(message["event"])
