"""Live control of deliveries: retry now, cancel, cancel an endpoint's pending deliveries, replay."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_
from sqlmodel import col, select, update
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from service.db.engine import SessionFactory
from service.db.models import Delivery, DeliveryStatus, Endpoint, Event
from service.db.types import utcnow
from service.dispatcher import Dispatcher, delivery_search_attributes, summary
from service.errors import failed_precondition, not_found, resource_exhausted
from service.ids import new_id
from workflows.delivery import DeliveryWorkflow
from workflows.types import CANCELED, WORKFLOW_VERSION, DeliveryInput, workflow_id

log = logging.getLogger("hookline.control")

MAX_REPLAY = 10_000


class DeliveryControl:
    def __init__(
        self, sessions: SessionFactory, client: Client, task_queue: str, dispatcher: Dispatcher
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue
        self._dispatcher = dispatcher
        self._background: set[asyncio.Task[None]] = set()

    async def retry(self, delivery: Delivery) -> None:
        """Pending: attempt now (skipping the backoff). Failed or canceled: one new attempt."""
        if delivery.status == DeliveryStatus.SUCCEEDED:
            raise failed_precondition("the delivery already succeeded", "DELIVERY_SUCCEEDED")
        if delivery.status == DeliveryStatus.PENDING:
            if delivery.dispatched_at is None:
                self._dispatcher.wake()
                return
            handle = self._client.get_workflow_handle(workflow_id(delivery.id))
            try:
                await handle.execute_update(DeliveryWorkflow.retry_now)
            except WorkflowUpdateFailedError as error:
                raise failed_precondition(
                    f"the delivery cannot be retried now: {error.cause}", "DELIVERY_NOT_PENDING"
                ) from None
            return
        async with self._sessions() as session, session.begin():
            endpoint = await session.get(Endpoint, delivery.endpoint_id)
            if endpoint is None or endpoint.deleted_at is not None or not endpoint.active:
                raise failed_precondition(
                    "the endpoint is disabled or deleted; enable it first", "ENDPOINT_INACTIVE"
                )
            result = await session.exec(
                update(Delivery)
                .where(col(Delivery.id) == delivery.id, col(Delivery.status) == delivery.status)
                .values(status=DeliveryStatus.PENDING, completed_at=None, updated_at=utcnow())
            )
            if result.rowcount != 1:
                raise failed_precondition("the delivery changed meanwhile; try again", "CONFLICT")
        await self._client.start_workflow(
            DeliveryWorkflow.run,
            DeliveryInput(
                delivery_id=delivery.id,
                first_attempt=delivery.attempt_count + 1,
                manual=True,
                version=WORKFLOW_VERSION,
            ),
            id=workflow_id(delivery.id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=delivery_search_attributes(
                delivery.tenant_id, delivery.endpoint_id, delivery.event_type
            ),
            static_summary=summary(delivery.event_type, endpoint.url) + " (manual retry)",
        )

    async def cancel(self, delivery: Delivery) -> None:
        if delivery.status != DeliveryStatus.PENDING:
            raise failed_precondition(
                f"the delivery is {delivery.status}, not pending", "DELIVERY_NOT_PENDING"
            )
        if delivery.dispatched_at is None:
            async with self._sessions() as session, session.begin():
                await session.exec(
                    update(Delivery)
                    .where(col(Delivery.id) == delivery.id, col(Delivery.status) == "PENDING")
                    .values(status=CANCELED, completed_at=utcnow(), updated_at=utcnow())
                )
            return
        handle = self._client.get_workflow_handle(workflow_id(delivery.id))
        try:
            await handle.execute_update(DeliveryWorkflow.cancel)
        except WorkflowUpdateFailedError as error:
            raise failed_precondition(
                f"the delivery cannot be canceled: {error.cause}", "DELIVERY_NOT_PENDING"
            ) from None

    def endpoint_stopped(self, endpoint_id: str) -> None:
        """Called when an endpoint is disabled or deleted: cancel its pending deliveries."""
        task = asyncio.get_running_loop().create_task(self._cancel_quietly(endpoint_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_quietly(self, endpoint_id: str) -> None:
        try:
            await self.cancel_endpoint_deliveries(endpoint_id)
        except Exception:
            log.exception("canceling the deliveries of %s failed", endpoint_id)

    async def cancel_endpoint_deliveries(self, endpoint_id: str) -> int:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            ids = list(
                (
                    await session.exec(
                        select(Delivery.id).where(
                            Delivery.endpoint_id == endpoint_id, Delivery.status == "PENDING"
                        )
                    )
                ).all()
            )
            if not ids:
                return 0
            # The store says CANCELED at once; a workflow that misses the signal sees it before
            # its next attempt and stops there.
            await session.exec(
                update(Delivery)
                .where(col(Delivery.id).in_(ids), col(Delivery.status) == "PENDING")
                .values(status=CANCELED, completed_at=now, updated_at=now, next_attempt_at=None)
            )
        for delivery_id in ids:
            try:
                await self._client.get_workflow_handle(workflow_id(delivery_id)).signal(
                    DeliveryWorkflow.request_cancel
                )
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    log.warning("could not signal %s: %s", delivery_id, error.status.name)
        return len(ids)

    async def replay(
        self,
        tenant_id: str,
        endpoint_id: str,
        start: datetime,
        end: datetime,
        only_failed: bool,
    ) -> int:
        async with self._sessions() as session, session.begin():
            endpoint = await session.get(Endpoint, endpoint_id)
            if (
                endpoint is None
                or endpoint.tenant_id != tenant_id
                or endpoint.deleted_at is not None
            ):
                raise not_found("endpoint", endpoint_id)
            if not endpoint.active:
                raise failed_precondition(
                    "the endpoint is disabled; enable it first", "ENDPOINT_INACTIVE"
                )
            window: list[ColumnElement[bool]] = [
                col(Event.tenant_id) == tenant_id,
                col(Event.created_at) >= start,
                col(Event.created_at) < end,
            ]
            if only_failed:
                latest = (
                    select(Delivery.event_id, func.max(Delivery.generation).label("generation"))
                    .where(Delivery.endpoint_id == endpoint_id)
                    .group_by(col(Delivery.event_id))
                    .subquery()
                )
                statement = (
                    select(Event.id, Event.type)
                    .join(latest, latest.c.event_id == Event.id)
                    .join(
                        Delivery,
                        (col(Delivery.event_id) == Event.id)
                        & (col(Delivery.endpoint_id) == endpoint_id)
                        & (col(Delivery.generation) == latest.c.generation),
                    )
                    .where(*window, col(Delivery.status).in_(["FAILED", "CANCELED"]))
                )
            else:
                statement = select(Event.id, Event.type).where(*window)
                if endpoint.workspace_id:
                    statement = statement.where(Event.workspace_id == endpoint.workspace_id)
                if "*" not in endpoint.events:
                    exact = [p for p in endpoint.events if not p.endswith(".*")]
                    prefixes = [p[:-1] for p in endpoint.events if p.endswith(".*")]
                    statement = statement.where(
                        or_(
                            col(Event.type).in_(exact),
                            *(col(Event.type).startswith(p, autoescape=True) for p in prefixes),
                        )
                    )
            rows = list(
                (await session.exec(statement.order_by(col(Event.id)).limit(MAX_REPLAY + 1))).all()
            )
            if len(rows) > MAX_REPLAY:
                raise resource_exhausted(
                    f"the window holds more than {MAX_REPLAY} events; replay a narrower window",
                    "REPLAY_TOO_LARGE",
                )
            generations = dict(
                (
                    await session.exec(
                        select(Delivery.event_id, func.max(Delivery.generation))
                        .where(Delivery.endpoint_id == endpoint_id)
                        .group_by(col(Delivery.event_id))
                    )
                ).all()
            )
            now = utcnow()
            session.add_all(
                Delivery(
                    id=new_id("dlv"),
                    tenant_id=tenant_id,
                    event_id=event_id,
                    endpoint_id=endpoint_id,
                    event_type=event_type,
                    generation=(generations[event_id] + 1) if event_id in generations else 0,
                    created_at=now,
                    updated_at=now,
                )
                for event_id, event_type in rows
            )
        self._dispatcher.wake()
        return len(rows)
