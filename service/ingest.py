"""Event ingestion: store the event and one delivery per matching endpoint in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import insert, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service import validation
from service.batching import Batcher
from service.catalog import Catalog
from service.db.engine import SessionFactory
from service.db.models import Delivery, Endpoint, Event, Subscription
from service.db.types import utcnow
from service.errors import Violations
from service.ids import new_id
from service.telemetry import METRICS

# Called with the ids of newly committed deliveries; must return at once (it only wakes a dispatcher).
DeliveriesCommitted = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class NewEvent:
    tenant_id: str
    event_type: str
    workspace_id: str
    data: bytes
    idempotency_key: str | None
    trace_parent: str


@dataclass(frozen=True)
class PublishResult:
    event: Event
    duplicate: bool
    delivery_count: int


class Ingestor:
    def __init__(
        self,
        sessions: SessionFactory,
        catalog: Catalog,
        *,
        max_event_bytes: int,
        on_committed: DeliveriesCommitted | None = None,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._max_event_bytes = max_event_bytes
        self._on_committed = on_committed
        self._writes: Batcher[NewEvent, PublishResult] = Batcher(self._write_batch, self._write_one)

    def set_on_committed(self, callback: DeliveriesCommitted) -> None:
        self._on_committed = callback

    def notify(self, delivery_ids: Sequence[str]) -> None:
        if delivery_ids and self._on_committed is not None:
            self._on_committed(delivery_ids)

    async def publish(
        self, tenant_id: str, event_type: str, workspace_id: str, data: bytes, idempotency_key: str
    ) -> PublishResult:
        violations = Violations()
        if not event_type:
            violations.add("type", "is required")
        elif self._catalog.get(event_type) is None:
            violations.add("type", f'unknown event type "{event_type[:200]}"')
        workspace = validation.workspace_for_event(workspace_id, violations)
        validation.event_data(data, self._max_event_bytes, violations)
        key = validation.idempotency_key(idempotency_key, violations)
        violations.raise_if_any()

        if key:
            found = await self._find_by_key(tenant_id, key)
            if found is not None:
                return found
        result = await self._writes.submit(
            NewEvent(tenant_id, event_type, workspace, data, key or None, current_traceparent())
        )
        if result.duplicate:
            return result
        METRICS.events_published.add(1, {"tenant": tenant_id, "type": event_type})
        trace.get_current_span().set_attributes(
            {
                "hookline.event_id": result.event.id,
                "hookline.event_type": event_type,
                "hookline.delivery_count": result.delivery_count,
            }
        )
        return result

    async def _write_batch(self, items: Sequence[NewEvent]) -> list[PublishResult]:
        """One transaction for the whole batch; a key repeated inside the batch is a duplicate."""
        results: list[PublishResult] = []
        delivery_ids: list[str] = []
        first_by_key: dict[tuple[str, str], PublishResult] = {}
        async with self._sessions() as session, session.begin():
            matches: dict[tuple[str, str, str], list[str]] = {}
            events: list[Event] = []
            deliveries: list[dict[str, object]] = []
            now = utcnow()
            for item in items:
                if item.idempotency_key is not None:
                    earlier = first_by_key.get((item.tenant_id, item.idempotency_key))
                    if earlier is not None:
                        results.append(replace(earlier, duplicate=True))
                        continue
                scope = (item.tenant_id, item.event_type, item.workspace_id)
                if scope not in matches:
                    matches[scope] = await matching_endpoints(session, *scope)
                event = Event(
                    id=new_id("evt"),
                    tenant_id=item.tenant_id,
                    type=item.event_type,
                    workspace_id=item.workspace_id,
                    data=item.data,
                    idempotency_key=item.idempotency_key,
                    created_at=now,
                )
                events.append(event)
                for endpoint_id in matches[scope]:
                    delivery_id = new_id("dlv")
                    delivery_ids.append(delivery_id)
                    deliveries.append(
                        {
                            "id": delivery_id,
                            "tenant_id": item.tenant_id,
                            "event_id": event.id,
                            "endpoint_id": endpoint_id,
                            "event_type": item.event_type,
                            "trace_parent": item.trace_parent,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                result = PublishResult(
                    event=event, duplicate=False, delivery_count=len(matches[scope])
                )
                if item.idempotency_key is not None:
                    first_by_key[(item.tenant_id, item.idempotency_key)] = result
                results.append(result)
            await session.exec(insert(Event), params=[e.model_dump() for e in events])
            if deliveries:
                await session.exec(insert(Delivery), params=deliveries)
        self.notify(delivery_ids)
        return results

    async def _write_one(self, item: NewEvent) -> PublishResult:
        try:
            async with self._sessions() as session, session.begin():
                event, delivery_ids = await self.add_event(
                    session,
                    item.tenant_id,
                    item.event_type,
                    item.workspace_id,
                    item.data,
                    item.idempotency_key,
                    trace_parent=item.trace_parent,
                )
        except IntegrityError:
            # A concurrent publish with the same key won the race; answer with its event.
            key = item.idempotency_key
            found = await self._find_by_key(item.tenant_id, key) if key else None
            if found is None:
                raise
            return found
        self.notify(delivery_ids)
        return PublishResult(event=event, duplicate=False, delivery_count=len(delivery_ids))

    async def add_event(
        self,
        session: AsyncSession,
        tenant_id: str,
        event_type: str,
        workspace_id: str,
        data: bytes,
        idempotency_key: str | None = None,
        *,
        trace_parent: str | None = None,
    ) -> tuple[Event, list[str]]:
        """Insert an event and its deliveries in the caller's transaction; returns the delivery ids."""
        now = utcnow()
        if trace_parent is None:
            trace_parent = current_traceparent()
        event = Event(
            id=new_id("evt"),
            tenant_id=tenant_id,
            type=event_type,
            workspace_id=workspace_id,
            data=data,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        session.add(event)
        await session.flush()
        endpoint_ids = await matching_endpoints(session, tenant_id, event_type, workspace_id)
        deliveries = [
            Delivery(
                id=new_id("dlv"),
                tenant_id=tenant_id,
                event_id=event.id,
                endpoint_id=endpoint_id,
                event_type=event_type,
                trace_parent=trace_parent,
                created_at=now,
                updated_at=now,
            )
            for endpoint_id in endpoint_ids
        ]
        session.add_all(deliveries)
        await session.flush()
        return event, [d.id for d in deliveries]

    async def _find_by_key(self, tenant_id: str, key: str) -> PublishResult | None:
        async with self._sessions() as session:
            event = (
                await session.exec(
                    select(Event).where(Event.tenant_id == tenant_id, Event.idempotency_key == key)
                )
            ).first()
            if event is None:
                return None
            count = len(
                (await session.exec(select(Delivery.id).where(Delivery.event_id == event.id))).all()
            )
            return PublishResult(event=event, duplicate=True, delivery_count=count)


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


async def matching_endpoints(
    session: AsyncSession, tenant_id: str, event_type: str, workspace_id: str
) -> list[str]:
    """Active endpoints of the tenant subscribed to this type and admitting this workspace."""
    statement = (
        select(Subscription.endpoint_id)
        .join(Endpoint, col(Endpoint.id) == col(Subscription.endpoint_id))
        .where(
            Subscription.tenant_id == tenant_id,
            col(Subscription.pattern).in_(Catalog.patterns_matching(event_type)),
            col(Endpoint.active).is_(True),
            col(Endpoint.deleted_at).is_(None),
            or_(col(Endpoint.workspace_id) == "", col(Endpoint.workspace_id) == workspace_id),
        )
        .distinct()
        .order_by(col(Subscription.endpoint_id))
    )
    return list((await session.exec(statement)).all())
