"""Small helpers shared by the benchmark's processes."""

from __future__ import annotations

import json
import math
import resource
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from activities.envelope import envelope
from activities.signing import webhook_headers

# The bare loop and the Celery task sign with this fixed key, as Hookline signs with the endpoint's.
BENCH_KEY = b"hookline-bench-signing-key-32-by"
EVENT_TYPE = "message.delivered"
DATA = b'{"message_id":"m_0000000000","status":"delivered","to":"+15550000000"}'


def signed_request(msg_id: str) -> tuple[bytes, dict[str, str]]:
    """The same envelope and Standard Webhooks headers that Hookline's attempt sends."""
    body = envelope(
        event_id=msg_id,
        event_type=EVENT_TYPE,
        created_at=datetime.now(UTC),
        workspace_id="__org__",
        data=DATA,
    )
    headers = webhook_headers(
        keys=[BENCH_KEY],
        msg_id=msg_id,
        timestamp=int(time.time()),
        body=body,
        vendor_header="X-Hookline-Signature",
    )
    return body, headers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    return {
        "count": float(len(latencies_s)),
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p90_ms": percentile(latencies_s, 90) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "max_ms": (max(latencies_s) * 1000) if latencies_s else math.nan,
    }


def sustained_rate(receipt_times: Sequence[float]) -> float:
    """Deliveries per second between the 10th and 90th percentile receipt (the steady middle)."""
    if len(receipt_times) < 10:
        if len(receipt_times) < 2:
            return math.nan
        span = max(receipt_times) - min(receipt_times)
        return (len(receipt_times) - 1) / span if span > 0 else math.nan
    ordered = sorted(receipt_times)
    lo = int(len(ordered) * 0.1)
    hi = int(len(ordered) * 0.9)
    span = ordered[hi] - ordered[lo]
    return (hi - lo) / span if span > 0 else math.nan


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_go() -> None:
    """Handshake with the runner: say ready, wait for a line on stdin."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()


def emit(result: dict[str, Any]) -> None:
    """The child's result: one JSON line, last on stdout."""
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()
