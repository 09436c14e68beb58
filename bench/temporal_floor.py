"""The Temporal floor: one no-op workflow with one no-op activity per delivery, nothing else.

    python -m bench.temporal_floor --target 127.0.0.1:PORT --count N [--concurrency C | --rate R]

Same shape as Hookline's delivery path, minus Hookline: in one process a worker (default sandboxed
runner, regular activity, max_concurrent_activities=200 like Hookline's worker) and a starter that
calls ``client.start_workflow`` (not eager) with at most C starts in flight (Hookline's dispatcher
uses 32), or at a fixed rate R. The activity's run time stands in for "the receiver got it".
Says ``ready``, waits for a line on stdin, runs, waits until every workflow is closed, and prints
one JSON line: start and activity times by workflow number, its own CPU seconds and peak RSS over
the window, and the history length of a few finished workflows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import emit, self_cpu_seconds, self_peak_rss_mb, wait_for_go
from bench.floor_workflow import NOOP_ACTIVITY, NoopWorkflow

DONE: dict[int, float] = {}


@activity.defn(name=NOOP_ACTIVITY)
async def noop(n: int) -> None:
    DONE[n] = time.time()


async def wait_closed(client: Client, query: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        count = await client.count_workflows(query)
        if count.count == 0:
            return True
        await asyncio.sleep(0.25)
    return False


async def run(target: str, count: int, concurrency: int, rate: float | None, limit: float) -> None:
    client = await Client.connect(target)
    task_queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
    prefix = f"floor-{uuid.uuid4().hex[:8]}"
    started: dict[int, float] = {}
    errors = 0
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NoopWorkflow],
        activities=[noop],
        max_concurrent_activities=200,
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        await asyncio.to_thread(wait_for_go)
        deadline = time.monotonic() + limit
        cpu0 = self_cpu_seconds()
        slots = asyncio.Semaphore(concurrency)

        async def start(n: int) -> None:
            nonlocal errors
            async with slots:
                started[n] = time.time()
                try:
                    await client.start_workflow(
                        NoopWorkflow.run, n, id=f"{prefix}-{n}", task_queue=task_queue
                    )
                except Exception:
                    errors += 1

        if rate is None:
            await asyncio.gather(*(start(n) for n in range(count)))
        else:
            tasks: list[asyncio.Task[None]] = []
            t0 = time.monotonic()
            for n in range(count):
                delay = t0 + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(start(n)))
            await asyncio.gather(*tasks)
        while True:
            if len(DONE) >= count - errors or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        all_done = time.time()
        closed = await wait_closed(
            client,
            f"TaskQueue='{task_queue}' AND ExecutionStatus='Running'",
            deadline,
        )
        cpu = self_cpu_seconds() - cpu0
        history: list[int] = []
        for n in range(min(5, count)):
            events = (await client.get_workflow_handle(f"{prefix}-{n}").fetch_history()).events
            history.append(len(events))
    emit(
        {
            "started": started,
            "done": DONE,
            "errors": errors,
            "all_done": all_done,
            "closed": closed,
            "cpu_s": cpu,
            "peak_rss_mb": self_peak_rss_mb(),
            "history_events": history,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--limit", type=float, default=170.0)
    args = parser.parse_args()
    asyncio.run(run(args.target, args.count, args.concurrency, args.rate, args.limit))


if __name__ == "__main__":
    main()
