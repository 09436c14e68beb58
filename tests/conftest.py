"""Shared fixtures: a real store on SQLite and PostgreSQL, and the gRPC API on a loopback port."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from hookline.v1 import endpoint_pb2_grpc, event_pb2_grpc, event_type_pb2_grpc
from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.crypto import SecretBox
from service.delivery_control import DeliveryControl
from service.dispatcher import Dispatcher
from service.server import ApiServer
from service.ssrf import StaticResolver
from service.telemetry import configure_metrics, configure_tracing

# One tracer and meter provider for the whole test session (OpenTelemetry allows one per process);
# tests read what was recorded from these.
SPANS = InMemorySpanExporter()
METRIC_READER = InMemoryMetricReader()
configure_tracing(extra=SPANS)
configure_metrics(extra=METRIC_READER)

PG_ADMIN_DSN = os.environ.get(
    "HOOKLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Names the tests use for receivers; resolution never leaves this table, so no outside DNS.
TEST_DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "other.example.com": ["93.184.215.15"],
    "v6.example.com": ["2606:4700:4700::1111"],
    "internal.example.com": ["10.0.0.7"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": ["93.184.215.14", "127.0.0.1"],
    "receiver.test": ["127.0.0.1"],
}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway database for the session; tests keep apart by using their own tenants."""
    name = f"hookline_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A database of its own, for tests whose dispatcher must not see other tests' rows."""
    name = f"hookline_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        master_keys=SecretBox.generate_spec("test1"),
        grpc_address="127.0.0.1:0",
    )


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    built = await build_core(settings, resolver=StaticResolver(TEST_DNS))
    yield built
    await built.aclose()


@dataclass
class Api:
    channel: grpc.aio.Channel
    endpoints: endpoint_pb2_grpc.EndpointServiceAsyncStub
    events: event_pb2_grpc.EventServiceAsyncStub
    event_types: event_type_pb2_grpc.EventTypeServiceAsyncStub
    key: str
    tenant_id: str
    core: Core
    port: int

    @property
    def auth(self) -> tuple[tuple[str, str]]:
        return (("x-api-key", self.key),)

    async def new_tenant(self, name: str | None = None) -> tuple[str, tuple[tuple[str, str]]]:
        tenant, key = await create_tenant(self.core.sessions, name or f"t-{uuid.uuid4().hex[:8]}")
        return tenant.id, (("x-api-key", key),)


@pytest.fixture
async def api(core: Core) -> AsyncIterator[Api]:
    """The API alone: deliveries stay PENDING rows (no Temporal; tests/workflows covers delivery)."""
    unreachable = await Client.connect("127.0.0.1:9", lazy=True)
    dispatcher = Dispatcher(core.sessions, unreachable, "unused")
    server = ApiServer(
        core, "127.0.0.1:0", DeliveryControl(core.sessions, unreachable, "unused", dispatcher)
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    tenant, key = await create_tenant(core.sessions, f"tenant-{uuid.uuid4().hex[:8]}")
    yield Api(
        channel=channel,
        endpoints=endpoint_pb2_grpc.EndpointServiceStub(channel),
        events=event_pb2_grpc.EventServiceStub(channel),
        event_types=event_type_pb2_grpc.EventTypeServiceStub(channel),
        key=key,
        tenant_id=tenant.id,
        core=core,
        port=server.port,
    )
    await channel.close(grace=None)
    await server.stop(grace=1)
