"""The JSON body a receiver gets; the event's data is spliced in byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def iso_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    *, event_id: str, event_type: str, created_at: datetime, workspace_id: str, data: bytes
) -> bytes:
    """{"id","type","created_at","workspace_id","data"}; data is not re-encoded, so integers of any
    size and the producer's number formatting survive exactly."""
    head = json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": iso_timestamp(created_at),
            "workspace_id": workspace_id,
        },
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"data":' + data + b"}"
