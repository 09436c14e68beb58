"""Table models. API shapes live in the protos; these are storage only."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, MetaData, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.types import UtcDateTime, utcnow

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    key_hash: str = Field(max_length=64, unique=True)
    hint: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Endpoint(SQLModel, table=True):
    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_tenant_id_id", "tenant_id", "id"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    url: str = Field(max_length=2048)
    events: list[str] = Field(sa_column=Column(JSON, nullable=False))
    workspace_id: str = Field(default="", max_length=64)
    active: bool = True
    description: str = Field(default="", max_length=512)
    timeout_seconds: int = 30
    retry_policy: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    secret_hint: str = Field(default="", max_length=40)
    disabled_reason: str = Field(default="", max_length=200)
    # First failure since the last success; drives automatic disabling.
    failing_since: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class EndpointSecret(SQLModel, table=True):
    """Encrypted signing secrets; the current one has no expiry, rotated-out ones sign until expires_at."""

    __tablename__ = "endpoint_secrets"
    id: str = Field(primary_key=True, max_length=40)
    endpoint_id: str = Field(foreign_key="endpoints.id", index=True, max_length=40)
    ciphertext: str = Field(max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Subscription(SQLModel, table=True):
    """One row per subscribed pattern, so matching an event is an indexed IN lookup."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_tenant_id_pattern", "tenant_id", "pattern"),)
    endpoint_id: str = Field(foreign_key="endpoints.id", primary_key=True, max_length=40)
    pattern: str = Field(primary_key=True, max_length=200)
    tenant_id: str = Field(max_length=40)


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_events_tenant_id_idempotency_key"
        ),
        Index("ix_events_tenant_id_id", "tenant_id", "id"),
    )
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    type: str = Field(max_length=200)
    workspace_id: str = Field(max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        # generation 0 comes from publishing; replays add generation n+1 for the same pair.
        UniqueConstraint(
            "event_id", "endpoint_id", "generation", name="uq_deliveries_event_id_endpoint_id"
        ),
        Index("ix_deliveries_tenant_id_status_id", "tenant_id", "status", "id"),
        Index("ix_deliveries_tenant_id_id", "tenant_id", "id"),
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_deliveries_dispatched_at", "dispatched_at"),
    )
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    event_id: str = Field(foreign_key="events.id", max_length=40)
    endpoint_id: str = Field(foreign_key="endpoints.id", max_length=40)
    event_type: str = Field(max_length=200)
    generation: int = 0
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempt_count: int = 0
    last_status_code: int | None = None
    last_error: str = Field(default="", max_length=200)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # W3C traceparent of the publishing call, so the workflow joins the publisher's trace.
    trace_parent: str = Field(default="", max_length=64)
    # Set once the delivery's workflow has been started; NULL rows are picked up by the dispatcher.
    dispatched_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Attempt(SQLModel, table=True):
    """One HTTP attempt of a delivery. (delivery_id, number) is unique so a rerun activity overwrites."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_attempts_delivery_id_number"),
    )
    id: str = Field(primary_key=True, max_length=40)
    delivery_id: str = Field(foreign_key="deliveries.id", max_length=40)
    number: int
    started_at: datetime = Field(sa_type=UtcDateTime)
    latency_ms: float = 0.0
    status_code: int | None = None
    error_class: str = Field(default="", max_length=40)
    error_message: str = Field(default="", max_length=200)
    response_excerpt: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    response_bytes: int = 0
