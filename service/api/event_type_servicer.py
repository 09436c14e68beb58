from __future__ import annotations

from typing import Any

import grpc

from hookline.v1 import event_type_pb2, event_type_pb2_grpc
from service.api import convert
from service.api.handlers import rpc
from service.auth import Authenticator
from service.catalog import Catalog
from service.errors import invalid_field, not_found
from service.pagination import encode_token, parse_page

Context = grpc.aio.ServicerContext[Any, Any]


class EventTypeServicer(event_type_pb2_grpc.EventTypeServiceServicer):
    def __init__(self, auth: Authenticator, catalog: Catalog) -> None:
        self._auth = auth
        self._catalog = catalog

    @rpc
    async def ListEventTypes(
        self, request: event_type_pb2.ListEventTypesRequest, context: Context
    ) -> event_type_pb2.ListEventTypesResponse:
        await self._auth.tenant_id(context)
        if request.group and not self._catalog.has_group(request.group):
            known = ", ".join(g.id for g in self._catalog.groups())
            raise invalid_field("group", f'unknown group "{request.group[:100]}"; known: {known}')
        query = f"event_types|{request.group}|{request.include_deprecated}"
        page = parse_page(request.page_size, request.page_token, query)
        types = self._catalog.list(
            group=request.group, include_deprecated=request.include_deprecated
        )
        start = 0
        if page.after:
            names = [t.name for t in types]
            if page.after not in names:
                raise invalid_field("page_token", "refers to an event type no longer listed")
            start = names.index(page.after) + 1
        chunk = types[start : start + page.size]
        more = start + page.size < len(types)
        return event_type_pb2.ListEventTypesResponse(
            event_types=[convert.event_type(t) for t in chunk],
            next_page_token=encode_token(chunk[-1].name, query) if more and chunk else "",
        )

    @rpc
    async def GetEventType(
        self, request: event_type_pb2.GetEventTypeRequest, context: Context
    ) -> event_type_pb2.GetEventTypeResponse:
        await self._auth.tenant_id(context)
        if not request.name:
            raise invalid_field("name", "is required")
        info = self._catalog.get(request.name)
        if info is None:
            raise not_found("event_type", request.name[:200])
        return event_type_pb2.GetEventTypeResponse(event_type=convert.event_type(info))
