"""Rows to API messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from hookline.v1 import endpoint_pb2, event_pb2, event_type_pb2
from service import retry_policy
from service.catalog import EventTypeInfo
from service.db.models import Endpoint, Event


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def endpoint(row: Endpoint) -> endpoint_pb2.Endpoint:
    return endpoint_pb2.Endpoint(
        id=row.id,
        url=row.url,
        events=row.events,
        active=row.active,
        description=row.description,
        timeout_seconds=row.timeout_seconds,
        retry_policy=retry_policy.to_proto(retry_policy.RetryPolicy.from_json(row.retry_policy)),
        workspace_id=row.workspace_id,
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        secret_hint=row.secret_hint,
        disabled_reason=row.disabled_reason,
    )


def event(row: Event) -> event_pb2.Event:
    return event_pb2.Event(
        id=row.id,
        type=row.type,
        workspace_id=row.workspace_id,
        data=row.data,
        create_time=timestamp(row.created_at),
        idempotency_key=row.idempotency_key or "",
    )


def event_type(info: EventTypeInfo) -> event_type_pb2.EventType:
    return event_type_pb2.EventType(
        name=info.name,
        group=info.group,
        description=info.description,
        deprecated=info.deprecated,
        replaced_by=info.replaced_by,
    )
