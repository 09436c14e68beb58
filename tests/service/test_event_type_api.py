from __future__ import annotations

import grpc
import pytest

from hookline.v1 import event_type_pb2
from tests.conftest import Api


async def list_all(api: Api, **fields: object) -> list[event_type_pb2.EventType]:
    out: list[event_type_pb2.EventType] = []
    token = ""
    while True:
        page = await api.event_types.ListEventTypes(
            event_type_pb2.ListEventTypesRequest(page_token=token, **fields),  # type: ignore[arg-type]
            metadata=api.auth,
        )
        out += page.event_types
        token = page.next_page_token
        if not token:
            return out


async def test_list_whole_catalog_with_and_without_deprecated(api: Api) -> None:
    everything = await list_all(api, include_deprecated=True, page_size=50)
    assert len(everything) == 176
    current = await list_all(api, page_size=0)
    assert len(current) == 174
    assert {"credits.purchased", "credits.low"} == {t.name for t in everything} - {
        t.name for t in current
    }


async def test_filter_by_group(api: Api) -> None:
    webhook = await list_all(api, group="webhook_endpoint")
    assert [t.name for t in webhook] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_all(api, group="nope")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_event_type(api: Api) -> None:
    got = await api.event_types.GetEventType(
        event_type_pb2.GetEventTypeRequest(name="credits.low"), metadata=api.auth
    )
    assert got.event_type.deprecated and got.event_type.replaced_by == "balance.low"
    assert got.event_type.group == "billing"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.event_types.GetEventType(
            event_type_pb2.GetEventTypeRequest(name="credits.lowish"), metadata=api.auth
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.event_types.GetEventType(event_type_pb2.GetEventTypeRequest(), metadata=api.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
