"""Rows to API messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf import duration_pb2, timestamp_pb2

from hookline.v1 import delivery_pb2, endpoint_pb2, event_pb2, event_type_pb2
from service import retry_policy
from service.catalog import EventTypeInfo
from service.db.models import Attempt, Delivery, Endpoint, Event
from workflows.types import workflow_id


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


DELIVERY_STATUS = {
    "PENDING": delivery_pb2.DELIVERY_STATUS_PENDING,
    "SUCCEEDED": delivery_pb2.DELIVERY_STATUS_SUCCEEDED,
    "FAILED": delivery_pb2.DELIVERY_STATUS_FAILED,
    "CANCELED": delivery_pb2.DELIVERY_STATUS_CANCELED,
}
STATUS_NAME = {value: key for key, value in DELIVERY_STATUS.items()}


def delivery(row: Delivery, attempts: Sequence[Attempt] = ()) -> delivery_pb2.Delivery:
    message = delivery_pb2.Delivery(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        event_type=row.event_type,
        status=DELIVERY_STATUS[row.status],
        attempt_count=row.attempt_count,
        last_status_code=row.last_status_code or 0,
        last_error=row.last_error,
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        generation=row.generation,
        workflow_id=workflow_id(row.id),
        attempts=[attempt(a) for a in attempts],
    )
    if row.next_attempt_at is not None and row.status == "PENDING":
        message.next_attempt_time.CopyFrom(timestamp(row.next_attempt_at))
    if row.completed_at is not None:
        message.complete_time.CopyFrom(timestamp(row.completed_at))
    return message


def attempt(row: Attempt) -> delivery_pb2.Attempt:
    latency = duration_pb2.Duration()
    latency.FromMilliseconds(round(row.latency_ms))
    return delivery_pb2.Attempt(
        number=row.number,
        start_time=timestamp(row.started_at),
        latency=latency,
        status_code=row.status_code or 0,
        error_class=row.error_class,
        error_message=row.error_message,
        response_excerpt=row.response_excerpt,
        response_bytes=row.response_bytes,
    )
