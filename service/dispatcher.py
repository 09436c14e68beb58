"""Starts a workflow for every stored delivery that has none yet (a transactional outbox).

PublishEvent commits the event and its delivery rows and returns; this loop turns rows with
dispatched_at NULL into workflows. It runs in the API and in every worker, so a delivery whose API
process died right after the commit is still started. Workflow ids are deterministic, so two
dispatchers racing on the same row start one workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlmodel import col, select, update
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from service.db.engine import SessionFactory
from service.db.models import Delivery, Endpoint
from service.db.types import utcnow
from workflows import search_attributes
from workflows.delivery import DeliveryWorkflow
from workflows.types import PENDING, WORKFLOW_VERSION, DeliveryInput, workflow_id

log = logging.getLogger("hookline.dispatcher")


def delivery_search_attributes(
    tenant_id: str, endpoint_id: str, event_type: str
) -> TypedSearchAttributes:
    """HooklineStatus is left out: the workflow sets it when the run ends (see WORKFLOW_VERSION)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.TENANT, tenant_id),
            SearchAttributePair(search_attributes.ENDPOINT, endpoint_id),
            SearchAttributePair(search_attributes.EVENT_TYPE, event_type),
        ]
    )


def summary(event_type: str, url: str) -> str:
    return f"{event_type} → {urlsplit(url).hostname or '?'}"


class Dispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        client: Client,
        task_queue: str,
        *,
        batch_size: int = 200,
        concurrency: int = 32,
        poll_interval: float = 1.0,
        eager: bool = False,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        # With a worker on the same client, the start hands the first workflow task straight to
        # it (no poll round trip); it needs free workflow-task slots, see build_worker.
        self._eager = eager

    def wake(self, _delivery_ids: Sequence[str] = ()) -> None:
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                started = await self.dispatch_once()
                failures = 0
            except Exception:
                failures += 1
                log.exception("dispatching deliveries failed; retrying")
                started = 0
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
            if started < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def dispatch_once(self) -> int:
        """Start workflows for one batch of undispatched deliveries; returns how many."""
        statement = (
            select(Delivery, Endpoint.url)
            .join(Endpoint, col(Endpoint.id) == col(Delivery.endpoint_id))
            .where(col(Delivery.dispatched_at).is_(None), Delivery.status == PENDING)
            .order_by(col(Delivery.id))
            .limit(self._batch_size)
        )
        async with self._sessions() as session:
            rows = list((await session.exec(statement)).all())
        if not rows:
            return 0
        results = await asyncio.gather(
            *(self._start(d, url) for d, url in rows),
            return_exceptions=True,
        )
        started = [d.id for (d, _), result in zip(rows, results, strict=True) if result is None]
        for result in results:
            if isinstance(result, BaseException):
                log.warning("could not start a delivery workflow: %s", type(result).__name__)
        if started:
            async with self._sessions() as session, session.begin():
                await session.exec(
                    update(Delivery)
                    .where(col(Delivery.id).in_(started))
                    .values(dispatched_at=utcnow())
                )
        return len(started)

    async def _start(self, delivery: Delivery, url: str) -> None:
        # Start inside the publisher's trace, so one trace tells the whole story of an event.
        parent = TraceContextTextMapPropagator().extract({"traceparent": delivery.trace_parent})
        token = otel_context.attach(parent)
        try:
            async with self._slots:
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await self._client.start_workflow(
                        DeliveryWorkflow.run,
                        DeliveryInput(delivery_id=delivery.id, version=WORKFLOW_VERSION),
                        id=workflow_id(delivery.id),
                        task_queue=self._task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        # A finished run is never started again by dispatching (only RetryDelivery).
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        search_attributes=delivery_search_attributes(
                            delivery.tenant_id, delivery.endpoint_id, delivery.event_type
                        ),
                        static_summary=summary(delivery.event_type, url),
                        request_eager_start=self._eager,
                    )
        finally:
            otel_context.detach(token)
