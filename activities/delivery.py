"""The delivery activities: one signed POST per attempt, recorded in the store."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select, update
from temporalio import activity

from activities.envelope import envelope
from activities.http_client import AttemptResult, DeliveryHttpClient, ErrorClass, parse_retry_after
from activities.signing import webhook_headers
from service.batching import Batcher
from service.db.engine import SessionFactory
from service.db.models import Attempt, Delivery, Endpoint, Event
from service.db.types import utcnow
from service.endpoints import EndpointManager
from service.ids import new_id
from service.retry_policy import RetryPolicy
from service.telemetry import METRICS, status_class
from workflows.types import (
    CANCELED,
    FAILED,
    FINAL_STATUSES,
    PENDING,
    SUCCEEDED,
    AttemptInput,
    AttemptOutcome,
    FinishInput,
)

log = logging.getLogger("hookline.delivery")

# Answers that end a delivery at once: the target itself is not allowed, retrying cannot help.
NOT_RETRYABLE = frozenset({ErrorClass.BLOCKED, ErrorClass.INVALID_URL})
# Retry-After is honoured up to this long (or the scheduled delay, when that is longer).
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class DeliverySettings:
    vendor_signature_header: str | None = "X-Hookline-Signature"
    # An endpoint failing this long without a single success is disabled (Svix: 5 days).
    disable_after_failing: timedelta = timedelta(days=5)


def describe(result: AttemptResult) -> str:
    """What the attempt's owner sees: the client's error, or what the HTTP answer meant."""
    if result.error_message:
        return result.error_message
    if result.status_code and 300 <= result.status_code < 400:
        return f"redirect to {result.location or '(no Location)'} not followed"
    if result.status_code and not result.succeeded:
        return f"receiver answered HTTP {result.status_code}"
    return ""


def next_delay(
    policy: RetryPolicy, number: int, result: AttemptResult, now: datetime
) -> float | None:
    scheduled = policy.delay_after(number)
    if scheduled is None:
        return None
    asked = parse_retry_after(result.retry_after, now)
    if asked is None:
        return scheduled
    return max(scheduled, min(asked, MAX_RETRY_AFTER_SECONDS))


DeliveryRow = tuple[Delivery, Event, Endpoint]


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt writes: its row, its delivery's new state, the endpoint's health."""

    attempt: dict[str, Any]
    delivery: dict[str, Any]
    endpoint_id: str
    health: Any
    disable_reason: str | None


ATTEMPT_UPDATED_ON_RERUN = (
    "started_at",
    "latency_ms",
    "status_code",
    "error_class",
    "error_message",
    "response_excerpt",
    "response_bytes",
)


def attempt_values(
    request: AttemptInput, started: datetime, result: AttemptResult, error: str
) -> dict[str, Any]:
    return {
        "id": new_id("att"),
        "delivery_id": request.delivery_id,
        "number": request.number,
        "started_at": started,
        "latency_ms": result.latency_ms,
        "status_code": result.status_code,
        "error_class": error,
        "error_message": describe(result)[:200],
        "response_excerpt": result.response_excerpt,
        "response_bytes": result.response_bytes_read,
    }


@functools.cache
def attempt_upsert(dialect: str) -> Any:
    """An insert that overwrites the row of the same attempt (a rerun after a worker crash)."""
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    statement = insert(Attempt)
    return statement.on_conflict_do_update(
        index_elements=["delivery_id", "number"],
        set_={name: statement.excluded[name] for name in ATTEMPT_UPDATED_ON_RERUN},
    )


HEARTBEAT_EVERY_SECONDS = 2.0
KEY_CACHE_SECONDS = 30.0


class SigningKeyCache:
    """Decrypted signing keys per endpoint. The endpoint row's updated_at is part of the key, so a
    rotation (which touches it) is seen by the very next attempt; expiry of an overlapping old
    secret is seen within KEY_CACHE_SECONDS."""

    def __init__(self, endpoints: EndpointManager) -> None:
        self._endpoints = endpoints
        self._entries: dict[tuple[str, datetime], tuple[list[bytes], float]] = {}

    async def get(self, endpoint: Endpoint) -> list[bytes]:
        key = (endpoint.id, endpoint.updated_at)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        keys = await self._endpoints.signing_keys(endpoint.id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (keys, now + KEY_CACHE_SECONDS)
        return keys


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a POST runs, so a killed worker's attempt is retried within the heartbeat
    timeout instead of the full start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    if activity.info().is_local:  # local activities ride on the workflow task instead
        yield
        return
    task = asyncio.ensure_future(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class DeliveryActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        endpoints: EndpointManager,
        http: DeliveryHttpClient,
        settings: DeliverySettings,
    ) -> None:
        self._sessions = sessions
        self._endpoints = endpoints
        self._http = http
        self._settings = settings
        self._keys = SigningKeyCache(endpoints)
        # Attempts running at the same time share one query to load and one transaction to record.
        self._loads: Batcher[str, DeliveryRow | None] = Batcher(self._load_many, self._load_one)
        self._records: Batcher[AttemptRecord, list[str] | None] = Batcher(
            self._write_records, self._write_record
        )

    @activity.defn(name="attempt_delivery")
    async def attempt(self, request: AttemptInput) -> AttemptOutcome:
        row = await self._loads.submit(request.delivery_id)
        if row is None:
            raise LookupError(f"delivery {request.delivery_id} does not exist")
        delivery, event, endpoint = row
        span = trace.get_current_span()
        span.set_attributes(
            {
                "hookline.tenant_id": delivery.tenant_id,
                "hookline.endpoint_id": delivery.endpoint_id,
                "hookline.event_id": delivery.event_id,
                "hookline.event_type": delivery.event_type,
                "hookline.delivery_id": delivery.id,
                "hookline.attempt": request.number,
            }
        )
        if delivery.status in FINAL_STATUSES and not request.manual:
            return AttemptOutcome(number=request.number, status=delivery.status)
        if not endpoint.active or endpoint.deleted_at is not None:
            await self._set_final(delivery.id, CANCELED)
            return AttemptOutcome(number=request.number, status=CANCELED)

        keys = await self._keys.get(endpoint)
        body = envelope(
            event_id=event.id,
            event_type=event.type,
            created_at=event.created_at,
            workspace_id=event.workspace_id,
            data=event.data,
        )
        headers = webhook_headers(
            keys=keys,
            msg_id=event.id,
            timestamp=int(time.time()),
            body=body,
            vendor_header=self._settings.vendor_signature_header,
        )
        started = utcnow()
        async with heartbeating():
            result = await self._http.post(
                endpoint.url, headers=headers, body=body, timeout_seconds=endpoint.timeout_seconds
            )
        return await self._record(request, delivery, endpoint, started, result)

    async def _record(
        self,
        request: AttemptInput,
        delivery: Delivery,
        endpoint: Endpoint,
        started: datetime,
        result: AttemptResult,
    ) -> AttemptOutcome:
        now = utcnow()
        error = "" if result.succeeded else (result.error_class.value or "http_status")
        delay: float | None = None
        if result.succeeded:
            status = SUCCEEDED
        elif result.status_code == 410 or result.error_class in NOT_RETRYABLE or request.manual:
            status = FAILED
        else:
            delay = next_delay(
                RetryPolicy.from_json(endpoint.retry_policy), request.number, result, now
            )
            status = PENDING if delay is not None else FAILED
        health, failing_too_long = self._track_endpoint_health(endpoint, result, now)
        disable_reason: str | None = None
        if result.status_code == 410:
            disable_reason = "receiver answered 410 Gone"
        elif failing_too_long:
            hours = self._settings.disable_after_failing.total_seconds() / 3600
            disable_reason = f"failing for {hours:g} hours without a success"
        disabled = await self._records.submit(
            AttemptRecord(
                attempt=attempt_values(request, started, result, error),
                delivery={
                    "id": delivery.id,
                    "status": status,
                    "attempt_count": request.number,
                    "last_status_code": result.status_code,
                    "last_error": error,
                    "next_attempt_at": now + timedelta(seconds=delay)
                    if delay is not None
                    else None,
                    "updated_at": now,
                    "completed_at": now if status != PENDING else None,
                },
                endpoint_id=endpoint.id,
                health=health,
                disable_reason=disable_reason,
            )
        )
        if disabled is not None:
            self._endpoints.after_disable(endpoint.id, disabled)
        self._observe(delivery, result, error, status, now)
        activity.logger.info(
            "attempt %s of %s: %s",
            request.number,
            delivery.id,
            result.status_code or error,
        )
        return AttemptOutcome(
            number=request.number,
            status=status,
            status_code=result.status_code or 0,
            error_class=error,
            latency_ms=result.latency_ms,
            next_delay_seconds=delay,
        )

    @staticmethod
    def _observe(
        delivery: Delivery, result: AttemptResult, error: str, status: str, now: datetime
    ) -> None:
        span = trace.get_current_span()
        if result.status_code:
            span.set_attribute("http.response.status_code", result.status_code)
        if error:
            span.set_attribute("error.type", error)
        span.set_attribute("hookline.delivery_status", status)
        kind = status_class(result.status_code, error)
        METRICS.attempts.add(1, {"status_class": kind, "event_type": delivery.event_type})
        METRICS.attempt_duration.record(result.latency_ms / 1000, {"status_class": kind})
        if status != PENDING:
            METRICS.deliveries_completed.add(1, {"outcome": status})
        if status == SUCCEEDED:
            METRICS.time_to_success.record((now - delivery.created_at).total_seconds())

    async def _load_many(self, delivery_ids: Sequence[str]) -> list[DeliveryRow | None]:
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(Delivery, Event, Endpoint)
                    .join(Event, col(Event.id) == col(Delivery.event_id))
                    .join(Endpoint, col(Endpoint.id) == col(Delivery.endpoint_id))
                    .where(col(Delivery.id).in_(set(delivery_ids)))
                )
            ).all()
        by_id = {row[0].id: row for row in rows}
        return [by_id.get(delivery_id) for delivery_id in delivery_ids]

    async def _load_one(self, delivery_id: str) -> DeliveryRow | None:
        return (await self._load_many([delivery_id]))[0]

    async def _write_records(self, records: Sequence[AttemptRecord]) -> list[list[str] | None]:
        """One transaction for a batch of attempts. Disabling an endpoint commits with the attempt
        that caused it, so a worker dying in between cannot leave a 410 endpoint active (the rerun
        would see the delivery final and stop early). Returns the deliveries each disable added."""
        disabled: list[list[str] | None] = []
        async with self._sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            await session.exec(attempt_upsert(dialect), params=[r.attempt for r in records])
            await session.exec(update(Delivery), params=[r.delivery for r in records])
            for record in records:
                if record.health is not None:
                    await session.exec(record.health)
                reason = record.disable_reason
                disabled.append(
                    await self._endpoints.disable_in(session, record.endpoint_id, reason)
                    if reason is not None
                    else None
                )
        return disabled

    async def _write_record(self, record: AttemptRecord) -> list[str] | None:
        return (await self._write_records([record]))[0]

    def _track_endpoint_health(
        self, endpoint: Endpoint, result: AttemptResult, now: datetime
    ) -> tuple[Any, bool]:
        """The statement to run (or None) and whether the endpoint has failed for too long.
        A success clears the failing clock; the first failure after a success starts it."""
        if result.succeeded:
            if endpoint.failing_since is None:
                return None, False
            return (
                update(Endpoint).where(col(Endpoint.id) == endpoint.id).values(failing_since=None),
                False,
            )
        if endpoint.failing_since is None:
            return (
                update(Endpoint)
                .where(col(Endpoint.id) == endpoint.id, col(Endpoint.failing_since).is_(None))
                .values(failing_since=now),
                False,
            )
        return None, now - endpoint.failing_since >= self._settings.disable_after_failing

    @activity.defn(name="finish_delivery")
    async def finish(self, request: FinishInput) -> None:
        await self._set_final(request.delivery_id, request.status)
        METRICS.deliveries_completed.add(1, {"outcome": request.status})

    async def _set_final(self, delivery_id: str, status: str) -> None:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            await session.exec(
                update(Delivery)
                .where(col(Delivery.id) == delivery_id, col(Delivery.status) == PENDING)
                .values(status=status, updated_at=now, completed_at=now, next_attempt_at=None)
            )
