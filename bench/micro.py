"""Micro-benchmarks behind bench/README.md's profile notes: CPU per POST and per attempt store work.

    .venv/bin/python -m bench.micro --out bench/results/micro.json

* POST: Hookline's DeliveryHttpClient against a bare aiohttp session, 32 in flight, to an aiohttp
  server in the same process (so the CPU includes the server's share, equal for both).
* Store: an attempt's load (delivery + event + endpoint) and record (attempt upsert + delivery
  update), one at a time and 500 at once (where the Batcher shares one query / one transaction), on
  a fresh SQLite store.

CPU is process time (all threads) per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlmodel import select

from activities.delivery import DeliveryActivities, DeliverySettings
from activities.http_client import AttemptResult, DeliveryHttpClient, ErrorClass
from bench.common import free_port
from service.app import build_core
from service.auth import create_tenant
from service.config import Settings
from service.db.models import Delivery
from service.db.types import utcnow
from service.endpoints import EndpointSpec
from service.retry_policy import RetryPolicy
from service.ssrf import NetworkPolicy, StaticResolver
from workflows.types import AttemptInput

Op = Callable[[], Awaitable[object]]


async def cpu_ms_per_op(op: Op, count: int, in_flight: int) -> float:
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            await op()

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(count)))
    return round(1000 * (time.process_time() - started) / count, 3)


async def post_costs(count: int) -> dict[str, float]:
    app = web.Application()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app.router.add_post("/x", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url, body = f"http://127.0.0.1:{port}/x", b"x" * 1024
    headers = {"content-type": "application/json", "webhook-id": "msg_1"}
    policy = NetworkPolicy.from_strings(["127.0.0.0/8"], allow_http=True)
    try:
        async with (
            DeliveryHttpClient(policy=policy, resolver=StaticResolver({})) as client,
            aiohttp.ClientSession() as session,
        ):

            async def hookline() -> None:
                result = await client.post(url, headers=headers, body=body, timeout_seconds=10)
                assert result.status_code == 200, result

            async def bare() -> None:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()

            await cpu_ms_per_op(hookline, 200, 32)  # warm both pools
            await cpu_ms_per_op(bare, 200, 32)
            return {
                "hookline_client_ms": await cpu_ms_per_op(hookline, count, 32),
                "bare_aiohttp_session_ms": await cpu_ms_per_op(bare, count, 32),
            }
    finally:
        await runner.cleanup()


async def store_costs(count: int) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="hookline-micro-"))
    core = await build_core(Settings(data_dir=data_dir))
    try:
        tenant, _ = await create_tenant(core.sessions, "micro")
        spec = EndpointSpec(
            url="https://hooks.example.com/x",
            events=["message.sent"],
            active=True,
            description="",
            timeout_seconds=10,
            retry_policy=RetryPolicy(max_attempts=5, schedule=(60.0,)),
            workspace_id="",
        )
        await core.endpoints.create(tenant.id, spec, "")
        await asyncio.gather(
            *(
                core.ingestor.publish(tenant.id, "message.sent", "__org__", b"{}", "")
                for _ in range(count)
            )
        )
        async with core.sessions() as session:
            ids = list((await session.exec(select(Delivery.id))).all())
        policy = NetworkPolicy()
        http = DeliveryHttpClient(policy=policy, resolver=StaticResolver({}))
        activities = DeliveryActivities(core.sessions, core.endpoints, http, DeliverySettings())
        row = await activities._loads.submit(ids[0])
        if row is None:
            raise RuntimeError("the published delivery is missing")
        delivery, _, endpoint = row
        result = AttemptResult(
            status_code=200,
            error_class=ErrorClass.NONE,
            error_message="",
            latency_ms=1.0,
            response_excerpt=b"ok",
            response_bytes_read=2,
            truncated=False,
            retry_after=None,
            location=None,
        )
        queue = iter(ids)

        async def load() -> None:
            await activities._loads.submit(next(queue))

        number = iter(range(1, 10 * count))

        async def record() -> None:
            attempt = AttemptInput(delivery_id=delivery.id, number=next(number))
            await activities._record(attempt, delivery, endpoint, utcnow(), result)

        out = {"load_alone_ms": await cpu_ms_per_op(load, count // 2, 1)}
        out["load_500_at_once_ms"] = await cpu_ms_per_op(load, count // 2, 500)
        out["record_alone_ms"] = await cpu_ms_per_op(record, count // 2, 1)
        out["record_500_at_once_ms"] = await cpu_ms_per_op(record, count // 2, 500)
        await http.aclose()
        return out
    finally:
        await core.aclose()


async def run(count: int) -> dict[str, Any]:
    return {"post": await post_costs(count), "store": await store_costs(count)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    text = json.dumps(asyncio.run(run(args.count)), indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
