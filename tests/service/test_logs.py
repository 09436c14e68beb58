from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace

from service.logs import JsonFormatter, TraceContextFilter, redact


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw used", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("key hk_v3y4HKT_Box4cMr2TaMiw6GSGS6Kx rejected", "v3y4HKT_Box4cMr2TaMiw6GSGS6Kx"),
        ("posting to https://bob:hunter2@hooks.example.com/x", "hunter2"),
    ],
)
def test_redact_hides_secrets(text: str, hidden: str) -> None:
    assert hidden not in redact(text)


def test_json_lines_carry_trace_ids_and_redact() -> None:
    record = logging.LogRecord(
        "hookline", logging.INFO, __file__, 1, "rotated to %s", ("whsec_abcdefghijkl",), None
    )
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        assert TraceContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "rotated to whsec_[REDACTED]"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"
