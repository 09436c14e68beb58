"""`hookline dev`, the README's first command, end to end as a newcomer runs it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hookline.v1 import endpoint_pb2, endpoint_pb2_grpc, event_pb2, event_pb2_grpc
from tests.activities.receivers import LoopbackReceiver, unused_port

HOOKLINE = str(Path(sys.executable).parent / "hookline")
pytestmark = pytest.mark.timeout(180)


async def run(*args: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        HOOKLINE, *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    grpc_port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    log = (tmp_path / "dev.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        HOOKLINE,
        "dev",
        "--allow-loopback-receivers",
        "--address",
        f"127.0.0.1:{grpc_port}",
        "--temporal-port",
        str(unused_port()),
        "--ui-port",
        str(unused_port()),
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    target = f"127.0.0.1:{grpc_port}"
    try:
        deadline = time.monotonic() + 90
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                assert process.returncode is None, (tmp_path / "dev.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
                await asyncio.sleep(0.2)
        yield target, tmp_path
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
    assert process.returncode == 0, (tmp_path / "dev.log").read_text()


async def test_dev_delivers_an_event_and_stops_cleanly(dev: tuple[str, Path]) -> None:
    target, cwd = dev
    output = await run("tenants", "create", "newcomer", cwd=cwd)
    key = re.search(r"api key \(shown once\): (\S+)", output)
    assert key is not None, output
    auth = (("x-api-key", key.group(1)),)
    async with LoopbackReceiver() as receiver, grpc.aio.insecure_channel(target) as channel:
        endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)
        events = event_pb2_grpc.EventServiceStub(channel)
        await endpoints.CreateEndpoint(
            endpoint_pb2.CreateEndpointRequest(
                url=receiver.url_for("127.0.0.1", "/hook"), events=["message.delivered"]
            ),
            metadata=auth,
        )
        published = await events.PublishEvent(
            event_pb2.PublishEventRequest(
                type="message.delivered", workspace_id="__org__", data=b'{"message_id":"m1"}'
            ),
            metadata=auth,
        )
        (request,) = await receiver.wait_for_requests(1, timeout=60)
        assert request.header("webhook-id") == published.event.id
    assert (cwd / ".hookline" / "temporal.db").exists()
    assert (cwd / ".hookline" / "hookline.db").exists()
