from __future__ import annotations

from typing import Any

import grpc
from sqlmodel import select

from hookline.v1 import event_pb2, event_pb2_grpc
from service.api import convert
from service.api.handlers import rpc
from service.auth import Authenticator
from service.db.engine import SessionFactory
from service.db.models import Event
from service.errors import invalid_field, not_found
from service.ids import is_valid_id
from service.ingest import Ingestor

Context = grpc.aio.ServicerContext[Any, Any]


class EventServicer(event_pb2_grpc.EventServiceServicer):
    def __init__(self, auth: Authenticator, ingestor: Ingestor, sessions: SessionFactory) -> None:
        self._auth = auth
        self._ingestor = ingestor
        self._sessions = sessions

    @rpc
    async def PublishEvent(
        self, request: event_pb2.PublishEventRequest, context: Context
    ) -> event_pb2.PublishEventResponse:
        tenant_id = await self._auth.tenant_id(context)
        result = await self._ingestor.publish(
            tenant_id, request.type, request.workspace_id, request.data, request.idempotency_key
        )
        return event_pb2.PublishEventResponse(
            event=convert.event(result.event),
            duplicate=result.duplicate,
            delivery_count=result.delivery_count,
        )

    @rpc
    async def GetEvent(
        self, request: event_pb2.GetEventRequest, context: Context
    ) -> event_pb2.GetEventResponse:
        tenant_id = await self._auth.tenant_id(context)
        if not request.id:
            raise invalid_field("id", "is required")
        if not is_valid_id(request.id, "evt"):
            raise invalid_field("id", 'is not an event id ("evt_" and 32 hex digits)')
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(Event).where(Event.id == request.id, Event.tenant_id == tenant_id)
                )
            ).first()
        if row is None:
            raise not_found("event", request.id)
        return event_pb2.GetEventResponse(event=convert.event(row))
