from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from sqlmodel import col, select

from hookline.v1 import delivery_pb2, delivery_pb2_grpc
from service.api import convert
from service.api.handlers import rpc
from service.auth import Authenticator
from service.db.engine import SessionFactory
from service.db.models import Attempt, Delivery
from service.delivery_control import DeliveryControl
from service.errors import Violations, not_found
from service.ids import is_valid_id
from service.pagination import encode_token, parse_page

Context = grpc.aio.ServicerContext[Any, Any]


def _check_id(value: str, prefix: str, field: str, violations: Violations, required: bool) -> None:
    if not value:
        if required:
            violations.add(field, "is required")
    elif not is_valid_id(value, prefix):
        violations.add(field, f'is not a valid id ("{prefix}_" and 32 hex digits)')


class DeliveryServicer(delivery_pb2_grpc.DeliveryServiceServicer):
    def __init__(
        self, auth: Authenticator, sessions: SessionFactory, control: DeliveryControl
    ) -> None:
        self._auth = auth
        self._sessions = sessions
        self._control = control

    async def _load(self, tenant_id: str, delivery_id: str) -> Delivery:
        violations = Violations()
        _check_id(delivery_id, "dlv", "id", violations, required=True)
        violations.raise_if_any()
        async with self._sessions() as session:
            row = await session.get(Delivery, delivery_id)
        if row is None or row.tenant_id != tenant_id:
            raise not_found("delivery", delivery_id)
        return row

    async def _with_attempts(self, delivery_id: str) -> delivery_pb2.Delivery:
        async with self._sessions() as session:
            row = await session.get(Delivery, delivery_id)
            if row is None:
                raise not_found("delivery", delivery_id)
            attempts = (
                await session.exec(
                    select(Attempt)
                    .where(Attempt.delivery_id == delivery_id)
                    .order_by(col(Attempt.number))
                )
            ).all()
        return convert.delivery(row, attempts)

    @rpc
    async def ListDeliveries(
        self, request: delivery_pb2.ListDeliveriesRequest, context: Context
    ) -> delivery_pb2.ListDeliveriesResponse:
        tenant_id = await self._auth.tenant_id(context)
        violations = Violations()
        _check_id(request.endpoint_id, "ep", "endpoint_id", violations, required=False)
        _check_id(request.event_id, "evt", "event_id", violations, required=False)
        if request.status and request.status not in convert.STATUS_NAME:
            violations.add("status", "unknown status")
        start = request.start_time.ToDatetime(UTC) if request.HasField("start_time") else None
        end = request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None
        if start and end and end <= start:
            violations.add("end_time", "must be after start_time")
        violations.raise_if_any()
        query = "|".join(
            [
                "deliveries",
                request.endpoint_id,
                request.event_id,
                str(request.status),
                request.event_type,
                start.isoformat() if start else "",
                end.isoformat() if end else "",
            ]
        )
        page = parse_page(request.page_size, request.page_token, query)
        statement = select(Delivery).where(Delivery.tenant_id == tenant_id)
        if request.endpoint_id:
            statement = statement.where(Delivery.endpoint_id == request.endpoint_id)
        if request.event_id:
            statement = statement.where(Delivery.event_id == request.event_id)
        if request.status:
            statement = statement.where(Delivery.status == convert.STATUS_NAME[request.status])
        if request.event_type:
            statement = statement.where(Delivery.event_type == request.event_type)
        if start:
            statement = statement.where(col(Delivery.created_at) >= start)
        if end:
            statement = statement.where(col(Delivery.created_at) < end)
        if page.after:
            statement = statement.where(col(Delivery.id) > page.after)
        statement = statement.order_by(col(Delivery.id)).limit(page.size + 1)
        async with self._sessions() as session:
            rows = list((await session.exec(statement)).all())
        more = len(rows) > page.size
        rows = rows[: page.size]
        return delivery_pb2.ListDeliveriesResponse(
            deliveries=[convert.delivery(r) for r in rows],
            next_page_token=encode_token(rows[-1].id, query) if more and rows else "",
        )

    @rpc
    async def GetDelivery(
        self, request: delivery_pb2.GetDeliveryRequest, context: Context
    ) -> delivery_pb2.GetDeliveryResponse:
        tenant_id = await self._auth.tenant_id(context)
        row = await self._load(tenant_id, request.id)
        return delivery_pb2.GetDeliveryResponse(delivery=await self._with_attempts(row.id))

    @rpc
    async def RetryDelivery(
        self, request: delivery_pb2.RetryDeliveryRequest, context: Context
    ) -> delivery_pb2.RetryDeliveryResponse:
        tenant_id = await self._auth.tenant_id(context)
        row = await self._load(tenant_id, request.id)
        await self._control.retry(row)
        return delivery_pb2.RetryDeliveryResponse(delivery=await self._with_attempts(row.id))

    @rpc
    async def CancelDelivery(
        self, request: delivery_pb2.CancelDeliveryRequest, context: Context
    ) -> delivery_pb2.CancelDeliveryResponse:
        tenant_id = await self._auth.tenant_id(context)
        row = await self._load(tenant_id, request.id)
        await self._control.cancel(row)
        return delivery_pb2.CancelDeliveryResponse(delivery=await self._with_attempts(row.id))

    @rpc
    async def ReplayEvents(
        self, request: delivery_pb2.ReplayEventsRequest, context: Context
    ) -> delivery_pb2.ReplayEventsResponse:
        tenant_id = await self._auth.tenant_id(context)
        violations = Violations()
        _check_id(request.endpoint_id, "ep", "endpoint_id", violations, required=True)
        if not request.HasField("start_time"):
            violations.add("start_time", "is required")
        start = request.start_time.ToDatetime(UTC)
        end = (
            request.end_time.ToDatetime(UTC) if request.HasField("end_time") else datetime.now(UTC)
        )
        if request.HasField("start_time") and end <= start:
            violations.add("end_time", "must be after start_time")
        violations.raise_if_any()
        count = await self._control.replay(
            tenant_id, request.endpoint_id, start, end, request.only_failed
        )
        return delivery_pb2.ReplayEventsResponse(delivery_count=count)
