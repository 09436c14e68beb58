"""The benchmark suite still runs: `python -m bench.run --quick` end to end, every section present.

No timing is asserted: quick counts are too small to mean anything, and CI machines vary. Needs
Redis on 127.0.0.1:6379 (the Celery baseline's broker), like the bench itself.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)

SYSTEMS = ("bare", "celery", "temporal_floor", "hookline_f1", "hookline_f10")


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def redis_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


def test_quick_bench_runs_and_reports_every_section(tmp_path: Path) -> None:
    assert redis_is_up(), "the bench's Celery baseline needs Redis on 127.0.0.1:6379"
    out = tmp_path / "results"
    process = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-6000:]
    results = json.loads((out / "quick.json").read_text())
    assert (out / "quick.md").read_text().startswith("# Hookline benchmark")
    assert results["errors"] == {}

    meta = results["meta"]
    assert number(meta["machine"]["nproc"])
    assert meta["config"]["mode"] == "quick"

    for system in SYSTEMS:
        section = results["throughput"][system]
        assert number(section["deliveries_per_s"]), (system, section)
        assert section["delivered"] == section["expected"], (system, section)
        assert number(section["cpu_ms_per_delivery"]["total"]), (system, section)
        assert section["peak_rss_mb"], system
        assert all(number(v) for v in section["peak_rss_mb"].values()), (system, section)
    for name in ("hookline", "temporal", "receiver"):
        assert name in results["throughput"]["hookline_f1"]["cpu_ms_per_delivery"]

    for system in ("bare", "celery", "temporal_floor", "hookline_f1", "hookline_f1_light"):
        latency = results["latency"][system]
        for key in ("p50_ms", "p90_ms", "p99_ms"):
            assert number(latency[key]), (system, latency)

    for system in ("hookline", "temporal_floor"):
        history = results["history_events"][system]
        assert number(history["per_successful_delivery"]), history

    for run in ("hookline_f1", "hookline_f10"):
        ingest = results["ingest"][run]
        assert number(ingest["accepted_per_s"]), ingest
        assert number(ingest["p99_ms"]), ingest
    assert number(results["ingest"]["celery_publish_per_s"])
    for loop in ("closed_loop", "open_loop"):
        alone = results["ingest"]["api_alone"][loop]
        assert alone["accepted"] > 0 and alone["errors"] == 0, alone
        assert number(alone["accepted_per_s"]) and number(alone["p99_ms"]), alone

    burst = results["burst"]
    for key in ("accepted", "delivered_distinct", "dropped", "duplicates", "drain_s"):
        assert number(burst[key]), burst

    matching = results["matching"]
    for case in ("match_10_of_n", "match_all_n", "publish_10_of_n"):
        assert number(matching[case]["p50_ms"]), matching
        assert number(matching[case]["p99_ms"]), matching
    assert matching["match_10_of_n"]["matched"] == 10

    for system in ("hookline", "celery_acks_late", "celery_defaults"):
        crash = results["crash"][system]
        for key in ("expected", "delivered", "lost", "duplicates"):
            assert number(crash[key]), (system, crash)
        assert crash["killed_after_deliveries"], (system, crash)

    memory = results["backoff_memory"]
    assert number(memory["worker_rss_mb"]), memory
    assert number(memory["deliveries_waiting"]), memory

    for pair, ratios in results["ratios"].items():
        assert number(ratios["deliveries_per_s"]), (pair, ratios)
        assert number(ratios["cpu_ms_per_delivery"]), (pair, ratios)
