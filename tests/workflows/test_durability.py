"""Durability under crashes: a worker killed mid-delivery, a Temporal server restarted mid-backoff.

Everything runs as it does in production, minus the API: a Temporal dev server on a SQLite file, a
SQLite store shared across processes, and `hookline worker` as a real child process. The test
process only creates the endpoint and publishes (through Core), plays the receiver, and reads the
store. Reliability checklist items 41, 43 and 44.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import standardwebhooks
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.db.models import Attempt, Delivery
from service.endpoints import EndpointSpec
from service.errors import Violations
from service.retry_policy import RetryPolicy
from service.temporal_dev import DevServer, DevServerConfig
from tests.activities.receivers import LoopbackReceiver, RecordedRequest, ScriptedResponse
from tests.workflows.conftest import WS, stack_settings
from workflows.search_attributes import dev_server_flags
from workflows.types import workflow_id

pytestmark = pytest.mark.timeout(240)

HOOKLINE = Path(sys.executable).parent / "hookline"
EVENT_TYPE = "message.delivered"
SETTLE_TIMEOUT = 90.0  # seconds for every delivery to reach its final state


# -- helpers ------------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    describe: Callable[[], Awaitable[str]],
    interval: float = 0.2,
) -> None:
    """Poll until predicate() holds; on timeout fail with describe()'s account of the state."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g} s: {await describe()}")
        await asyncio.sleep(interval)


class WorkerProcess:
    """`hookline worker` as a direct child process, its output appended to a log file."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(cls, env: dict[str, str], log_path: Path) -> WorkerProcess:
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            process = await asyncio.create_subprocess_exec(
                str(HOOKLINE),
                "worker",
                env=env,
                cwd=log_path.parent,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def sigkill(self) -> None:
        """SIGKILL the worker itself: the console script execs python, so the pid is the worker."""
        exe = Path(f"/proc/{self.pid}/exe")
        if exe.parent.exists():
            assert "python" in exe.resolve().name, f"pid {self.pid} is {exe.resolve()}"
        os.kill(self.pid, signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL

    async def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, wait up to `grace` seconds for the drain, then SIGKILL. Idempotent."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        await self.process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no worker log)"
        return "\n".join(text.splitlines()[-lines:])


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment a separately deployed worker would get, pointing at the test's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_DATA_DIR=str(settings.data_dir),
        HOOKLINE_DATABASE_URL=settings.database_url,
        HOOKLINE_MASTER_KEYS=settings.master_keys,
        HOOKLINE_SSRF_ALLOW_CIDRS=",".join(settings.ssrf_allow_cidrs),
        HOOKLINE_SSRF_ALLOW_HTTP="1",
        HOOKLINE_TEMPORAL_ADDRESS=settings.temporal_address,
        HOOKLINE_TASK_QUEUE=settings.task_queue,
        HOOKLINE_SIGNATURE_HEADER=settings.signature_header,
        HOOKLINE_GRPC_ADDRESS="127.0.0.1:0",  # no API in a worker; nothing to keep off-limits
        PYTHONUNBUFFERED="1",
    )
    return env


def server_config(tmp_path: Path, port: int = 0) -> DevServerConfig:
    return DevServerConfig(
        db_file=tmp_path / "temporal.db",
        port=port,
        ui_port=None,
        search_attributes=dev_server_flags(),
        log_file=tmp_path / "temporal.log",
    )


async def create_endpoint(
    core: Core, tenant_id: str, url: str, retry_policy: RetryPolicy | None = None
) -> tuple[str, str]:
    """An endpoint validated as the API would (the URL passes the SSRF check); (id, secret)."""
    violations = Violations()
    spec: EndpointSpec = await core.endpoints.validate_spec(
        violations,
        url=url,
        events=[EVENT_TYPE],
        secret="",
        active=True,
        description="durability",
        timeout_seconds=30,
        retry_policy=retry_policy,
        workspace_id="",
    )
    violations.raise_if_any()
    endpoint, secret = await core.endpoints.create(tenant_id, spec, "")
    return endpoint.id, secret


async def publish(core: Core, tenant_id: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        result = await core.ingestor.publish(
            tenant_id, EVENT_TYPE, WS, json.dumps({"n": n}).encode(), ""
        )
        assert result.delivery_count == 1
        ids.append(result.event.id)
    return ids


async def deliveries_of(core: Core, endpoint_id: str) -> list[Delivery]:
    async with core.sessions() as session:
        rows = await session.exec(
            select(Delivery).where(Delivery.endpoint_id == endpoint_id).order_by(col(Delivery.id))
        )
        return list(rows.all())


async def attempts_of(core: Core, delivery_id: str) -> list[tuple[int, int | None]]:
    async with core.sessions() as session:
        rows = await session.exec(
            select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(col(Attempt.number))
        )
        return [(a.number, a.status_code) for a in rows.all()]


def summarize(rows: list[Delivery]) -> str:
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        counts[(row.status, row.attempt_count)] += 1
    return ", ".join(f"{n}x {status}/attempts={a}" for (status, a), n in sorted(counts.items()))


def by_webhook_id(requests: list[RecordedRequest]) -> dict[str, list[RecordedRequest]]:
    grouped: dict[str, list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        grouped[request.header("webhook-id") or "<none>"].append(request)
    return grouped


def settings_for(tmp_path: Path, server: DevServer) -> Settings:
    settings = stack_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}")
    return replace(settings, temporal_address=server.target)


# -- tests --------------------------------------------------------------------------------------


async def test_worker_sigkilled_mid_delivery_redelivers_with_the_same_webhook_id(
    tmp_path: Path,
) -> None:
    """Checklist 41/43: attempts in flight on a SIGKILLed worker are rerun by the next worker
    (after the heartbeat timeout); every delivery succeeds and a duplicate is the same message."""
    events = 20
    async with contextlib.AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(LoopbackReceiver())
        receiver.default = ScriptedResponse(status=200, delay_seconds=3.0)  # keep attempts open
        server = DevServer(server_config(tmp_path))
        stack.push_async_callback(server.stop)
        await server.start()
        settings = settings_for(tmp_path, server)
        core = await build_core(settings)
        stack.push_async_callback(core.aclose)
        tenant, _ = await create_tenant(core.sessions, f"tenant-{uuid.uuid4().hex[:8]}")
        endpoint_id, secret = await create_endpoint(
            core, tenant.id, receiver.url_for("127.0.0.1", "/hook")
        )
        event_ids = await publish(core, tenant.id, events)
        env = worker_env(settings)

        first = await WorkerProcess.start(env, tmp_path / "worker-1.log")
        stack.push_async_callback(first.stop)
        try:
            await receiver.wait_for_requests(10, timeout=60)
        except TimeoutError:
            pytest.fail(f"the first worker sent {len(receiver.requests)} requests:\n{first.tail()}")
        await first.sigkill()
        seen_before_kill = len(receiver.requests)
        succeeded_before_kill = sum(
            r.status == "SUCCEEDED" for r in await deliveries_of(core, endpoint_id)
        )

        receiver.default = ScriptedResponse(status=200)
        second = await WorkerProcess.start(env, tmp_path / "worker-2.log")
        stack.push_async_callback(second.stop)

        async def all_succeeded() -> bool:
            rows = await deliveries_of(core, endpoint_id)
            return len(rows) == events and all(r.status == "SUCCEEDED" for r in rows)

        async def state() -> str:
            rows = await deliveries_of(core, endpoint_id)
            return (
                f"{len(rows)} deliveries: {summarize(rows)}; {len(receiver.requests)} requests; "
                f"second worker log:\n{second.tail()}"
            )

        await wait_until(all_succeeded, timeout=SETTLE_TIMEOUT, describe=state)

        rows = await deliveries_of(core, endpoint_id)
        # The rerun is the same attempt (an infrastructure retry), not one more policy attempt.
        assert [r.attempt_count for r in rows] == [1] * events, summarize(rows)
        for row in rows:
            assert await attempts_of(core, row.id) == [(1, 200)]

        grouped = by_webhook_id(receiver.requests)
        duplicates = {wid: len(reqs) for wid, reqs in grouped.items() if len(reqs) > 1}
        report = (
            f"{len(receiver.requests)} requests for {events} events, {seen_before_kill} seen "
            f"before the SIGKILL ({succeeded_before_kill} deliveries had succeeded by then); "
            f"{sum(n - 1 for n in duplicates.values())} duplicates: {duplicates}"
        )
        print(report)
        assert set(grouped) == set(event_ids), report
        verifier = standardwebhooks.Webhook(secret)
        for webhook_id, requests in grouped.items():
            for request in requests:
                # Each copy is the same message: same id in the envelope, valid signature.
                assert json.loads(request.body)["id"] == webhook_id, report
                verifier.verify(request.body, dict(request.headers))
        assert second.process.returncode is None, second.tail()


async def test_temporal_restart_during_backoff_fires_the_timers(tmp_path: Path) -> None:
    """Checklist 44: deliveries waiting on their backoff timer survive a Temporal server crash
    and restart on the same SQLite file; the worker reconnects and the second attempt succeeds."""
    events = 10
    async with contextlib.AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(LoopbackReceiver())
        failed_once: set[str] = set()

        def first_attempt_fails(request: RecordedRequest) -> ScriptedResponse:
            webhook_id = request.header("webhook-id") or ""
            if webhook_id in failed_once:
                return ScriptedResponse(status=200)
            failed_once.add(webhook_id)
            return ScriptedResponse(status=500)

        receiver.default = first_attempt_fails
        config = server_config(tmp_path)
        server = DevServer(config)
        stack.push_async_callback(server.stop)
        await server.start()
        settings = settings_for(tmp_path, server)
        core = await build_core(settings)
        stack.push_async_callback(core.aclose)
        tenant, _ = await create_tenant(core.sessions, f"tenant-{uuid.uuid4().hex[:8]}")
        endpoint_id, _ = await create_endpoint(
            core,
            tenant.id,
            receiver.url_for("127.0.0.1", "/hook"),
            RetryPolicy(max_attempts=3, schedule=(3.0,)),
        )
        event_ids = await publish(core, tenant.id, events)
        worker = await WorkerProcess.start(worker_env(settings), tmp_path / "worker.log")
        stack.push_async_callback(worker.stop)
        client = await Client.connect(server.target)

        timer_started: set[str] = set()

        async def backing_off() -> bool:
            """Every delivery failed attempt 1 and Temporal has its backoff timer.

            Attempt 1 is recorded in the store before Temporal hears of it, so the store alone
            could show an attempt still in flight: wait for TIMER_STARTED in each history. Once
            seen it stays seen, so a timer firing early cannot make this wait miss its moment.
            """
            rows = await deliveries_of(core, endpoint_id)
            if len(rows) != events or any(r.attempt_count < 1 for r in rows):
                return False
            for row in rows:
                if row.id in timer_started:
                    continue
                history = await client.get_workflow_handle(workflow_id(row.id)).fetch_history()
                if not any(
                    e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events
                ):
                    return False
                timer_started.add(row.id)
            return True

        async def state() -> str:
            rows = await deliveries_of(core, endpoint_id)
            return f"{len(rows)} deliveries: {summarize(rows)}; worker log:\n{worker.tail()}"

        await wait_until(backing_off, timeout=SETTLE_TIMEOUT, describe=state)
        await server.kill()  # a crash: no chance to flush or hand anything over
        rows = await deliveries_of(core, endpoint_id)
        still_waiting = sum((r.status, r.attempt_count) == ("PENDING", 1) for r in rows)
        # Precondition, not a timing claim: at least one delivery must still be on its timer,
        # or this run did not exercise a restart during backoff at all.
        assert still_waiting > 0, (
            f"every timer fired before the server went down: {summarize(rows)}"
        )

        restarted = DevServer(replace(config, port=server.port))
        stack.push_async_callback(restarted.stop)
        await restarted.start()

        async def all_succeeded() -> bool:
            rows = await deliveries_of(core, endpoint_id)
            return len(rows) == events and all(r.status == "SUCCEEDED" for r in rows)

        await wait_until(all_succeeded, timeout=SETTLE_TIMEOUT, describe=state)

        rows = await deliveries_of(core, endpoint_id)
        assert [r.attempt_count for r in rows] == [2] * events, summarize(rows)
        for row in rows:
            assert await attempts_of(core, row.id) == [(1, 500), (2, 200)]
        grouped = by_webhook_id(receiver.requests)
        assert set(grouped) == set(event_ids)
        assert all(len(requests) >= 2 for requests in grouped.values())
        print(
            f"{still_waiting}/{events} deliveries were still waiting on their timer when the "
            f"server was killed; {len(receiver.requests)} requests in all"
        )
        assert worker.process.returncode is None, worker.tail()
