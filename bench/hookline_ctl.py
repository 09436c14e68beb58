"""Hookline under test: `hookline dev` (or serve + worker on a dev server), driven over gRPC."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from bench import procstat
from bench.common import DATA, free_port
from bench.procs import BIN, Child, child_env
from hookline.v1 import endpoint_pb2, endpoint_pb2_grpc, event_pb2, event_pb2_grpc

HOOKLINE = str(BIN / "hookline")
LOOPBACK_ENV = {"HOOKLINE_SSRF_ALLOW_CIDRS": "127.0.0.0/8", "HOOKLINE_SSRF_ALLOW_HTTP": "1"}


async def create_tenant(data_dir: Path, log: Path) -> str:
    """`hookline tenants create bench`; returns the API key (this also migrates and makes keys)."""
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        HOOKLINE,
        "tenants",
        "create",
        "bench",
        "--data-dir",
        str(data_dir),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode()
    with log.open("a") as handle:
        handle.write(text)
    found = re.search(r"api key \(shown once\): (\S+)", text)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"hookline tenants create failed: {text[-2000:]}")
    return found.group(1)


async def wait_serving(target: str, child: Child, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if not child.alive:
                raise RuntimeError(f"{child.name} exited{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not serving after {timeout:g}s{child.tail()}")
            await asyncio.sleep(0.2)


@dataclass
class Published:
    event_id: str
    start: float
    end: float


@dataclass
class PublishRun:
    events: list[Published] = field(default_factory=list)
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    first_error: str = ""

    def failed(self, error: grpc.aio.AioRpcError) -> None:
        self.errors += 1
        code = error.code().name
        self.error_codes[code] = self.error_codes.get(code, 0) + 1
        if not self.first_error:
            self.first_error = f"{code}: {error.details()} ({error.debug_error_string()})"[:500]

    started: float = 0.0
    finished: float = 0.0


class HooklineApi:
    """gRPC calls as one tenant."""

    def __init__(self, target: str, api_key: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._endpoints = endpoint_pb2_grpc.EndpointServiceStub(self._channel)
        self._events = event_pb2_grpc.EventServiceStub(self._channel)
        self._auth = (("x-api-key", api_key),)

    async def aclose(self) -> None:
        await self._channel.close(None)

    async def create_endpoint(
        self, url: str, events: Sequence[str], *, retry_delays_s: Sequence[int] | None = None
    ) -> str:
        policy = None
        if retry_delays_s is not None:
            policy = endpoint_pb2.RetryPolicy(
                max_attempts=len(retry_delays_s) + 1,
                schedule=endpoint_pb2.ScheduleBackoff(
                    delays=[duration_pb2.Duration(seconds=s) for s in retry_delays_s]
                ),
            )
        reply = await self._endpoints.CreateEndpoint(
            endpoint_pb2.CreateEndpointRequest(
                url=url, events=list(events), retry_policy=policy, timeout_seconds=10
            ),
            metadata=self._auth,
            timeout=30,
        )
        return str(reply.endpoint.id)

    async def publish(self, event_type: str) -> Published:
        start = time.time()
        reply = await self._events.PublishEvent(
            event_pb2.PublishEventRequest(type=event_type, workspace_id="__org__", data=DATA),
            metadata=self._auth,
            timeout=60,
        )
        return Published(str(reply.event.id), start, time.time())

    async def publish_many(
        self, event_type: str, count: int, callers: int, run: PublishRun | None = None
    ) -> PublishRun:
        """`count` events from `callers` concurrent callers, as fast as they are accepted.

        Pass `run` to watch `run.events` grow while it goes on."""
        run = run if run is not None else PublishRun()
        remaining = iter(range(count))

        async def caller() -> None:
            for _ in remaining:
                try:
                    run.events.append(await self.publish(event_type))
                except grpc.aio.AioRpcError as error:
                    run.failed(error)

        run.started = time.time()
        await asyncio.gather(*(caller() for _ in range(callers)))
        run.finished = time.time()
        return run

    async def publish_at_rate(self, event_type: str, count: int, rate: float) -> PublishRun:
        """`count` events at a fixed offered load of `rate` per second (open loop)."""
        run = PublishRun()

        async def one() -> None:
            try:
                run.events.append(await self.publish(event_type))
            except grpc.aio.AioRpcError as error:
                run.failed(error)

        run.started = time.time()
        t0 = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for n in range(count):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        run.finished = time.time()
        return run


class Deployment:
    """A running Hookline: processes to meter, the API target and the Temporal frontend."""

    def __init__(self, work: Path, log_dir: Path) -> None:
        self.work = work
        self.data_dir = work / "data"
        self.log_dir = log_dir
        self.grpc_target = f"127.0.0.1:{free_port()}"
        self.temporal_port = free_port()
        self.api_key = ""
        self.processes: dict[str, int] = {}
        self.children: list[Child] = []
        self._temporal: Client | None = None

    def env(self) -> dict[str, str]:
        """Environment of `hookline serve` and `hookline worker` against this dev server."""
        return child_env(
            {
                **LOOPBACK_ENV,
                "HOOKLINE_TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                "HOOKLINE_LOG_FORMAT": "text",
            }
        )

    async def temporal(self) -> Client:
        if self._temporal is None:
            self._temporal = await Client.connect(f"127.0.0.1:{self.temporal_port}")
        return self._temporal

    async def running_deliveries(self, event_type: str | None = None) -> int:
        """Delivery workflows still running (of one event type, by the search attribute)."""
        client = await self.temporal()
        query = "WorkflowType='Delivery' AND ExecutionStatus='Running'"
        if event_type is not None:
            query += f" AND HooklineEventType='{event_type}'"
        count = await client.count_workflows(query)
        return int(count.count)

    async def wait_idle(self, deadline: float, event_type: str | None = None) -> bool:
        """Until no Delivery workflow (of the type) is running, or the deadline passes."""
        while time.monotonic() < deadline:
            if await self.running_deliveries(event_type) == 0:
                return True
            await asyncio.sleep(0.25)
        return False

    async def history_events(self, sample: int = 5) -> list[int]:
        """History length of a few completed Delivery workflows."""
        client = await self.temporal()
        lengths: list[int] = []
        async for execution in client.list_workflows(
            "WorkflowType='Delivery' AND ExecutionStatus='Completed'", limit=sample
        ):
            history = await client.get_workflow_handle(execution.id).fetch_history()
            lengths.append(len(history.events))
        return lengths

    async def stop(self) -> None:
        for child in reversed(self.children):
            await child.stop()


async def start_dev(work: Path, log_dir: Path, registry: list[Child]) -> Deployment:
    """`hookline dev --allow-loopback-receivers` on free ports with a fresh data dir."""
    dep = Deployment(work, log_dir)
    dep.api_key = await create_tenant(dep.data_dir, log_dir / "hookline-tenant.log")
    child = await Child.start(
        "hookline-dev",
        [
            HOOKLINE,
            "dev",
            "--allow-loopback-receivers",
            "--data-dir",
            str(dep.data_dir),
            "--address",
            dep.grpc_target,
            "--temporal-port",
            str(dep.temporal_port),
            "--ui-port",
            str(free_port()),
        ],
        log=log_dir / "hookline-dev.log",
    )
    registry.append(child)
    dep.children.append(child)
    await wait_serving(dep.grpc_target, child)
    temporal = [p for p in procstat.descendants(child.pid) if procstat.comm(p) == "temporal"]
    dep.processes = {"hookline": child.pid}
    if temporal:
        dep.processes["temporal"] = temporal[0]
    return dep


async def start_split(work: Path, log_dir: Path, registry: list[Child]) -> Deployment:
    """Temporal's dev server (same settings as `hookline dev`), `hookline serve`, `hookline worker`.

    Used where the worker must be killed or measured on its own.
    """
    dep = Deployment(work, log_dir)
    temporal_args = dev_server_command(dep.data_dir, dep.temporal_port)
    temporal = await Child.start("temporal", temporal_args, log=log_dir / "temporal-split.log")
    registry.append(temporal)
    dep.children.append(temporal)
    dep.api_key, _ = await asyncio.gather(
        create_tenant(dep.data_dir, log_dir / "hookline-tenant.log"), wait_temporal(dep, temporal)
    )
    serve = await Child.start(
        "hookline-serve",
        [HOOKLINE, "serve", "--data-dir", str(dep.data_dir), "--address", dep.grpc_target],
        log=log_dir / "hookline-serve.log",
        env=dep.env(),
    )
    registry.append(serve)
    dep.children.append(serve)
    worker = await start_worker(dep, registry)
    await wait_serving(dep.grpc_target, serve)
    dep.processes = {"temporal": temporal.pid, "hookline-serve": serve.pid, "worker": worker.pid}
    return dep


async def start_worker(dep: Deployment, registry: list[Child]) -> Child:
    worker = await Child.start(
        "hookline-worker",
        [HOOKLINE, "worker", "--data-dir", str(dep.data_dir)],
        log=dep.log_dir / "hookline-worker.log",
        env=dep.env(),
    )
    registry.append(worker)
    dep.children.append(worker)
    dep.processes["worker"] = worker.pid
    return worker


def dev_server_command(data_dir: Path, port: int) -> list[str]:
    """The command line `hookline dev` uses for its Temporal dev server (SQLite file, WAL)."""
    from service.temporal_dev import DevServer, DevServerConfig
    from workflows import search_attributes

    data_dir.mkdir(parents=True, exist_ok=True)
    config = DevServerConfig(
        db_file=data_dir / "temporal.db",
        port=port,
        ui_port=free_port(),
        search_attributes=search_attributes.dev_server_flags(),
    )
    return DevServer(config).command()


async def wait_temporal(dep: Deployment, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await dep.temporal()
            await dep.running_deliveries()
            return
        except Exception:
            dep._temporal = None
            if not child.alive or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
