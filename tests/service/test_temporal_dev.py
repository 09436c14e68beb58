"""DevServer: the Temporal dev server as a child process, restarted on the same SQLite file."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from service import temporal_dev
from service.temporal_dev import DevServer, DevServerConfig, DevServerError, temporal_cli_path

TENANT_FLAGS = ("--search-attribute", "HooklineTenant=Keyword")
POLL = 0.05


@workflow.defn
class ParkedWorkflow:
    """Sleeps on a durable timer, then waits for the `release` signal."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, timer_seconds: float) -> str:
        await workflow.sleep(timedelta(seconds=timer_seconds))
        await workflow.wait_condition(lambda: self._released)
        return "released"

    @workflow.signal
    def release(self) -> None:
        self._released = True


def config_for(
    tmp_path: Path, port: int = 0, ui_port: int | None = None, namespace: str = "default"
) -> DevServerConfig:
    return DevServerConfig(
        db_file=tmp_path / "temporal.db",
        port=port,
        ui_port=ui_port,
        namespace=namespace,
        search_attributes=TENANT_FLAGS,
        log_file=tmp_path / "temporal.log",
    )


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


@contextmanager
def listener() -> Iterator[int]:
    """A port someone else is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@asynccontextmanager
async def parked_worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ParkedWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ) as worker:
        yield worker


async def wait_for_event(
    handle: WorkflowHandle[ParkedWorkflow, str], event: EventType.ValueType
) -> None:
    async with asyncio.timeout(20):
        while True:
            history = await handle.fetch_history()
            if any(e.event_type == event for e in history.events):
                return
            await asyncio.sleep(POLL)


def test_cli_path_is_the_bundled_binary() -> None:
    path = temporal_cli_path()
    assert path.is_file()
    assert os.access(path, os.X_OK)


def test_command_line(tmp_path: Path) -> None:
    server = DevServer(config_for(tmp_path, port=7299, ui_port=8299, namespace="hookline"))
    assert server.target == "127.0.0.1:7299"
    assert server.ui_url == "http://127.0.0.1:8299"
    assert server.command()[1:] == [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        "7299",
        "--log-level",
        "warn",
        "--ui-port",
        "8299",
        "--namespace",
        "hookline",
        "--db-filename",
        str(tmp_path / "temporal.db"),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        *TENANT_FLAGS,
    ]
    in_memory = DevServer(DevServerConfig(db_file=None, port=7299, ui_port=None))
    assert in_memory.ui_url is None
    assert "--headless" in in_memory.command()
    assert "--sqlite-pragma" not in in_memory.command()
    assert "--db-filename" not in in_memory.command()


async def test_starts_on_free_ports_with_search_attributes(tmp_path: Path) -> None:
    server = DevServer(config_for(tmp_path, ui_port=0))
    assert server.port != 0
    assert server.ui_url is not None
    assert server.ui_url != f"http://{server.target}"
    async with server:
        pid = server.pid
        assert pid is not None
        client = await Client.connect(server.target)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert listed.custom_attributes["HooklineTenant"] == (
            IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        )
        with pytest.raises(DevServerError, match="already running"):
            await server.start()
    assert server.pid is None
    assert_gone(pid)
    await server.stop()  # idempotent
    await server.kill()
    with closing(sqlite3.connect(tmp_path / "temporal.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_non_default_namespace_in_memory() -> None:
    async with DevServer(DevServerConfig(db_file=None, port=0, ui_port=None, namespace="hl")) as s:
        client = await Client.connect(s.target, namespace="hl")
        await client.list_workflows().fetch_next_page()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_workflow_and_timer_survive_a_restart(
    tmp_path: Path, how: Literal["stop", "kill"]
) -> None:
    config = config_for(tmp_path)
    task_queue = f"parked-{uuid.uuid4().hex}"
    workflow_id = f"parked-{uuid.uuid4().hex}"
    first = DevServer(config)
    try:
        await first.start()
        client = await Client.connect(first.target)
        async with parked_worker(client, task_queue):
            handle = await client.start_workflow(
                ParkedWorkflow.run, 3.0, id=workflow_id, task_queue=task_queue
            )
            await wait_for_event(handle, EventType.EVENT_TYPE_TIMER_STARTED)
        pid = first.pid
        assert pid is not None
        await (first.stop() if how == "stop" else first.kill())
        assert_gone(pid)
    finally:
        await first.stop()

    async with DevServer(replace(config, port=first.port)) as second:
        assert second.target == first.target
        client = await Client.connect(second.target)
        handle = client.get_workflow_handle_for(ParkedWorkflow.run, workflow_id)
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        async with parked_worker(client, task_queue):
            await handle.signal(ParkedWorkflow.release)
            async with asyncio.timeout(30):
                assert await handle.result() == "released"
        history = await handle.fetch_history()
        assert any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events)


async def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with listener() as port:
        server = DevServer(config_for(tmp_path, port=port))
        with pytest.raises(
            DevServerError, match=rf"gRPC port 127\.0\.0\.1:{port} is not available"
        ):
            await server.start()
        assert server.pid is None
    with listener() as ui_port:
        server = DevServer(config_for(tmp_path, ui_port=ui_port))
        with pytest.raises(DevServerError, match=rf"UI port 127\.0\.0\.1:{ui_port}"):
            await server.start()


async def test_port_taken_after_the_check_shows_the_server_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lost race with another process: the server's own error comes back, not a timeout."""
    monkeypatch.setattr(temporal_dev, "_check_port_free", lambda *_: None)
    with listener() as port:
        server = DevServer(config_for(tmp_path, port=port))
        with pytest.raises(DevServerError, match="exited early") as raised:
            await server.start(timeout=30)
        assert "address already in use" in str(raised.value)
        assert str(tmp_path / "temporal.log") in str(raised.value)


async def test_early_exit_without_log_file_reports_the_output() -> None:
    config = DevServerConfig(
        db_file=None, port=0, ui_port=None, search_attributes=("--search-attribute", "X=Nope")
    )
    with pytest.raises(DevServerError, match="exited early") as raised:
        await DevServer(config).start()
    assert 'invalid search attribute value type "Nope"' in str(raised.value)
