from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from hookline.v1 import endpoint_pb2, endpoint_pb2_grpc
from service import retry_policy, validation
from service.api import convert
from service.api.handlers import rpc
from service.auth import Authenticator
from service.crypto import parse_webhook_secret
from service.endpoints import (
    DEFAULT_OVERLAP,
    MAX_OVERLAP,
    UPDATABLE_FIELDS,
    EndpointChange,
    EndpointManager,
    check_endpoint_id,
)
from service.errors import Violations, invalid_field
from service.pagination import encode_token, parse_page

Context = grpc.aio.ServicerContext[Any, Any]


class EndpointServicer(endpoint_pb2_grpc.EndpointServiceServicer):
    def __init__(self, auth: Authenticator, manager: EndpointManager) -> None:
        self._auth = auth
        self._manager = manager

    @rpc
    async def CreateEndpoint(
        self, request: endpoint_pb2.CreateEndpointRequest, context: Context
    ) -> endpoint_pb2.CreateEndpointResponse:
        tenant_id = await self._auth.tenant_id(context)
        violations = Violations()
        policy = (
            retry_policy.from_proto(request.retry_policy, violations)
            if request.HasField("retry_policy")
            else None
        )
        spec = await self._manager.validate_spec(
            violations,
            url=request.url,
            events=list(request.events),
            secret=request.secret,
            active=request.active if request.HasField("active") else True,
            description=request.description,
            timeout_seconds=request.timeout_seconds,
            retry_policy=policy,
            workspace_id=request.workspace_id,
        )
        violations.raise_if_any()
        row, secret = await self._manager.create(tenant_id, spec, request.secret)
        return endpoint_pb2.CreateEndpointResponse(endpoint=convert.endpoint(row), secret=secret)

    @rpc
    async def GetEndpoint(
        self, request: endpoint_pb2.GetEndpointRequest, context: Context
    ) -> endpoint_pb2.GetEndpointResponse:
        tenant_id = await self._auth.tenant_id(context)
        row = await self._manager.get(tenant_id, request.id)
        return endpoint_pb2.GetEndpointResponse(endpoint=convert.endpoint(row))

    @rpc
    async def ListEndpoints(
        self, request: endpoint_pb2.ListEndpointsRequest, context: Context
    ) -> endpoint_pb2.ListEndpointsResponse:
        tenant_id = await self._auth.tenant_id(context)
        page = parse_page(request.page_size, request.page_token, "endpoints")
        rows, last = await self._manager.list_page(tenant_id, page)
        return endpoint_pb2.ListEndpointsResponse(
            endpoints=[convert.endpoint(r) for r in rows],
            next_page_token=encode_token(last, "endpoints") if last else "",
        )

    @rpc
    async def UpdateEndpoint(
        self, request: endpoint_pb2.UpdateEndpointRequest, context: Context
    ) -> endpoint_pb2.UpdateEndpointResponse:
        tenant_id = await self._auth.tenant_id(context)
        if not request.HasField("endpoint"):
            raise invalid_field("endpoint", "is required")
        check_endpoint_id(request.endpoint.id, "endpoint.id")
        change = await self._change(request)
        row = await self._manager.update(tenant_id, request.endpoint.id, change)
        return endpoint_pb2.UpdateEndpointResponse(endpoint=convert.endpoint(row))

    async def _change(self, request: endpoint_pb2.UpdateEndpointRequest) -> EndpointChange:
        body = request.endpoint
        violations = Violations()
        paths = list(request.update_mask.paths)
        for index, path in enumerate(paths):
            if path not in UPDATABLE_FIELDS:
                violations.add(
                    f"update_mask.paths[{index}]",
                    f'"{path}" cannot be updated; updatable: {", ".join(UPDATABLE_FIELDS)}',
                )
        if not paths:
            # AIP-134: without a mask, every field given a non-default value is updated.
            paths = [
                name
                for name in UPDATABLE_FIELDS
                if name != "active"
                and (
                    body.HasField("retry_policy")
                    if name == "retry_policy"
                    else bool(getattr(body, name))
                )
            ]
            if body.active:
                paths.append("active")
            if not paths:
                violations.add("update_mask", "names no field and the endpoint sets none")
        violations.raise_if_any()
        fields = set(paths)
        m = self._manager
        change = EndpointChange(
            url=(
                await validation.endpoint_url(
                    body.url, violations, m.network_policy, m.resolver, "endpoint.url"
                )
                if "url" in fields
                else None
            ),
            events=(
                validation.subscriptions(
                    list(body.events), m.catalog, violations, "endpoint.events"
                )
                if "events" in fields
                else None
            ),
            active=body.active if "active" in fields else None,
            description=(
                validation.description(body.description, violations, "endpoint.description")
                if "description" in fields
                else None
            ),
            timeout_seconds=(
                validation.timeout_seconds(
                    body.timeout_seconds, violations, "endpoint.timeout_seconds"
                )
                if "timeout_seconds" in fields
                else None
            ),
            retry_policy=(
                retry_policy.from_proto(body.retry_policy, violations, "endpoint.retry_policy")
                if "retry_policy" in fields
                else None
            ),
            workspace_id=(
                validation.workspace_scope(body.workspace_id, violations, "endpoint.workspace_id")
                if "workspace_id" in fields
                else None
            ),
        )
        violations.raise_if_any()
        return change

    @rpc
    async def DeleteEndpoint(
        self, request: endpoint_pb2.DeleteEndpointRequest, context: Context
    ) -> endpoint_pb2.DeleteEndpointResponse:
        tenant_id = await self._auth.tenant_id(context)
        await self._manager.delete(tenant_id, request.id)
        return endpoint_pb2.DeleteEndpointResponse()

    @rpc
    async def RotateEndpointSecret(
        self, request: endpoint_pb2.RotateEndpointSecretRequest, context: Context
    ) -> endpoint_pb2.RotateEndpointSecretResponse:
        tenant_id = await self._auth.tenant_id(context)
        check_endpoint_id(request.id)
        violations = Violations()
        if request.secret:
            try:
                parse_webhook_secret(request.secret)
            except ValueError as exc:
                violations.add("secret", str(exc))
        overlap = DEFAULT_OVERLAP
        if request.HasField("overlap"):
            overlap = request.overlap.ToTimedelta()
            if not timedelta(0) <= overlap <= MAX_OVERLAP:
                violations.add("overlap", "must be between 0 and 7 days")
        violations.raise_if_any()
        row, secret, expire_time = await self._manager.rotate_secret(
            tenant_id, request.id, request.secret, overlap
        )
        return endpoint_pb2.RotateEndpointSecretResponse(
            endpoint=convert.endpoint(row),
            secret=secret,
            previous_secret_expire_time=convert.timestamp(expire_time),
        )
