"""One scenario, quickly, for A/B measurements while optimising (the full suite takes 15 minutes).

Runs `hookline dev` with extra HOOKLINE_* settings, then the fan-out-1 burst of the full suite
(`scenarios.hookline_throughput`) and, with --rate, the fixed-load latency first. Prints JSON:
deliveries/s, CPU ms per delivery by process, ingest during the burst, history events.

    .venv/bin/python -m bench.ab --events 1000
    .venv/bin/python -m bench.ab --events 1000 --env HOOKLINE_WORKFLOW_SANDBOX=true
    .venv/bin/python -m bench.ab --events 0 --rate 10 --seconds 15      # latency only
    .venv/bin/python -m bench.ab --events 1000 --profile                  # py-spy, collapsed

Figures from one run move by about 10 % on this kind of machine; compare runs made back to back
and repeat a close call.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import procs, scenarios


def _with_env(settings: dict[str, str]) -> None:
    """Every child this run starts gets `settings` on top of the bench's clean environment."""
    clean = procs.child_env

    def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
        env = clean(extra)
        env.update(settings)
        return env

    procs.child_env = child_env  # Child.start looks it up in procs at call time


async def run(events: int, rate: float, seconds: float, profile: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hookline-ab-"))
    logs = work / "logs"
    logs.mkdir()
    sizes = dataclasses.replace(scenarios.FULL, latency_rate=rate or 50.0, latency_seconds=seconds)
    out: dict[str, Any] = {"work_dir": str(work)}
    async with procs.children() as registry:
        receiver_child, receiver = await procs.start_receiver(logs / "receiver.log")
        registry.append(receiver_child)
        ctx = scenarios.Ctx(
            sizes=sizes,
            receiver=receiver,
            receiver_pid=receiver_child.pid,
            work=work,
            logs=logs,
            registry=registry,
            log=lambda message: print(message, file=sys.stderr),
            profile_dir=work if profile else None,
        )
        try:
            async with scenarios.hookline_dev(ctx, "ab") as (dep, api):
                if rate:
                    out["latency"] = await scenarios.hookline_latency(
                        ctx, dep, api, rate=rate, count=int(rate * seconds)
                    )
                if events:
                    result = await scenarios.hookline_throughput(
                        ctx, dep, api, fanout=1, events=events
                    )
                    out["deliveries_per_s"] = result["deliveries_per_s"]
                    out["cpu_ms_per_delivery"] = result["cpu_ms_per_delivery"]
                    out["ingest"] = result["ingest"]
                    out["history_events"] = await dep.history_events()
        finally:
            await receiver.aclose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="fan-out-1 burst size (0: none)")
    parser.add_argument("--rate", type=float, default=0.0, help="latency at this load first")
    parser.add_argument("--seconds", type=float, default=15.0, help="latency run length")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for hookline dev")
    parser.add_argument("--profile", action="store_true", help="py-spy the hookline process")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    _with_env(dict(item.split("=", 1) for item in args.env))
    result = asyncio.run(run(args.events, args.rate, args.seconds, args.profile))
    text = json.dumps({"env": args.env, **result}, indent=1, default=str)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
