"""Attempts that run at the same time share their load and their record (one batch each): mixed
outcomes in one batch must each land on their own rows, and a 410 must still disable its endpoint
in the transaction that records it. Real store (SQLite and PostgreSQL), real loopback receiver."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities, DeliverySettings
from activities.http_client import DeliveryHttpClient
from service.app import Core
from service.auth import create_tenant
from service.db.models import Attempt, Delivery, Endpoint
from service.endpoints import EndpointSpec
from service.retry_policy import RetryPolicy
from service.ssrf import NetworkPolicy, StaticResolver
from tests.activities.receivers import LoopbackReceiver, ScriptedResponse
from workflows.types import CANCELED, FAILED, SUCCEEDED, AttemptInput

EVENTS = 12


def spec(url: str) -> EndpointSpec:
    return EndpointSpec(
        url=url,
        events=["message.sent"],
        active=True,
        description="",
        timeout_seconds=10,
        retry_policy=RetryPolicy(max_attempts=5, schedule=(60.0,)),
        workspace_id="",
    )


async def test_concurrent_attempts_with_mixed_outcomes_are_each_recorded(core: Core) -> None:
    async with LoopbackReceiver() as receiver:
        receiver.route("/ok", ScriptedResponse(status=200, body=b"fine"))
        receiver.route("/gone", ScriptedResponse(status=410))
        tenant, _ = await create_tenant(core.sessions, "batches")
        ok, _ = await core.endpoints.create(
            tenant.id, spec(receiver.url_for("127.0.0.1", "/ok")), ""
        )
        gone, _ = await core.endpoints.create(
            tenant.id, spec(receiver.url_for("127.0.0.1", "/gone")), ""
        )
        for n in range(EVENTS):
            await core.ingestor.publish(tenant.id, "message.sent", "__org__", b'{"n":%d}' % n, "")
        async with core.sessions() as session:
            deliveries = list(
                (await session.exec(select(Delivery).where(Delivery.tenant_id == tenant.id))).all()
            )
        assert len(deliveries) == 2 * EVENTS

        policy = NetworkPolicy.from_strings(["127.0.0.0/8"], allow_http=True)
        async with DeliveryHttpClient(policy=policy, resolver=StaticResolver({})) as http:
            activities = DeliveryActivities(core.sessions, core.endpoints, http, DeliverySettings())
            outcomes = await asyncio.gather(
                *(
                    ActivityEnvironment().run(
                        activities.attempt, AttemptInput(delivery_id=d.id, number=1)
                    )
                    for d in deliveries
                )
            )

        async with core.sessions() as session:
            rows = {
                d.id: d
                for d in (
                    await session.exec(select(Delivery).where(Delivery.tenant_id == tenant.id))
                ).all()
            }
            attempts = {
                a.delivery_id: a
                for a in (
                    await session.exec(
                        select(Attempt).where(col(Attempt.delivery_id).in_(list(rows)))
                    )
                ).all()
            }
            gone_now = await session.get(Endpoint, gone.id)
            ok_now = await session.get(Endpoint, ok.id)

    by_id = {d.id: outcome for d, outcome in zip(deliveries, outcomes, strict=True)}
    for delivery in deliveries:
        row, outcome = rows[delivery.id], by_id[delivery.id]
        assert row.status == outcome.status
        if delivery.endpoint_id == ok.id:
            assert outcome.status == SUCCEEDED
            assert attempts[delivery.id].status_code == 200
            assert attempts[delivery.id].response_excerpt == b"fine"
            assert row.attempt_count == 1 and row.last_status_code == 200
        elif outcome.status == FAILED:
            # Posted before the endpoint was disabled: the 410 is on record.
            assert attempts[delivery.id].status_code == 410
            assert row.last_status_code == 410
        else:
            # Loaded after another attempt's 410 had disabled the endpoint: never posted.
            assert outcome.status == CANCELED
            assert delivery.id not in attempts
    assert any(o.status == FAILED for d, o in zip(deliveries, outcomes, strict=True))
    assert gone_now is not None and not gone_now.active
    assert "410" in (gone_now.disabled_reason or "")
    assert ok_now is not None and ok_now.active
    posted = [r for r in receiver.requests if r.path == "/gone"]
    assert len(posted) == sum(o.status == FAILED for o in outcomes)
