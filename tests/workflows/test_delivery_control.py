from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from sqlmodel import col, select

from hookline.v1 import delivery_pb2, endpoint_pb2
from service.auth import create_tenant
from service.db.models import Delivery
from service.dispatcher import Dispatcher
from tests.activities.receivers import ScriptedResponse
from tests.grpc_errors import details
from tests.workflows.conftest import Stack, wait_for
from workflows.delivery import DeliveryWorkflow
from workflows.types import workflow_id

HOUR = endpoint_pb2.RetryPolicy(
    max_attempts=5,
    schedule=endpoint_pb2.ScheduleBackoff(delays=[duration_pb2.Duration(seconds=3600)]),
)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


async def waiting_on_backoff(
    stack: Stack, path: str, event_type: str = "message.sent"
) -> tuple[str, str, str]:
    """An endpoint whose first attempt fails (500) and whose delivery then waits an hour."""
    endpoint_id, _ = await stack.endpoint(path, [event_type], retry_policy=HOUR)
    stack.receiver.enqueue(ScriptedResponse(status=500))
    event_id = await stack.publish(event_type)

    async def after_first_attempt() -> bool:
        rows = await stack.deliveries_of(event_id)
        return len(rows) == 1 and rows[0].attempt_count == 1 and rows[0].next_attempt_at is not None

    await wait_for(after_first_attempt)
    (row,) = await stack.deliveries_of(event_id)
    return endpoint_id, event_id, row.id


async def test_retry_now_skips_the_backoff(stack: Stack) -> None:
    _, event_id, delivery_id = await waiting_on_backoff(stack, "/retry-now")
    response = await stack.deliveries.RetryDelivery(
        delivery_pb2.RetryDeliveryRequest(id=delivery_id), metadata=stack.auth
    )
    # The update answers once the extra attempt has run.
    assert response.delivery.status == delivery_pb2.DELIVERY_STATUS_SUCCEEDED
    assert [a.status_code for a in response.delivery.attempts] == [500, 200]
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    assert row.attempt_count == 2


async def test_cancel_a_waiting_delivery(stack: Stack) -> None:
    _, event_id, delivery_id = await waiting_on_backoff(stack, "/cancel")
    response = await stack.deliveries.CancelDelivery(
        delivery_pb2.CancelDeliveryRequest(id=delivery_id), metadata=stack.auth
    )
    assert response.delivery.status == delivery_pb2.DELIVERY_STATUS_CANCELED
    await stack.wait_status(event_id, "CANCELED")
    result = await stack.client.get_workflow_handle_for(
        DeliveryWorkflow.run, workflow_id(delivery_id)
    ).result()
    assert result.status == "CANCELED"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.CancelDelivery(
            delivery_pb2.CancelDeliveryRequest(id=delivery_id), metadata=stack.auth
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_retry_failed_delivery_makes_one_new_attempt(stack: Stack) -> None:
    _, event_id, delivery_id = await waiting_on_backoff(stack, "/manual")
    await stack.deliveries.CancelDelivery(
        delivery_pb2.CancelDeliveryRequest(id=delivery_id), metadata=stack.auth
    )
    await stack.deliveries.RetryDelivery(
        delivery_pb2.RetryDeliveryRequest(id=delivery_id), metadata=stack.auth
    )
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    assert [a.number for a in await stack.attempts_of(delivery_id)] == [1, 2]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.RetryDelivery(
            delivery_pb2.RetryDeliveryRequest(id=row.id), metadata=stack.auth
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(caught.value)[0] == "DELIVERY_SUCCEEDED"


async def test_deleting_endpoint_cancels_pending_and_reenabling_does_not_revive(
    stack: Stack,
) -> None:
    endpoint_id, event_id, delivery_id = await waiting_on_backoff(stack, "/disable")
    await stack.endpoints.UpdateEndpoint(
        endpoint_pb2.UpdateEndpointRequest(
            endpoint=endpoint_pb2.Endpoint(id=endpoint_id, active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["active"]),
        ),
        metadata=stack.auth,
    )
    await stack.wait_status(event_id, "CANCELED")
    result = await stack.client.get_workflow_handle_for(
        DeliveryWorkflow.run, workflow_id(delivery_id)
    ).result()
    assert result.status == "CANCELED"
    await stack.endpoints.UpdateEndpoint(
        endpoint_pb2.UpdateEndpointRequest(
            endpoint=endpoint_pb2.Endpoint(id=endpoint_id, active=True),
            update_mask=field_mask_pb2.FieldMask(paths=["active"]),
        ),
        metadata=stack.auth,
    )
    (row,) = await stack.deliveries_of(event_id)
    assert row.status == "CANCELED"

    other_id, other_event, other_delivery = await waiting_on_backoff(
        stack, "/delete", "message.read"
    )
    await stack.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=other_id), metadata=stack.auth
    )
    await stack.wait_status(other_event, "CANCELED")
    result = await stack.client.get_workflow_handle_for(
        DeliveryWorkflow.run, workflow_id(other_delivery)
    ).result()
    assert result.status == "CANCELED"


async def test_one_workflow_per_delivery_even_when_dispatched_again(stack: Stack) -> None:
    await stack.endpoint("/once", ["message.sent"])
    event_id = await stack.publish("message.sent")
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    # A second dispatcher that missed the mark (a crash between start and commit) starts it again.
    async with stack.core.sessions() as session, session.begin():
        stored = await session.get(Delivery, row.id)
        assert stored is not None
        stored.dispatched_at = None
        stored.status = "PENDING"
        session.add(stored)
    racing = [Dispatcher(stack.core.sessions, stack.client, "unused-queue") for _ in range(3)]
    await asyncio.gather(*(d.dispatch_once() for d in racing))
    runs = [w async for w in stack.client.list_workflows(f'WorkflowId = "{workflow_id(row.id)}"')]
    assert len(runs) == 1
    received = [r for r in stack.receiver.requests if r.header("webhook-id") == event_id]
    assert len(received) == 1


async def test_replay_all_and_only_failed(stack: Stack) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    endpoint_id, _ = await stack.endpoint(
        "/replay", ["message.*"], retry_policy=endpoint_pb2.RetryPolicy(max_attempts=1)
    )
    stack.receiver.enqueue(ScriptedResponse(status=500))
    failed_event = await stack.publish("message.sent")
    await stack.wait_status(failed_event, "FAILED")
    ok_event = await stack.publish("message.read")
    await stack.wait_status(ok_event, "SUCCEEDED")
    await stack.publish("call.completed")  # not subscribed: never replayed

    only_failed = await stack.deliveries.ReplayEvents(
        delivery_pb2.ReplayEventsRequest(
            endpoint_id=endpoint_id, start_time=ts(start), only_failed=True
        ),
        metadata=stack.auth,
    )
    assert only_failed.delivery_count == 1

    async def replayed_failed() -> bool:
        rows = await stack.deliveries_of(failed_event)
        return sorted((r.generation, r.status) for r in rows) == [(0, "FAILED"), (1, "SUCCEEDED")]

    await wait_for(replayed_failed)

    everything = await stack.deliveries.ReplayEvents(
        delivery_pb2.ReplayEventsRequest(endpoint_id=endpoint_id, start_time=ts(start)),
        metadata=stack.auth,
    )
    assert everything.delivery_count == 2

    async def replayed_all() -> bool:
        async with stack.core.sessions() as session:
            rows = (
                await session.exec(
                    select(Delivery).where(
                        Delivery.endpoint_id == endpoint_id, col(Delivery.generation) > 0
                    )
                )
            ).all()
        return len(rows) == 3 and all(r.status == "SUCCEEDED" for r in rows)

    await wait_for(replayed_all)


async def test_list_deliveries_filters_and_pages(stack: Stack) -> None:
    endpoint_id, _ = await stack.endpoint("/list", ["message.sent", "message.read"])
    events = [await stack.publish("message.sent") for _ in range(3)]
    events.append(await stack.publish("message.read"))
    for event_id in events:
        await stack.wait_status(event_id, "SUCCEEDED")
    seen: list[str] = []
    token = ""
    while True:
        page = await stack.deliveries.ListDeliveries(
            delivery_pb2.ListDeliveriesRequest(
                endpoint_id=endpoint_id, page_size=2, page_token=token
            ),
            metadata=stack.auth,
        )
        seen += [d.event_id for d in page.deliveries]
        token = page.next_page_token
        if not token:
            break
    assert seen == events
    by_type = await stack.deliveries.ListDeliveries(
        delivery_pb2.ListDeliveriesRequest(endpoint_id=endpoint_id, event_type="message.read"),
        metadata=stack.auth,
    )
    assert [d.event_id for d in by_type.deliveries] == [events[3]]
    failed = await stack.deliveries.ListDeliveries(
        delivery_pb2.ListDeliveriesRequest(
            endpoint_id=endpoint_id, status=delivery_pb2.DELIVERY_STATUS_FAILED
        ),
        metadata=stack.auth,
    )
    assert list(failed.deliveries) == []
    future = await stack.deliveries.ListDeliveries(
        delivery_pb2.ListDeliveriesRequest(
            endpoint_id=endpoint_id, start_time=ts(datetime.now(UTC) + timedelta(hours=1))
        ),
        metadata=stack.auth,
    )
    assert list(future.deliveries) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (delivery_pb2.ListDeliveriesRequest(endpoint_id="nope"), "endpoint_id"),
        (delivery_pb2.ListDeliveriesRequest(event_id="evt_1"), "event_id"),
        (delivery_pb2.ListDeliveriesRequest(page_size=-5), "page_size"),
        (
            delivery_pb2.ListDeliveriesRequest(
                start_time=timestamp_pb2.Timestamp(seconds=200),
                end_time=timestamp_pb2.Timestamp(seconds=100),
            ),
            "end_time",
        ),
    ],
)
async def test_list_rejects_bad_filters(
    stack: Stack, request_: delivery_pb2.ListDeliveriesRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.ListDeliveries(request_, metadata=stack.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details(caught.value)[1]


async def test_delivery_rpcs_check_tenant_and_input(stack: Stack) -> None:
    await stack.endpoint("/tenant", ["message.sent"])
    event_id = await stack.publish("message.sent")
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    _, other_key = await create_tenant(stack.core.sessions, "intruder")
    other = (("x-api-key", other_key),)
    for call in (
        stack.deliveries.GetDelivery(delivery_pb2.GetDeliveryRequest(id=row.id), metadata=other),
        stack.deliveries.RetryDelivery(
            delivery_pb2.RetryDeliveryRequest(id=row.id), metadata=other
        ),
        stack.deliveries.CancelDelivery(
            delivery_pb2.CancelDeliveryRequest(id=row.id), metadata=other
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stack.deliveries.ListDeliveries(
        delivery_pb2.ListDeliveriesRequest(), metadata=other
    )
    assert list(listed.deliveries) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.GetDelivery(
            delivery_pb2.GetDeliveryRequest(id="x"), metadata=stack.auth
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.ReplayEvents(
            delivery_pb2.ReplayEventsRequest(endpoint_id=row.endpoint_id), metadata=stack.auth
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start_time" in details(caught.value)[1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.deliveries.ListDeliveries(delivery_pb2.ListDeliveriesRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_workflow_is_findable_and_queryable(stack: Stack) -> None:
    endpoint_id, _ = await stack.endpoint("/ui", ["message.sent"])
    event_id = await stack.publish("message.sent")
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    handle = stack.client.get_workflow_handle(workflow_id(row.id))
    state = await handle.query(DeliveryWorkflow.state)
    assert state.status == "SUCCEEDED"
    assert state.attempts == 1
    description = await handle.describe()
    attrs = {k.name: v for k, v in ((p.key, p.value) for p in description.typed_search_attributes)}
    assert attrs["HooklineTenant"] == stack.tenant_id
    assert attrs["HooklineEndpoint"] == endpoint_id
    assert attrs["HooklineEventType"] == "message.sent"
    # Success at the first attempt leaves HooklineStatus unset: it would cost a 7th history event.
    assert "HooklineStatus" not in attrs
    assert await description.static_summary() == "message.sent → receiver.test"
    history = await handle.fetch_history()
    assert len(history.events) == 6
    # The README's query for deliveries that succeeded at once finds it.
    query = (
        f'WorkflowId = "{handle.id}" AND ExecutionStatus = "Completed" AND HooklineStatus IS NULL'
    )

    async def found() -> bool:
        return (await stack.client.count_workflows(query)).count == 1

    await wait_for(found)
    text = history.to_json()
    assert '"n":1' not in text.replace(" ", "")  # the payload never enters history
    assert "whsec_" not in text
