"""The Markdown view of a result JSON."""

from __future__ import annotations

from typing import Any

SYSTEMS = [
    ("bare", "1. bare signed-POST loop (aiohttp)"),
    ("celery", "2. Celery + Redis"),
    ("temporal_floor", "3. Temporal floor (no-op workflow + activity)"),
    ("hookline_f1", "4. Hookline, fan-out 1"),
    ("hookline_f10", "4. Hookline, fan-out 10"),
]


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _get(section: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(section, dict):
            return None
        section = section.get(key)
    return section


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _per_process(values: Any, digits: int = 2) -> str:
    if not isinstance(values, dict):
        return "n/a"
    return ", ".join(f"{k} {_f(v, digits)}" for k, v in values.items() if k != "total")


def markdown(results: dict[str, Any]) -> str:
    thr = results.get("throughput", {})
    lat = results.get("latency", {})
    meta = results.get("meta", {})
    machine = meta.get("machine", {})
    out: list[str] = [
        f"# Hookline benchmark ({_get(meta, 'config', 'mode')} run, {meta.get('started', '')})",
        "",
        f"Machine: {machine.get('nproc')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}, "
        f"commit {str(machine.get('hookline_commit', ''))[:10]}"
        f"{' (dirty tree)' if machine.get('hookline_tree_dirty') else ''}. "
        f"Wall time {_get(meta, 'wall_s')} s. Everything ran on this machine at once.",
        "",
        f"CPU speed probe (a 10-million-step Python loop, best of 3): "
        f"{_get(machine, 'python_loop_10m_s_at_start')} s at the start, "
        f"{_get(machine, 'python_loop_10m_s_at_end')} s at the end. The Temporal floor ran at "
        f"{_f(_get(machine, 'floor_vs_perf_notes'), 2)} times the 43/s that shared/perf-notes.md "
        "measured for it, which scales every absolute figure here against those notes.",
        "",
        "## Delivery",
        "",
    ]
    hist = results.get("history_events", {})
    rows = []
    for key, label in SYSTEMS:
        t = thr.get(key, {})
        latency = lat.get("hookline_f1" if key == "hookline_f10" else key, {})
        same_latency = key != "hookline_f10"
        history = None
        if key == "temporal_floor":
            history = _get(hist, "temporal_floor", "per_successful_delivery")
        elif key == "hookline_f1":
            history = _get(hist, "hookline", "per_successful_delivery")
        rows.append(
            [
                label,
                _f(_get(t, "deliveries_per_s")),
                f"{_f(_get(t, 'delivered'))}/{_f(_get(t, 'expected'))}",
                _f(_get(latency, "p50_ms")) if same_latency else "",
                _f(_get(latency, "p90_ms")) if same_latency else "",
                _f(_get(latency, "p99_ms")) if same_latency else "",
                _f(_get(t, "cpu_ms_per_delivery", "total"), 2),
                _per_process(_get(t, "cpu_ms_per_delivery")),
                _per_process(_get(t, "peak_rss_mb"), 0),
                _f(history),
            ]
        )
    out += _table(
        [
            "system",
            "deliveries/s",
            "delivered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "CPU ms/delivery",
            "CPU ms/delivery by process",
            "peak RSS MB by process",
            "history events/delivery",
        ],
        rows,
    )
    out += [
        "",
        f"Latency: publish (or send, or start) to receipt at a fixed offered load of "
        f"{_f(_get(lat, 'hookline_f1', 'offered_per_s'))} events/s, fan-out 1 "
        "(the floor: start to the activity's run). Deliveries/s: the steady middle (10th to "
        "90th percentile receipt) of a run offered everything at once.",
        "",
        f"Hookline at a light load ({_f(_get(lat, 'hookline_f1_light', 'offered_per_s'))} "
        f"events/s, where nothing queues): p50 {_f(_get(lat, 'hookline_f1_light', 'p50_ms'))} ms, "
        f"p90 {_f(_get(lat, 'hookline_f1_light', 'p90_ms'))} ms, "
        f"p99 {_f(_get(lat, 'hookline_f1_light', 'p99_ms'))} ms.",
        "",
        "## Ratios (Hookline ÷ baseline)",
        "",
    ]
    ratio_rows = []
    for key, r in results.get("ratios", {}).items():
        ratio_rows.append(
            [
                key,
                _f(_get(r, "deliveries_per_s"), 3),
                _f(_get(r, "cpu_ms_per_delivery"), 2),
                _f(_get(r, "latency_p50"), 2),
                _f(_get(r, "latency_p99"), 2),
                _f(_get(r, "history_events"), 2),
            ]
        )
    out += _table(
        ["Hookline / baseline", "deliveries/s", "CPU/delivery", "p50", "p99", "history"],
        ratio_rows,
    )
    ingest = results.get("ingest", {})
    out += ["", "## Ingest (PublishEvent)", ""]
    alone = ingest.get("api_alone", {})
    closed, opened = _get(alone, "closed_loop") or {}, _get(alone, "open_loop") or {}
    out += _table(
        ["run", "callers / offered", "accepted", "accepted/s", "p50 ms", "p99 ms", "errors"],
        [
            [
                "API alone, closed loop",
                f"{_f(closed.get('callers'))} callers",
                *(_f(closed.get(k)) for k in ("accepted", "accepted_per_s", "p50_ms", "p99_ms")),
                _f(closed.get("errors")),
            ],
            [
                "API alone, open loop",
                f"{_f(opened.get('offered_per_s'))}/s offered",
                *(_f(opened.get(k)) for k in ("accepted", "accepted_per_s", "p50_ms", "p99_ms")),
                _f(opened.get("errors")),
            ],
            *(
                [
                    f"{key} burst (delivering at once)",
                    f"{_f(_get(ingest, key, 'callers'))} callers",
                    _f(_get(ingest, key, "accepted")),
                    _f(_get(ingest, key, "accepted_per_s")),
                    _f(_get(ingest, key, "p50_ms")),
                    _f(_get(ingest, key, "p99_ms")),
                    _f(_get(ingest, key, "errors")),
                ]
                for key in ("hookline_f1", "hookline_f10")
            ),
        ],
    )
    out += [
        "",
        "API alone: events of a type no endpoint subscribes to, so no delivery work runs beside "
        f"the API; CPU per publish {_per_process(closed.get('cpu_ms_per_publish'))} ms. "
        "The bursts are the fan-out runs' publishing phase, while the same process delivers.",
    ]
    out += [
        "",
        f"Celery's client publishes {_f(ingest.get('celery_publish_per_s'))} tasks/s "
        "(one thread, apply_async).",
    ]
    burst = results.get("burst", {})
    out += ["", "## Burst above capacity (the fan-out-1 run)", ""]
    out += _table(
        [
            *("published", "accepted", "delivered", "dropped", "duplicates"),
            *("accept s", "drain s", "backlog after accept", "peak backlog"),
        ],
        [
            [
                _f(burst.get(k))
                for k in (
                    "published",
                    "accepted",
                    "delivered_distinct",
                    "dropped",
                    "duplicates",
                    "accept_s",
                    "drain_s",
                    "backlog_after_accept",
                    "peak_backlog",
                )
            ]
        ],
    )
    m = results.get("matching", {})
    out += [
        "",
        f"## Matching an event against {_f(m.get('endpoints'))} endpoints of one tenant",
        "",
    ]
    out += _table(
        ["case", "matched", "p50 ms", "p99 ms", "mean ms"],
        [
            [
                label,
                _f(_get(m, key, "matched")),
                _f(_get(m, key, "p50_ms"), 2),
                _f(_get(m, key, "p99_ms"), 2),
                _f(_get(m, key, "mean_ms"), 2),
            ]
            for key, label in (
                ("match_10_of_n", "matching_endpoints, 10 match"),
                ("match_all_n", "matching_endpoints, all match"),
                ("publish_10_of_n", "Ingestor.publish (store half), 10 match"),
            )
        ],
    )
    crash = results.get("crash", {})
    out += ["", "## Crash: SIGKILL the workers twice mid-run", ""]
    out += _table(
        ["system", "expected", "delivered", "lost", "duplicates", "killed after", "config"],
        [
            [
                key,
                _f(_get(c, "expected")),
                _f(_get(c, "delivered")),
                _f(_get(c, "lost")),
                _f(_get(c, "duplicates")),
                ", ".join(str(v) for v in (_get(c, "killed_after_deliveries") or [])),
                str(_get(c, "config") or _get(c, "how") or ""),
            ]
            for key, c in crash.items()
        ],
    )
    b = results.get("backoff_memory", {})
    out += [
        "",
        "## A worker holding deliveries on backoff timers",
        "",
        "Measured on `hookline dev`: the RSS is its whole process (API, dispatcher, worker).",
        "",
        f"{_f(b.get('deliveries_waiting'))} deliveries waiting on a backoff timer (of "
        f"{_f(b.get('deliveries_target'))} asked; {_f(b.get('running_workflows'))} delivery "
        f"workflows running) after {_f(b.get('seconds'))} s: RSS "
        f"{_f(b.get('worker_rss_mb'))} MB, peak {_f(b.get('worker_peak_rss_mb'))} MB; under "
        f"300 MB: {_f(b.get('under_300_mb'))}. RSS grew "
        f"{_f(b.get('rss_mb_per_1000_waiting'))} MB per 1,000 more waiting (second half of the "
        "run).",
    ]
    profile = results.get("profile")
    if isinstance(profile, dict):
        out += ["", "## py-spy, hookline dev during the fan-out-1 run (top self frames)", ""]
        out += _table(
            ["frame", "% samples"], [[f"`{f}`", _f(p)] for f, p in profile.get("self", [])[:15]]
        )
    errors = results.get("errors") or {}
    if errors:
        out += ["", "## Errors", ""]
        out += [f"- {k}: {v[:300]}" for k, v in errors.items()]
    out.append("")
    return "\n".join(out)
