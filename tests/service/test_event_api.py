from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from sqlmodel import col, select

from hookline.v1 import endpoint_pb2, event_pb2
from service.db.models import Delivery, DeliveryStatus, Event
from tests.conftest import Api
from tests.grpc_errors import details

WS = "7d1c2e4a-1111-4222-8333-444455556666"
OTHER_WS = "0b9a8c7d-aaaa-4bbb-8ccc-ddddeeeeffff"


async def make_endpoint(api: Api, events: list[str], **fields: object) -> str:
    request = endpoint_pb2.CreateEndpointRequest(
        url="https://hooks.example.com/in",
        events=events,
        **fields,  # type: ignore[arg-type]
    )
    return (await api.endpoints.CreateEndpoint(request, metadata=api.auth)).endpoint.id


async def publish(api: Api, **fields: object) -> event_pb2.PublishEventResponse:
    values: dict[str, object] = {
        "type": "message.delivered",
        "workspace_id": WS,
        "data": b'{"message_id":"m1"}',
    }
    values.update(fields)
    return await api.events.PublishEvent(
        event_pb2.PublishEventRequest(**values),  # type: ignore[arg-type]
        metadata=api.auth,
    )


async def deliveries_of(api: Api, event_id: str) -> list[Delivery]:
    async with api.core.sessions() as session:
        rows = await session.exec(select(Delivery).where(Delivery.event_id == event_id))
        return list(rows.all())


async def test_publish_stores_event_and_pending_deliveries_for_matches_only(api: Api) -> None:
    exact = await make_endpoint(api, ["message.delivered"])
    star = await make_endpoint(api, ["*"])
    prefix = await make_endpoint(api, ["message.*"])
    scoped = await make_endpoint(api, ["message.*"], workspace_id=WS)
    await make_endpoint(api, ["message.sent"])  # other type
    await make_endpoint(api, ["call.*"])  # other group
    await make_endpoint(api, ["message.*"], workspace_id=OTHER_WS)  # other workspace
    await make_endpoint(api, ["*"], active=False)  # inactive
    gone = await make_endpoint(api, ["*"])
    await api.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=gone), metadata=api.auth
    )
    _other_tenant_id, other_auth = await api.new_tenant()
    await api.endpoints.CreateEndpoint(
        endpoint_pb2.CreateEndpointRequest(url="https://hooks.example.com/x", events=["*"]),
        metadata=other_auth,
    )

    response = await publish(api)
    assert response.duplicate is False
    assert response.delivery_count == 4
    rows = await deliveries_of(api, response.event.id)
    assert {r.endpoint_id for r in rows} == {exact, star, prefix, scoped}
    assert all(r.status == DeliveryStatus.PENDING for r in rows)
    assert all(r.tenant_id == api.tenant_id for r in rows)


async def test_nested_prefix_and_org_workspace(api: Api) -> None:
    nested = await make_endpoint(api, ["call.recording.*"])
    org_only = await make_endpoint(api, ["call.*"], workspace_id="__org__")
    response = await publish(api, type="call.recording.paused", workspace_id="__org__")
    assert {r.endpoint_id for r in await deliveries_of(api, response.event.id)} == {
        nested,
        org_only,
    }
    response = await publish(api, type="call.recording.paused", workspace_id=WS)
    assert {r.endpoint_id for r in await deliveries_of(api, response.event.id)} == {nested}


async def test_data_is_kept_byte_for_byte(api: Api) -> None:
    data = b'{"big": 123456789012345678901234567890, "f": 1.10, "s": "\\u00e9"}'
    response = await publish(api, data=data)
    got = await api.events.GetEvent(
        event_pb2.GetEventRequest(id=response.event.id), metadata=api.auth
    )
    assert got.event.data == data
    assert json.loads(got.event.data)["big"] == 123456789012345678901234567890
    assert got.event.workspace_id == WS and got.event.type == "message.delivered"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"type": ""}, "type", "required"),
        ({"type": "mesage.sent"}, "type", "unknown"),
        ({"workspace_id": ""}, "workspace_id", "required"),
        ({"workspace_id": "abc"}, "workspace_id", "UUID"),
        ({"data": b""}, "data", "required"),
        ({"data": b"[1, 2]"}, "data", "object"),
        ({"data": b"{not json"}, "data", "JSON"),
        ({"data": b'{"a": NaN}'}, "data", "JSON"),
        ({"data": b'{"a": 1, "a": 2}'}, "data", "JSON"),
        ({"data": b'{"a": "\xff"}'}, "data", "UTF-8"),
        ({"data": b"[" * 100000 + b"]" * 100000}, "data", ""),
        ({"data": b'{"a": "' + b"x" * (256 * 1024) + b'"}'}, "data", "limit"),
        ({"idempotency_key": "k" * 256}, "idempotency_key", "255"),
        ({"idempotency_key": "bad\nkey"}, "idempotency_key", "control"),
    ],
)
async def test_publish_rejects_bad_input(
    api: Api, fields: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(api, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(caught.value)
    assert reason == "VALIDATION_ERROR"
    assert field in violations and fragment in violations[field], violations


async def test_message_over_grpc_limit_is_resource_exhausted(api: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await publish(api, data=b'{"a":"' + b"x" * (5 * 1024 * 1024) + b'"}')
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_idempotency_key_returns_first_event(api: Api) -> None:
    await make_endpoint(api, ["*"])
    first = await publish(api, idempotency_key="order-42")
    again = await publish(api, idempotency_key="order-42", data=b'{"other": true}')
    assert again.duplicate is True
    assert again.event == first.event
    assert again.delivery_count == first.delivery_count == 1
    _, other_auth = await api.new_tenant()
    theirs = await api.events.PublishEvent(
        event_pb2.PublishEventRequest(
            type="message.delivered", workspace_id=WS, data=b"{}", idempotency_key="order-42"
        ),
        metadata=other_auth,
    )
    assert theirs.duplicate is False and theirs.event.id != first.event.id


async def test_idempotency_under_concurrent_publishes(api: Api) -> None:
    await make_endpoint(api, ["message.*"])
    responses = await asyncio.gather(*(publish(api, idempotency_key="race-1") for _ in range(12)))
    assert len({r.event.id for r in responses}) == 1
    assert sum(not r.duplicate for r in responses) == 1
    async with api.core.sessions() as session:
        events = (
            await session.exec(
                select(Event).where(
                    Event.tenant_id == api.tenant_id, Event.idempotency_key == "race-1"
                )
            )
        ).all()
    assert len(events) == 1
    assert len(await deliveries_of(api, events[0].id)) == 1


async def test_endpoint_changes_publish_endpoint_events(api: Api) -> None:
    watcher = await make_endpoint(api, ["webhook_endpoint.*"])
    target = await make_endpoint(api, ["message.sent"], description="target")
    await api.endpoints.UpdateEndpoint(
        endpoint_pb2.UpdateEndpointRequest(
            endpoint=endpoint_pb2.Endpoint(id=target, description="renamed")
        ),
        metadata=api.auth,
    )
    await api.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=target), metadata=api.auth
    )
    async with api.core.sessions() as session:
        rows = (
            await session.exec(
                select(Event)
                .where(
                    Event.tenant_id == api.tenant_id,
                    col(Event.type).startswith("webhook_endpoint."),
                )
                .order_by(col(Event.id))
            )
        ).all()
        delivered = (
            await session.exec(select(Delivery.event_id).where(Delivery.endpoint_id == watcher))
        ).all()
    types = [(r.type, json.loads(r.data)["endpoint"]["id"]) for r in rows]
    assert types == [
        ("webhook_endpoint.created", watcher),
        ("webhook_endpoint.created", target),
        ("webhook_endpoint.updated", target),
        ("webhook_endpoint.deleted", target),
    ]
    assert all(r.workspace_id == "__org__" for r in rows)
    assert all("secret" not in json.loads(r.data)["endpoint"] for r in rows)
    assert set(delivered) == {r.id for r in rows}


async def test_get_event_rules(api: Api) -> None:
    response = await publish(api)
    _, other_auth = await api.new_tenant()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.events.GetEvent(
            event_pb2.GetEventRequest(id=response.event.id), metadata=other_auth
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.events.GetEvent(event_pb2.GetEventRequest(id="nope"), metadata=api.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
