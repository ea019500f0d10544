"""The live dashboard's WebSocket (Django Channels, the optional extra ``live``).

A connection is accepted only for a user who may see the reports (``scope["user"]``, set by
Channels' ``AuthMiddlewareStack`` from the Django session); others are closed with code 4403.
It then receives the snapshot (:func:`ag2_logging.live.snapshot.snapshot`, as JSON) at once,
again whenever a process wrote live counters (the ``live.changed`` message of the channel
layer group :data:`~ag2_logging.live.counters.GROUP`: the Redis layer carries it between
processes and hosts) and at least every ``LIVE_SECONDS`` (elapsed times move; a layer that does
not reach the recording processes, such as the in-memory one, still shows their counters).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ag2_logging.conf import conf
from ag2_logging.live.counters import GROUP
from ag2_logging.live.snapshot import snapshot
from ag2_logging.live.views import can_view

#: Close code for a user without the reports' permission (4000-4999: the application's own).
FORBIDDEN = 4403


class LiveConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Pushes the dashboard's snapshot; the client sends nothing."""

    ticker: asyncio.Task[None] | None = None
    in_group = False

    async def connect(self) -> None:
        if not await database_sync_to_async(can_view)(self.scope.get("user")):
            await self.close(code=FORBIDDEN)
            return
        await self.accept()
        if self.channel_layer is not None:
            await self.channel_layer.group_add(GROUP, self.channel_name)
            self.in_group = True
        await self.push()
        self.ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        if self.in_group and self.channel_layer is not None:
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def _tick(self) -> None:
        while True:
            every = conf.resolved.live_seconds
            await asyncio.sleep(max(every, 0.1) if every > 0 else 2)
            await self.push()

    async def live_changed(self, event: dict[str, Any]) -> None:
        """A process wrote live counters (``{"type": "live.changed"}``)."""
        await self.push()

    async def push(self) -> None:
        data = await database_sync_to_async(snapshot)()
        await self.send_json({"type": "snapshot", "transport": "websocket", "data": data})
