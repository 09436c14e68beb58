from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlmodel import select

from hookline.v1 import endpoint_pb2, event_pb2, event_type_pb2
from service.db.models import ApiKey
from tests.conftest import Api
from tests.grpc_errors import details


@pytest.mark.parametrize(
    "metadata",
    [(), (("x-api-key", ""),), (("x-api-key", "hk_wrong"),), (("authorization", "Bearer x"),)],
)
async def test_missing_or_wrong_key_is_unauthenticated(
    api: Api, metadata: tuple[tuple[str, str], ...]
) -> None:
    calls: list[Awaitable[object]] = [
        api.endpoints.ListEndpoints(endpoint_pb2.ListEndpointsRequest(), metadata=metadata),
        api.events.PublishEvent(
            event_pb2.PublishEventRequest(type="message.sent", workspace_id="__org__", data=b"{}"),
            metadata=metadata,
        ),
        api.event_types.ListEventTypes(event_type_pb2.ListEventTypesRequest(), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert details(caught.value)[0] == "UNAUTHENTICATED"


async def test_tenants_are_isolated(api: Api) -> None:
    mine = await api.endpoints.CreateEndpoint(
        endpoint_pb2.CreateEndpointRequest(url="https://hooks.example.com/a", events=["*"]),
        metadata=api.auth,
    )
    _, theirs = await api.new_tenant()
    their_ep = await api.endpoints.CreateEndpoint(
        endpoint_pb2.CreateEndpointRequest(url="https://hooks.example.com/b", events=["*"]),
        metadata=theirs,
    )
    listed = await api.endpoints.ListEndpoints(endpoint_pb2.ListEndpointsRequest(), metadata=theirs)
    assert [e.id for e in listed.endpoints] == [their_ep.endpoint.id]
    for call in (
        api.endpoints.GetEndpoint(
            endpoint_pb2.GetEndpointRequest(id=mine.endpoint.id), metadata=theirs
        ),
        api.endpoints.DeleteEndpoint(
            endpoint_pb2.DeleteEndpointRequest(id=mine.endpoint.id), metadata=theirs
        ),
        api.endpoints.RotateEndpointSecret(
            endpoint_pb2.RotateEndpointSecretRequest(id=mine.endpoint.id), metadata=theirs
        ),
        api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(id=mine.endpoint.id, description="stolen")
            ),
            metadata=theirs,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "hooks.example.com" not in (caught.value.details() or "")
    still = await api.endpoints.GetEndpoint(
        endpoint_pb2.GetEndpointRequest(id=mine.endpoint.id), metadata=api.auth
    )
    assert still.endpoint == mine.endpoint


async def test_revoked_key_is_refused(api: Api) -> None:
    tenant_id, auth = await api.new_tenant()
    async with api.core.sessions() as session, session.begin():
        key = (await session.exec(select(ApiKey).where(ApiKey.tenant_id == tenant_id))).one()
        from service.db.types import utcnow

        key.revoked_at = utcnow()
        session.add(key)
    api.core.auth._cache.clear()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.endpoints.ListEndpoints(endpoint_pb2.ListEndpointsRequest(), metadata=auth)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_api_keys_are_stored_hashed(api: Api) -> None:
    async with api.core.sessions() as session:
        rows = (await session.exec(select(ApiKey).where(ApiKey.tenant_id == api.tenant_id))).all()
    assert len(rows) == 1
    assert rows[0].key_hash != api.key and api.key not in rows[0].key_hash
    assert len(rows[0].key_hash) == 64


async def test_health_and_reflection(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    for name in ("", "hookline.v1.EndpointService", "hookline.v1.EventService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    stub = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in reply.list_services_response.service}
    assert {
        "hookline.v1.EndpointService",
        "hookline.v1.EventTypeService",
        "hookline.v1.EventService",
        "grpc.health.v1.Health",
    } <= names
