"""A full delivery stack per test: real Temporal dev server, store, worker, dispatcher, gRPC API,
and a loopback HTTP receiver. Loopback is allowed by the operator setting, as in `hookline dev`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from hookline.v1 import (
    delivery_pb2_grpc,
    endpoint_pb2,
    endpoint_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
)
from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.db.models import Attempt, Delivery
from service.runtime import attach_delivery, background, build_worker, http_client
from service.server import ApiServer
from service.ssrf import StaticResolver
from service.temporal_dev import temporal_cli_path
from tests.activities.receivers import LoopbackReceiver
from tests.conftest import TEST_DNS
from workflows import search_attributes

WS = "7d1c2e4a-1111-4222-8333-444455556666"


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        search_attributes=search_attributes.ALL,
    )
    yield env
    await env.shutdown()


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Delivery tests run on SQLite; test_store_backends runs the core flow on both."""
    return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll until predicate() is true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@dataclass
class Stack:
    core: Core
    client: Client
    receiver: LoopbackReceiver
    endpoints: endpoint_pb2_grpc.EndpointServiceAsyncStub
    events: event_pb2_grpc.EventServiceAsyncStub
    deliveries: delivery_pb2_grpc.DeliveryServiceAsyncStub
    auth: tuple[tuple[str, str]]
    tenant_id: str

    async def endpoint(self, path: str, events: list[str], **fields: object) -> tuple[str, str]:
        """Create an endpoint on the receiver; returns (id, secret)."""
        created = await self.endpoints.CreateEndpoint(
            endpoint_pb2.CreateEndpointRequest(
                url=self.receiver.url_for("receiver.test", path),
                events=events,
                **fields,  # type: ignore[arg-type]
            ),
            metadata=self.auth,
        )
        return created.endpoint.id, created.secret

    async def publish(self, event_type: str, data: bytes = b'{"n":1}', **fields: object) -> str:
        response = await self.events.PublishEvent(
            event_pb2.PublishEventRequest(
                type=event_type,
                workspace_id=WS,
                data=data,
                **fields,  # type: ignore[arg-type]
            ),
            metadata=self.auth,
        )
        return response.event.id

    async def deliveries_of(self, event_id: str) -> list[Delivery]:
        async with self.core.sessions() as session:
            rows = await session.exec(
                select(Delivery).where(Delivery.event_id == event_id).order_by(col(Delivery.id))
            )
            return list(rows.all())

    async def attempts_of(self, delivery_id: str) -> list[Attempt]:
        async with self.core.sessions() as session:
            rows = await session.exec(
                select(Attempt)
                .where(Attempt.delivery_id == delivery_id)
                .order_by(col(Attempt.number))
            )
            return list(rows.all())

    async def wait_status(
        self, event_id: str, status: str, *, count: int = 1, timeout: float = 30.0
    ) -> list[Delivery]:
        async def done() -> bool:
            rows = await self.deliveries_of(event_id)
            return len(rows) == count and all(r.status == status for r in rows)

        await wait_for(done, timeout=timeout)
        return await self.deliveries_of(event_id)


def stack_settings(tmp_path: Path, database_url: str) -> Settings:
    from service.crypto import SecretBox

    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        master_keys=SecretBox.generate_spec("test1"),
        grpc_address="127.0.0.1:0",
        ssrf_allow_cidrs=("127.0.0.0/8",),
        ssrf_allow_http=True,
        signature_header="X-Devotel-Signature",
        task_queue=f"deliveries-{uuid.uuid4().hex[:12]}",
        # Production runs unsandboxed for speed; tests run the workflow in the sandbox, which
        # fails a workflow task on a non-deterministic call.
        workflow_sandbox=True,
    )


@pytest.fixture
async def receiver() -> AsyncIterator[LoopbackReceiver]:
    async with LoopbackReceiver() as running:
        yield running


@pytest.fixture
def resolver() -> StaticResolver:
    return StaticResolver(TEST_DNS)


@pytest.fixture
async def stack(
    tmp_path: Path,
    database_url: str,
    temporal_env: WorkflowEnvironment,
    receiver: LoopbackReceiver,
    resolver: StaticResolver,
) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path, database_url)
    core = await build_core(settings, resolver=resolver)
    # Like production: the tracing interceptor on the client, inherited by the worker.
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        interceptors=[TracingInterceptor()],
    )
    delivery = attach_delivery(core, client, with_worker=True)
    server = ApiServer(core, "127.0.0.1:0", delivery.control)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    tenant, key = await create_tenant(core.sessions, f"tenant-{uuid.uuid4().hex[:8]}")
    async with (
        http_client(core) as http,
        build_worker(core, client, http),
        background(delivery.dispatcher.run()),
    ):
        yield Stack(
            core=core,
            client=client,
            receiver=receiver,
            endpoints=endpoint_pb2_grpc.EndpointServiceStub(channel),
            events=event_pb2_grpc.EventServiceStub(channel),
            deliveries=delivery_pb2_grpc.DeliveryServiceStub(channel),
            auth=(("x-api-key", key),),
            tenant_id=tenant.id,
        )
    await channel.close(grace=None)
    await server.stop(grace=1)
    await core.aclose()
