"""The benchmark's scenarios. Each is bounded in count and time and cleans up its processes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import procstat
from bench.common import free_port, latency_summary_ms, percentile, sustained_rate
from bench.hookline_ctl import (
    Deployment,
    HooklineApi,
    PublishRun,
    dev_server_command,
    start_dev,
    start_split,
    start_worker,
)
from bench.procs import PYTHON, Child, ReceiverClient, child_env

CELERY_BROKER = "redis://127.0.0.1:6379/13"


@dataclass(frozen=True)
class Sizes:
    """Counts and limits of one run (full or quick)."""

    bare_count: int
    celery_count: int
    floor_count: int
    hookline_f1_events: int
    hookline_f10_events: int
    latency_rate: float
    latency_seconds: float
    # Hookline also at a light load, where nothing queues: the path's own latency.
    light_latency_rate: float
    # PublishEvent alone (no endpoint subscribed): closed loop with publish_callers, then open loop.
    ingest_events: int
    ingest_offered_per_s: float
    ingest_offered_seconds: float
    publish_callers: int
    matching_endpoints: int
    matching_iterations: int
    crash_hookline_events: int
    crash_celery_tasks: int
    backoff_deliveries: int
    crash_kills: int
    celery_visibility_s: int
    scenario_limit_s: float
    backoff_limit_s: float
    fresh_hookline_per_scenario: bool

    @property
    def latency_count(self) -> int:
        return int(self.latency_rate * self.latency_seconds)


FULL = Sizes(
    bare_count=20_000,
    celery_count=5_000,
    floor_count=2_000,
    hookline_f1_events=2_000,
    hookline_f10_events=400,
    latency_rate=50.0,
    latency_seconds=30.0,
    light_latency_rate=10.0,
    ingest_events=5_000,
    ingest_offered_per_s=1_000.0,
    ingest_offered_seconds=5.0,
    publish_callers=64,
    matching_endpoints=10_000,
    matching_iterations=200,
    crash_hookline_events=1_000,
    crash_celery_tasks=3_000,
    backoff_deliveries=10_000,
    crash_kills=2,
    celery_visibility_s=10,
    scenario_limit_s=170.0,
    backoff_limit_s=330.0,
    fresh_hookline_per_scenario=True,
)
QUICK = Sizes(
    bare_count=300,
    celery_count=100,
    floor_count=30,
    hookline_f1_events=40,
    hookline_f10_events=5,
    latency_rate=50.0,
    latency_seconds=1.0,
    light_latency_rate=10.0,
    ingest_events=100,
    ingest_offered_per_s=100.0,
    ingest_offered_seconds=1.0,
    publish_callers=16,
    matching_endpoints=500,
    matching_iterations=10,
    crash_hookline_events=40,
    crash_celery_tasks=100,
    backoff_deliveries=50,
    crash_kills=1,
    celery_visibility_s=3,
    scenario_limit_s=60.0,
    backoff_limit_s=60.0,
    fresh_hookline_per_scenario=False,
)


@dataclass
class Ctx:
    sizes: Sizes
    receiver: ReceiverClient
    receiver_pid: int
    work: Path
    logs: Path
    registry: list[Child]
    log: Callable[[str], None]
    profile_dir: Path | None = None

    def deadline(self) -> float:
        return time.monotonic() + self.sizes.scenario_limit_s


# ---------------------------------------------------------------------------------------------
# Measuring


@contextlib.asynccontextmanager
async def metered(pids: dict[str, int]) -> AsyncIterator[procstat.Meter]:
    """A Meter that samples every half second while the block runs."""
    meter = procstat.Meter(pids)
    meter.start()

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.5)
            meter.sample()

    task = asyncio.create_task(tick())
    try:
        yield meter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def per_delivery_ms(cpu_s: dict[str, float], deliveries: int) -> dict[str, float]:
    if deliveries <= 0:
        return {name: math.nan for name in [*cpu_s, "total"]}
    out = {name: 1000 * seconds / deliveries for name, seconds in cpu_s.items()}
    out["total"] = sum(out.values())
    return out


def receipts(records: Sequence[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    """First receipt time by (webhook-id, path)."""
    first: dict[tuple[str, str], float] = {}
    for webhook_id, path, when in records:
        key = (webhook_id, path)
        if key not in first:
            first[key] = when
    return first


def throughput_result(
    *,
    expected: int,
    records: Sequence[tuple[str, str, float]],
    first_send: float,
    cpu_s: dict[str, float],
    peak_rss_mb: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    first = receipts(records)
    times = list(first.values())
    delivered = len(first)
    elapsed = (max(times) - first_send) if times else math.nan
    return {
        "expected": expected,
        "delivered": delivered,
        "duplicates": len(records) - delivered,
        "elapsed_s": elapsed,
        "deliveries_per_s": sustained_rate(times),
        "overall_per_s": delivered / elapsed if times and elapsed > 0 else math.nan,
        "cpu_s": cpu_s,
        "cpu_ms_per_delivery": per_delivery_ms(cpu_s, delivered),
        "peak_rss_mb": peak_rss_mb,
        **(extra or {}),
    }


def latencies(sent: dict[str, float], records: Sequence[tuple[str, str, float]]) -> list[float]:
    first = receipts(records)
    return [when - sent[key[0]] for key, when in first.items() if key[0] in sent]


# ---------------------------------------------------------------------------------------------
# 1. The physical limit: a bare signed-POST loop


async def bare(ctx: Ctx, *, count: int, rate: float | None) -> dict[str, Any]:
    args = [PYTHON, "-m", "bench.bare", "--url", ctx.receiver.url("/bare"), "--count", str(count)]
    if rate is not None:
        args += ["--rate", str(rate)]
    child = await Child.start("bare", args, log=ctx.logs / "bare.log", pipe=True)
    ctx.registry.append(child)
    try:
        await child.wait_ready()
        await ctx.receiver.reset()
        async with metered({"receiver": ctx.receiver_pid}) as meter:
            child.go()
            result = await child.result(timeout=ctx.sizes.scenario_limit_s)
            await ctx.receiver.wait_for(count, ctx.deadline())
            cpu_s, peak = meter.stop()
    finally:
        await child.stop()
    records = await ctx.receiver.dump()
    cpu_s["bare-loop"] = float(result["cpu_s"])
    peak["bare-loop"] = float(result["peak_rss_mb"])
    sent: dict[str, float] = result["sent"]
    if rate is not None:
        return {
            "offered_per_s": rate,
            **latency_summary_ms(latencies(sent, records)),
            "errors": result["errors"],
        }
    return throughput_result(
        expected=count,
        records=records,
        first_send=float(result["started"]),
        cpu_s=cpu_s,
        peak_rss_mb=peak,
        extra={"errors": result["errors"], "concurrency": 64},
    )


# ---------------------------------------------------------------------------------------------
# 2. The peer: Celery + Redis


def reset_broker() -> None:
    """Empty the queue and kombu's unacked bookkeeping in db 13, keeping the exchange bindings.

    FLUSHDB would also drop `_kombu.binding.celery`; a publisher that declared the queue before
    (kombu caches that per process) would then publish into an exchange without bindings, and
    kombu's Redis transport drops such messages silently until a worker declares the queue again.
    """
    client = redis.Redis.from_url(CELERY_BROKER)
    try:
        client.delete("celery", "unacked", "unacked_index", "unacked_mutex")
    finally:
        client.close()


async def start_celery(ctx: Ctx, *, acks_late: bool = True, tag: str = "") -> Child:
    """A fresh Celery worker (prefork, concurrency 2, prefetch 4) on an emptied Redis db 13."""
    env = child_env(
        {
            "BENCH_CELERY_BROKER": CELERY_BROKER,
            "BENCH_CELERY_ACKS_LATE": "1" if acks_late else "0",
            "BENCH_CELERY_VISIBILITY": str(ctx.sizes.celery_visibility_s),
        }
    )
    child = await Child.start(
        "celery-worker",
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--prefetch-multiplier",
            "4",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"bench-{uuid.uuid4().hex[:6]}@%h",
        ],
        log=ctx.logs / f"celery-worker{tag}.log",
        env=env,
    )
    ctx.registry.append(child)
    return child


def celery_publish(url: str, ids: Sequence[str], rate: float | None) -> dict[str, float]:
    """Publish one task per id (in a thread: Celery's client is synchronous); send times by id."""
    from bench.celery_app import deliver

    sent: dict[str, float] = {}
    t0 = time.monotonic()
    for n, task_id in enumerate(ids):
        if rate is not None:
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent[task_id] = time.time()
        deliver.apply_async(args=[url], task_id=task_id)
    return sent


async def celery_warm(ctx: Ctx, url: str) -> None:
    """One task through, so the worker is consuming before the clock starts. The task is sent
    again every 5 s: one published before a fresh worker has declared its queue can be dropped
    (a full run once waited 60 s for a single warm-up task that never came)."""
    await ctx.receiver.reset()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await asyncio.to_thread(celery_publish, url, [f"warm_{uuid.uuid4().hex}"], None)
        if await ctx.receiver.wait_for(1, min(deadline, time.monotonic() + 5)) >= 1:
            await ctx.receiver.reset()
            return
    raise RuntimeError("the Celery worker did not deliver a warm-up task in 60 s")


def celery_pids(worker: Child) -> dict[str, int]:
    pids = {"celery-parent": worker.pid}
    for n, pid in enumerate(sorted(procstat.descendants(worker.pid))):
        pids[f"celery-child-{n + 1}"] = pid
    redis_pid = procstat.find_pid("redis-server")
    if redis_pid is not None:
        pids["redis-server"] = redis_pid
    return pids


def fold_children(values: dict[str, float], *, total: bool) -> dict[str, float]:
    """celery-child-N → celery-children (sum for CPU, max for RSS)."""
    out: dict[str, float] = {}
    kids = [v for k, v in values.items() if k.startswith("celery-child-")]
    for key, value in values.items():
        if not key.startswith("celery-child-"):
            out[key] = value
    if kids:
        out["celery-children"] = sum(kids) if total else max(kids)
    return out


async def celery(ctx: Ctx, *, count: int, latency_count: int, rate: float) -> dict[str, Any]:
    """Throughput (everything published at once), then latency at a fixed rate, one worker."""
    await asyncio.to_thread(reset_broker)
    url = ctx.receiver.url("/celery")
    worker = await start_celery(ctx)
    try:
        await celery_warm(ctx, url)
        ids = [f"tsk_{uuid.uuid4().hex}" for _ in range(count)]
        async with metered({"receiver": ctx.receiver_pid, **celery_pids(worker)}) as meter:
            started = time.time()
            await asyncio.to_thread(celery_publish, url, ids, None)
            published = time.time()
            await ctx.receiver.wait_for(count, ctx.deadline())
            cpu_s, peak = meter.stop()
        records = await ctx.receiver.dump()
        await ctx.receiver.reset()
        lat_ids = [f"tsk_{uuid.uuid4().hex}" for _ in range(latency_count)]
        sent = await asyncio.to_thread(celery_publish, url, lat_ids, rate)
        await ctx.receiver.wait_for(latency_count, ctx.deadline())
        lat_records = await ctx.receiver.dump()
    finally:
        await worker.stop()
    throughput = throughput_result(
        expected=count,
        records=records,
        first_send=started,
        cpu_s=fold_children(cpu_s, total=True),
        peak_rss_mb=fold_children(peak, total=False),
        extra={
            "publish_per_s": count / (published - started),
            "config": "prefork, concurrency 2, prefetch 4, acks_late, reject_on_worker_lost",
        },
    )
    latency = {"offered_per_s": rate, **latency_summary_ms(latencies(sent, lat_records))}
    return {"throughput": throughput, "latency": latency}


# ---------------------------------------------------------------------------------------------
# 3. The Temporal floor


async def temporal_floor(
    ctx: Ctx, *, count: int, latency_count: int, rate: float
) -> dict[str, Any]:
    """Throughput (everything offered at once), then latency at a fixed rate, on one dev server."""
    data = ctx.work / f"floor-{uuid.uuid4().hex[:6]}"
    port = free_port()
    server = await Child.start(
        "temporal-floor", dev_server_command(data, port), log=ctx.logs / "temporal-floor.log"
    )
    ctx.registry.append(server)

    async def phase(
        n: int, rate: float | None
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
        args = [PYTHON, "-m", "bench.temporal_floor", "--target", f"127.0.0.1:{port}"]
        args += ["--count", str(n), "--limit", str(ctx.sizes.scenario_limit_s)]
        if rate is not None:
            args += ["--rate", str(rate)]
        floor = await _start_floor_when_server_up(ctx, args, server)
        async with metered({"temporal": server.pid}) as meter:
            floor.go()
            result = await floor.result(timeout=ctx.sizes.scenario_limit_s + 30)
            cpu_s, peak = meter.stop()
        return result, cpu_s, peak

    try:
        result, cpu_s, peak = await phase(count, None)
        lat_result, _, _ = await phase(latency_count, rate)
    finally:
        await server.stop()
    started = {int(k): float(v) for k, v in result["started"].items()}
    done = {int(k): float(v) for k, v in result["done"].items()}
    cpu_s["floor-worker"] = float(result["cpu_s"])
    peak["floor-worker"] = float(result["peak_rss_mb"])
    records = [(str(n), "", t) for n, t in done.items()]
    throughput = throughput_result(
        expected=count,
        records=records,
        first_send=min(started.values()) if started else math.nan,
        cpu_s=cpu_s,
        peak_rss_mb=peak,
        extra={
            "history_events": result["history_events"],
            "all_closed": bool(result["closed"]),
            "errors": result["errors"],
            "config": "start_workflow (32 in flight), sandboxed workflow, regular activity",
        },
    )
    lat_started = {int(k): float(v) for k, v in lat_result["started"].items()}
    lat_done = {int(k): float(v) for k, v in lat_result["done"].items()}
    lat = [lat_done[n] - lat_started[n] for n in lat_done if n in lat_started]
    latency = {
        "offered_per_s": rate,
        **latency_summary_ms(lat),
        "note": "start_workflow call to the activity's run",
    }
    return {"throughput": throughput, "latency": latency}


async def _start_floor_when_server_up(ctx: Ctx, args: list[str], server: Child) -> Child:
    """The floor process connects as soon as the dev server answers (retrying while it boots)."""
    deadline = time.monotonic() + 60
    while True:
        floor = await Child.start("floor", args, log=ctx.logs / "floor.log", pipe=True)
        ctx.registry.append(floor)
        try:
            await floor.wait_ready(timeout=30)
            return floor
        except RuntimeError:
            await floor.stop()
            if not server.alive or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# 4. Hookline end to end


async def endpoints_for(
    api: HooklineApi, ctx: Ctx, event_type: str, fanout: int, tag: str
) -> list[str]:
    return [
        await api.create_endpoint(ctx.receiver.url(f"/h/{tag}/{n}"), [event_type])
        for n in range(fanout)
    ]


async def hookline_warm(api: HooklineApi, ctx: Ctx, dep: Deployment, event_type: str) -> None:
    """One event through each endpoint of the type, then a clean slate."""
    await ctx.receiver.reset()
    await api.publish(event_type)
    await ctx.receiver.wait_for(1, time.monotonic() + 60)
    await dep.wait_idle(time.monotonic() + 30, event_type)
    await ctx.receiver.reset()


class Backlog:
    """Samples accepted-minus-delivered while a burst runs."""

    def __init__(self) -> None:
        self.peak = 0

    def observe(self, accepted: int, delivered: int) -> None:
        self.peak = max(self.peak, accepted - delivered)


async def hookline_throughput(
    ctx: Ctx, dep: Deployment, api: HooklineApi, *, fanout: int, events: int
) -> dict[str, Any]:
    """Publish `events` with many concurrent callers (a burst above capacity), wait for drain."""
    event_type = "message.delivered" if fanout == 1 else "message.sent"
    await endpoints_for(api, ctx, event_type, fanout, f"f{fanout}")
    await hookline_warm(api, ctx, dep, event_type)
    expected = events * fanout
    backlog = Backlog()
    profiler: Child | None = None
    async with metered({"receiver": ctx.receiver_pid, **dep.processes}) as meter:
        if ctx.profile_dir is not None and fanout == 1:
            profiler = await start_profiler(ctx, dep.processes["hookline"])
        run = PublishRun()
        run_task = asyncio.create_task(
            api.publish_many(event_type, events, ctx.sizes.publish_callers, run)
        )
        started = time.time()

        def tick(delivered: int) -> None:
            backlog.observe(len(run.events) * fanout, delivered)

        while not run_task.done():
            tick((await ctx.receiver.stats())["distinct"])
            await asyncio.sleep(0.25)
        await run_task
        accepted_at = time.time()
        delivered_now = (await ctx.receiver.stats())["distinct"]
        tick(delivered_now)
        await ctx.receiver.wait_for(expected, ctx.deadline(), on_tick=tick)
        drained_at = time.time()
        idle = await dep.wait_idle(ctx.deadline(), event_type)
        cpu_s, peak = meter.stop()
    if profiler is not None:
        await finish_profiler(ctx, profiler)
    records = await ctx.receiver.dump()
    calls = [e.end - e.start for e in run.events]
    ingest = {
        "callers": ctx.sizes.publish_callers,
        "accepted": len(run.events),
        "errors": run.errors,
        "accepted_per_s": len(run.events) / (run.finished - run.started),
        "p50_ms": percentile(calls, 50) * 1000,
        "p99_ms": percentile(calls, 99) * 1000,
    }
    result = throughput_result(
        expected=expected,
        records=records,
        first_send=started,
        cpu_s=cpu_s,
        peak_rss_mb=peak,
        extra={"fanout": fanout, "events": events, "all_workflows_closed": idle},
    )
    result["ingest"] = ingest
    first = receipts(records)
    result["burst"] = {
        "published": events,
        "accepted": len(run.events),
        "deliveries_expected": expected,
        "delivered_distinct": len(first),
        "dropped": expected - len(first),
        "duplicates": len(records) - len(first),
        "accept_s": accepted_at - started,
        "drain_s": drained_at - accepted_at,
        "backlog_after_accept": len(run.events) * fanout - delivered_now,
        "peak_backlog": backlog.peak,
    }
    return result


async def hookline_ingest(ctx: Ctx, dep: Deployment, api: HooklineApi) -> dict[str, Any]:
    """PublishEvent with no delivery work behind it (no endpoint subscribes to the type): the
    API and the store alone. Closed loop (many callers, as fast as accepted), then open loop at a
    fixed offered rate, where the call latency is not inflated by the callers' own queueing."""
    event_type = "message.failed"
    sizes = ctx.sizes
    await api.publish_many(event_type, 50, 8)  # warm-up
    async with metered(dict(dep.processes)) as meter:
        closed = await api.publish_many(event_type, sizes.ingest_events, sizes.publish_callers)
        cpu_s, _ = meter.stop()
    count = int(sizes.ingest_offered_per_s * sizes.ingest_offered_seconds)
    opened = await api.publish_at_rate(event_type, count, sizes.ingest_offered_per_s)

    def calls(run: PublishRun) -> list[float]:
        return [e.end - e.start for e in run.events]

    return {
        "closed_loop": {
            "callers": sizes.publish_callers,
            "accepted": len(closed.events),
            "errors": closed.errors,
            "error_codes": closed.error_codes,
            "first_error": closed.first_error,
            "accepted_per_s": len(closed.events) / (closed.finished - closed.started),
            **latency_summary_ms(calls(closed)),
            "cpu_ms_per_publish": per_delivery_ms(cpu_s, len(closed.events)),
        },
        "open_loop": {
            "offered_per_s": sizes.ingest_offered_per_s,
            "accepted": len(opened.events),
            "errors": opened.errors,
            "error_codes": opened.error_codes,
            "first_error": opened.first_error,
            "accepted_per_s": len(opened.events) / (opened.finished - opened.started),
            **latency_summary_ms(calls(opened)),
        },
    }


async def hookline_latency(
    ctx: Ctx, dep: Deployment, api: HooklineApi, *, rate: float, count: int
) -> dict[str, Any]:
    event_type = "message.read"
    await endpoints_for(api, ctx, event_type, 1, "lat")
    await hookline_warm(api, ctx, dep, event_type)
    run = await api.publish_at_rate(event_type, count, rate)
    await ctx.receiver.wait_for(len(run.events), ctx.deadline())
    records = await ctx.receiver.dump()
    sent = {e.event_id: e.start for e in run.events}
    await dep.wait_idle(ctx.deadline(), event_type)
    return {
        "offered_per_s": rate,
        **latency_summary_ms(latencies(sent, records)),
        "errors": run.errors,
    }


@contextlib.asynccontextmanager
async def hookline_dev(ctx: Ctx, tag: str) -> AsyncIterator[tuple[Deployment, HooklineApi]]:
    registry: list[Child] = []
    dep: Deployment | None = None
    api: HooklineApi | None = None
    try:
        dep = await start_dev(ctx.work / f"hookline-{tag}", ctx.logs, registry)
        ctx.registry.extend(registry)
        api = HooklineApi(dep.grpc_target, dep.api_key)
        yield dep, api
    finally:
        if api is not None:
            await api.aclose()
        for child in reversed(registry):
            await child.stop()


# ---------------------------------------------------------------------------------------------
# Profiling (optional: py-spy on the hookline dev process during the fan-out-1 run)


async def start_profiler(ctx: Ctx, pid: int) -> Child | None:
    import shutil

    spy = shutil.which("py-spy", path=f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}")
    if spy is None:
        ctx.log("py-spy not found; no profile")
        return None
    assert ctx.profile_dir is not None
    out = ctx.profile_dir / "hookline-f1.collapsed.txt"
    child = await Child.start(
        "py-spy",
        [
            *(spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)),
            *("--rate", "50", "--nonblocking", "--duration", "120"),
        ],
        log=ctx.logs / "py-spy.log",
    )
    ctx.registry.append(child)
    return child


async def finish_profiler(ctx: Ctx, child: Child) -> None:
    import signal

    if child.alive:
        child.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(child.process.wait(), 30)
    await child.stop()


def top_frames(collapsed: Path, limit: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive share of samples per frame, from py-spy's collapsed stacks."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for frame in set(frames[1:]):  # skip the thread/process root
            incl_counts[frame] = incl_counts.get(frame, 0) + n
    if total == 0:
        return {"self": [], "inclusive": []}

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:limit]
        return [(frame, round(100 * n / total, 1)) for frame, n in ranked]

    return {"self": top(self_counts), "inclusive": top(incl_counts)}


# ---------------------------------------------------------------------------------------------
# Matching an event against many endpoints of one tenant


async def matching(ctx: Ctx, *, endpoints: int, iterations: int) -> dict[str, Any]:
    """Time service.ingest.matching_endpoints (and a whole publish) on a store with N endpoints.

    Every endpoint subscribes to one common type and to one of the catalog's other types
    round-robin; 10 more subscribe to a rare type. Measured: matching the rare type (10 of N),
    matching the common type (all N), and `Ingestor.publish` of the rare type (the store half of
    PublishEvent: event + 10 delivery rows in one transaction).
    """
    from service.app import build_core
    from service.auth import create_tenant
    from service.config import Settings
    from service.crypto import SecretBox
    from service.db.models import Endpoint, Subscription
    from service.ids import new_id
    from service.ingest import matching_endpoints

    settings = Settings(
        data_dir=ctx.work / "matching",
        master_keys=SecretBox.generate_spec("bench"),
        grpc_address="127.0.0.1:0",
    )
    core = await build_core(settings)
    try:
        tenant, _ = await create_tenant(core.sessions, "matching")
        common, rare = "message.delivered", "message.recipient_deactivated"
        others = [t.name for t in core.catalog.list() if t.name not in (common, rare)]
        build_started = time.perf_counter()
        rows: list[Any] = []
        for n in range(endpoints + 10):
            kind = rare if n >= endpoints else others[n % len(others)]
            patterns = [kind] if n >= endpoints else [common, kind]
            endpoint = Endpoint(
                id=new_id("ep"),
                tenant_id=tenant.id,
                url=f"https://hooks{n}.example.com/in",
                events=patterns,
                retry_policy={},
            )
            rows.append(endpoint)
            rows.extend(
                Subscription(endpoint_id=endpoint.id, pattern=p, tenant_id=tenant.id)
                for p in patterns
            )
        async with core.sessions() as session, session.begin():
            session.add_all(rows)
        build_s = time.perf_counter() - build_started

        async def time_matching(event_type: str) -> tuple[list[float], int]:
            samples: list[float] = []
            found = 0
            for _ in range(iterations):
                async with core.sessions() as session:
                    t0 = time.perf_counter()
                    found = len(await matching_endpoints(session, tenant.id, event_type, "__org__"))
                    samples.append(time.perf_counter() - t0)
            return samples, found

        rare_s, rare_found = await time_matching(rare)
        common_s, common_found = await time_matching(common)
        publish_s: list[float] = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            await core.ingestor.publish(tenant.id, rare, "__org__", b'{"n":1}', "")
            publish_s.append(time.perf_counter() - t0)
    finally:
        await core.aclose()

    def summary(samples: list[float], found: int) -> dict[str, float]:
        return {
            "matched": float(found),
            "p50_ms": percentile(samples, 50) * 1000,
            "p99_ms": percentile(samples, 99) * 1000,
            "mean_ms": statistics.fmean(samples) * 1000,
        }

    return {
        "endpoints": endpoints + 10,
        "store": "SQLite (WAL), in the bench process",
        "build_s": build_s,
        "match_10_of_n": summary(rare_s, rare_found),
        "match_all_n": summary(common_s, common_found),
        "publish_10_of_n": summary(publish_s, 10),
    }


# ---------------------------------------------------------------------------------------------
# Crash: SIGKILL the workers mid-run, count lost and duplicated deliveries


def loss_and_duplicates(
    expected_ids: set[str], records: Sequence[tuple[str, str, float]]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for webhook_id, _, _ in records:
        if webhook_id in expected_ids:
            counts[webhook_id] = counts.get(webhook_id, 0) + 1
    return {
        "expected": len(expected_ids),
        "delivered": len(counts),
        "lost": len(expected_ids - counts.keys()),
        "duplicates": sum(n - 1 for n in counts.values()),
    }


@contextlib.asynccontextmanager
async def hookline_split(ctx: Ctx) -> AsyncIterator[tuple[Deployment, HooklineApi]]:
    """Temporal dev server + `hookline serve` + `hookline worker`, stopped on exit."""
    registry: list[Child] = []
    dep: Deployment | None = None
    api: HooklineApi | None = None
    try:
        dep = await start_split(ctx.work / "hookline-split", ctx.logs, registry)
        ctx.registry.extend(registry)
        api = HooklineApi(dep.grpc_target, dep.api_key)
        yield dep, api
    finally:
        if api is not None:
            await api.aclose()
        if dep is not None:
            await dep.stop()
        for child in reversed(registry):
            await child.stop()


async def crash_hookline(
    ctx: Ctx, dep: Deployment, api: HooklineApi, *, events: int, kills: int
) -> dict[str, Any]:
    """SIGKILL `hookline worker` at 1/(kills+1), 2/(kills+1)... of the deliveries, restart it at
    once; count lost and duplicated deliveries by webhook-id."""
    await endpoints_for(api, ctx, "message.delivered", 1, "crash")
    await hookline_warm(api, ctx, dep, "message.delivered")
    deadline = ctx.deadline()
    run_task = asyncio.create_task(
        api.publish_many("message.delivered", events, ctx.sizes.publish_callers)
    )
    killed_at: list[int] = []
    worker = next(c for c in reversed(dep.children) if c.name == "hookline-worker")
    for k in range(1, kills + 1):
        await ctx.receiver.wait_for(events * k // (kills + 1), deadline)
        killed_at.append((await ctx.receiver.stats())["distinct"])
        worker.kill_tree()
        await worker.process.wait()
        worker = await start_worker(dep, ctx.registry)
    run = await run_task
    ids = {e.event_id for e in run.events}
    await ctx.receiver.wait_for(len(ids), deadline)
    recovered_at = time.monotonic()
    await dep.wait_idle(deadline, "message.delivered")
    records = await ctx.receiver.dump()
    return {
        **loss_and_duplicates(ids, records),
        "accepted": len(run.events),
        "publish_errors": run.errors,
        "kills": kills,
        "killed_after_deliveries": killed_at,
        "drained_in_time": recovered_at < deadline,
        "how": "SIGKILL of `hookline worker` (worker + dispatcher), restarted at once",
    }


async def crash_celery(ctx: Ctx, *, tasks: int, acks_late: bool, kills: int) -> dict[str, Any]:
    """SIGKILL the whole Celery worker (parent and pool) at 1/(kills+1)... of the deliveries,
    restart it at once; count lost and duplicated deliveries by task id."""
    await asyncio.to_thread(reset_broker)
    url = ctx.receiver.url("/crash-celery")
    worker = await start_celery(ctx, acks_late=acks_late, tag="-crash")
    try:
        await celery_warm(ctx, url)
        ids = [f"tsk_{uuid.uuid4().hex}" for _ in range(tasks)]
        await asyncio.to_thread(celery_publish, url, ids, None)
        deadline = ctx.deadline()
        killed_at: list[int] = []
        for k in range(1, kills + 1):
            await ctx.receiver.wait_for(tasks * k // (kills + 1), deadline)
            killed_at.append((await ctx.receiver.stats())["distinct"])
            worker.kill_tree()
            await worker.process.wait()
            worker = await start_celery(ctx, acks_late=acks_late, tag="-crash")
        # Unacknowledged messages come back after the visibility timeout; what has not arrived
        # some seconds after that is lost for good.
        grace = ctx.sizes.celery_visibility_s + 5
        await ctx.receiver.wait_for(tasks, min(deadline, time.monotonic() + grace))
        records = await ctx.receiver.dump()
    finally:
        await worker.stop()
    visibility = f"visibility_timeout {ctx.sizes.celery_visibility_s} s"
    config = (
        f"acks_late + reject_on_worker_lost, {visibility}"
        if acks_late
        else f"Celery defaults (ack on receipt), {visibility}"
    )
    return {
        **loss_and_duplicates(set(ids), records),
        "kills": kills,
        "killed_after_deliveries": killed_at,
        "config": config,
        "how": "SIGKILL of the Celery worker's parent and pool children, restarted at once",
    }


# ---------------------------------------------------------------------------------------------
# Memory: a worker holding many deliveries waiting on backoff timers


async def backoff_memory(
    ctx: Ctx, dep: Deployment, api: HooklineApi, *, deliveries: int
) -> dict[str, Any]:
    """10 endpoints answering 500 with a 1 h retry delay; publish deliveries/10 events (fan-out
    10) and follow the worker's RSS until every delivery failed its first attempt and waits on its
    timer, or the scenario's time limit."""
    worker_pid = dep.processes["worker"]
    event_type = "call.initiated"
    for n in range(10):
        await api.create_endpoint(
            ctx.receiver.url(f"/fail/{n}"), [event_type], retry_delays_s=[3600]
        )
    await ctx.receiver.reset()
    procstat.reset_peak(worker_pid)
    deadline = ctx.deadline()
    started = time.monotonic()
    run = PublishRun()
    publishing = asyncio.create_task(
        api.publish_many(event_type, max(1, deliveries // 10), ctx.sizes.publish_callers, run)
    )
    samples: list[dict[str, float]] = []
    failed = 0
    try:
        while time.monotonic() < deadline:
            failed = (await ctx.receiver.stats())["failed_distinct"]
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "on_timer": float(failed),
                    "rss_mb": procstat.rss_mb(worker_pid) or math.nan,
                }
            )
            if publishing.done() and failed >= len(run.events) * 10:
                break
            await asyncio.sleep(2.0)
    finally:
        if not publishing.done():
            publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
    reached_s = time.monotonic() - started
    await asyncio.sleep(2)  # let the last workflow tasks settle
    on_timer = (await ctx.receiver.stats())["failed_distinct"]
    running = await dep.running_deliveries(event_type)
    rss = procstat.rss_mb(worker_pid) or math.nan
    peak = procstat.peak_rss_mb(worker_pid) or math.nan
    return {
        "deliveries_target": deliveries,
        "deliveries_published": len(run.events) * 10,
        "deliveries_waiting": on_timer,
        "running_workflows": running,
        "reached_target": on_timer >= deliveries,
        "seconds": reached_s,
        "worker_rss_mb": rss,
        "worker_peak_rss_mb": peak,
        "under_300_mb": bool(peak < 300),
        "rss_mb_per_1000_waiting": _slope_per_1000(samples),
        "samples": samples[:: max(1, len(samples) // 20)],
    }


def _slope_per_1000(samples: list[dict[str, float]]) -> float:
    """Least-squares slope of RSS over deliveries on timers, second half of the samples."""
    half = [s for s in samples[len(samples) // 2 :] if not math.isnan(s["rss_mb"])]
    if len(half) < 2:
        return math.nan
    xs = [s["on_timer"] for s in half]
    ys = [s["rss_mb"] for s in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return math.nan
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
