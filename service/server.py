"""The gRPC server: Hookline's services plus health checking and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from hookline.v1 import (
    delivery_pb2,
    delivery_pb2_grpc,
    endpoint_pb2,
    endpoint_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    event_type_pb2,
    event_type_pb2_grpc,
)
from service.api.delivery_servicer import DeliveryServicer
from service.api.endpoint_servicer import EndpointServicer
from service.api.event_servicer import EventServicer
from service.api.event_type_servicer import EventTypeServicer
from service.app import Core
from service.delivery_control import DeliveryControl

SERVICE_NAMES = (
    endpoint_pb2.DESCRIPTOR.services_by_name["EndpointService"].full_name,
    event_type_pb2.DESCRIPTOR.services_by_name["EventTypeService"].full_name,
    event_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    delivery_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name,
)


class ApiServer:
    def __init__(self, core: Core, address: str, control: DeliveryControl) -> None:
        limit = core.settings.grpc_max_message_bytes
        self.server = grpc.aio.server(
            # Server spans; a trace context the caller sends in metadata becomes their parent.
            interceptors=[aio_server_interceptor()],  # type: ignore[no-untyped-call]
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(
            EndpointServicer(core.auth, core.endpoints), self.server
        )
        event_type_pb2_grpc.add_EventTypeServiceServicer_to_server(
            EventTypeServicer(core.auth, core.catalog), self.server
        )
        event_pb2_grpc.add_EventServiceServicer_to_server(
            EventServicer(core.auth, core.ingestor, core.sessions), self.server
        )
        delivery_pb2_grpc.add_DeliveryServiceServicer_to_server(
            DeliveryServicer(core.auth, core.sessions, control), self.server
        )
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {address}")

    async def start(self) -> None:
        await self.server.start()
        for name in (*SERVICE_NAMES, ""):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 10.0) -> None:
        """Report NOT_SERVING first so balancers drain, then let in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
