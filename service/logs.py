"""Logging: JSON lines in production, readable lines in dev; trace ids on every record; secrets,
API keys and URL passwords redacted whatever the message says."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from opentelemetry import trace

_SECRETS = re.compile(
    r"(?P<keep>whsec_|hk_)[A-Za-z0-9+/=_-]{4,}"  # webhook secrets and API keys
    r"|(?P<scheme>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"  # user:password@ in URLs
)


def redact(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        if match.group("keep"):
            return f"{match.group('keep')}[REDACTED]"
        return f"{match.group('scheme')}***@"

    return _SECRETS.sub(mask, text)


class TraceContextFilter(logging.Filter):
    """Adds trace_id/span_id of the current span and redacts the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = f"{context.trace_id:032x}" if context.is_valid else ""
        record.span_id = f"{context.span_id:016x}" if context.is_valid else ""
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", ""),
            "span_id": getattr(record, "span_id", ""),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s [trace %(trace_id)s]")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
