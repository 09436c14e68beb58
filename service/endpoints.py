"""Endpoint lifecycle: create, update, delete and secret rotation, each emitting its own event."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service import validation
from service.catalog import Catalog
from service.crypto import (
    SecretBox,
    generate_webhook_secret,
    parse_webhook_secret,
    secret_hint,
)
from service.db.engine import SessionFactory
from service.db.models import Endpoint, EndpointSecret, Subscription
from service.db.types import utcnow
from service.errors import Violations, failed_precondition, invalid_field, not_found
from service.ids import is_valid_id, new_id
from service.ingest import Ingestor
from service.pagination import PageRequest
from service.retry_policy import DEFAULT_POLICY, RetryPolicy
from service.ssrf import NetworkPolicy, Resolver
from service.telemetry import METRICS

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)
MAX_PREVIOUS_SECRETS = 10
UPDATABLE_FIELDS = (
    "url",
    "events",
    "active",
    "description",
    "timeout_seconds",
    "retry_policy",
    "workspace_id",
)


@dataclass(frozen=True)
class EndpointSpec:
    """Validated endpoint fields, ready to store."""

    url: str
    events: list[str]
    active: bool
    description: str
    timeout_seconds: int
    retry_policy: RetryPolicy
    workspace_id: str


@dataclass(frozen=True)
class EndpointChange:
    """Only the fields an update names; None means unchanged."""

    url: str | None = None
    events: list[str] | None = None
    active: bool | None = None
    description: str | None = None
    timeout_seconds: int | None = None
    retry_policy: RetryPolicy | None = None
    workspace_id: str | None = None


def secret_aad(secret_id: str) -> bytes:
    return f"endpoint_secret:{secret_id}".encode()


def check_endpoint_id(endpoint_id: str, field: str = "id") -> None:
    if not endpoint_id:
        raise invalid_field(field, "is required")
    if not is_valid_id(endpoint_id, "ep"):
        raise invalid_field(field, 'is not an endpoint id ("ep_" and 32 hex digits)')


# Called after an endpoint is disabled or deleted, with its id; cancels pending deliveries.
EndpointStopped = Callable[[str], None]


class EndpointManager:
    def __init__(
        self,
        sessions: SessionFactory,
        catalog: Catalog,
        box: SecretBox,
        ingestor: Ingestor,
        policy: NetworkPolicy,
        resolver: Resolver,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._box = box
        self._ingestor = ingestor
        self._policy = policy
        self._resolver = resolver
        self._on_stopped: EndpointStopped | None = None

    def set_on_stopped(self, callback: EndpointStopped) -> None:
        self._on_stopped = callback

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def network_policy(self) -> NetworkPolicy:
        return self._policy

    @property
    def resolver(self) -> Resolver:
        return self._resolver

    async def create(self, tenant_id: str, spec: EndpointSpec, secret: str) -> tuple[Endpoint, str]:
        secret = secret or generate_webhook_secret()
        now = utcnow()
        endpoint = Endpoint(
            id=new_id("ep"),
            tenant_id=tenant_id,
            url=spec.url,
            events=spec.events,
            workspace_id=spec.workspace_id,
            active=spec.active,
            description=spec.description,
            timeout_seconds=spec.timeout_seconds,
            retry_policy=spec.retry_policy.to_json(),
            secret_hint=secret_hint(secret),
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(endpoint)
            await session.flush()
            self._add_secret(session, endpoint.id, secret, now)
            self._add_subscriptions(session, endpoint)
            ids = await self._emit(session, endpoint, "webhook_endpoint.created")
        self._ingestor.notify(ids)
        return endpoint, secret

    async def get(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        check_endpoint_id(endpoint_id)
        async with self._sessions() as session:
            return await self._load(session, tenant_id, endpoint_id)

    async def list_page(self, tenant_id: str, page: PageRequest) -> tuple[list[Endpoint], str]:
        """One page ordered by id (time-ordered); returns the rows and the last id if more follow."""
        statement = select(Endpoint).where(
            Endpoint.tenant_id == tenant_id, col(Endpoint.deleted_at).is_(None)
        )
        if page.after:
            statement = statement.where(col(Endpoint.id) > page.after)
        statement = statement.order_by(col(Endpoint.id)).limit(page.size + 1)
        async with self._sessions() as session:
            rows = list((await session.exec(statement)).all())
        more = len(rows) > page.size
        rows = rows[: page.size]
        return rows, rows[-1].id if more and rows else ""

    async def update(self, tenant_id: str, endpoint_id: str, change: EndpointChange) -> Endpoint:
        stopped = False
        async with self._sessions() as session, session.begin():
            endpoint = await self._load(session, tenant_id, endpoint_id, for_update=True)
            if change.url is not None:
                endpoint.url = change.url
            if change.events is not None:
                endpoint.events = change.events
                await session.exec(
                    delete(Subscription).where(col(Subscription.endpoint_id) == endpoint.id)
                )
                self._add_subscriptions(session, endpoint)
            if change.active is not None:
                if change.active and not endpoint.active:
                    endpoint.disabled_reason = ""
                    endpoint.failing_since = None
                stopped = endpoint.active and not change.active
                endpoint.active = change.active
            if change.description is not None:
                endpoint.description = change.description
            if change.timeout_seconds is not None:
                endpoint.timeout_seconds = change.timeout_seconds
            if change.retry_policy is not None:
                endpoint.retry_policy = change.retry_policy.to_json()
            if change.workspace_id is not None:
                endpoint.workspace_id = change.workspace_id
            endpoint.updated_at = utcnow()
            session.add(endpoint)
            ids = await self._emit(session, endpoint, "webhook_endpoint.updated")
        self._ingestor.notify(ids)
        if stopped and self._on_stopped is not None:
            self._on_stopped(endpoint.id)
        return endpoint

    async def disable(self, endpoint_id: str, reason: str) -> bool:
        """Hookline's own disabling (410 Gone, failing too long); True if it was active."""
        async with self._sessions() as session, session.begin():
            ids = await self.disable_in(session, endpoint_id, reason)
        if ids is None:
            return False
        self.after_disable(endpoint_id, ids)
        return True

    async def disable_in(
        self, session: AsyncSession, endpoint_id: str, reason: str
    ) -> list[str] | None:
        """Disable within the caller's transaction; None if it was not active. After the commit,
        call after_disable with the returned delivery ids."""
        endpoint = await session.get(Endpoint, endpoint_id, with_for_update=True)
        if endpoint is None or endpoint.deleted_at is not None or not endpoint.active:
            return None
        endpoint.active = False
        endpoint.disabled_reason = reason[:200]
        endpoint.updated_at = utcnow()
        session.add(endpoint)
        METRICS.endpoints_disabled.add(1, {"reason": reason.split(" ")[0]})
        return await self._emit(session, endpoint, "webhook_endpoint.updated")

    def after_disable(self, endpoint_id: str, delivery_ids: list[str]) -> None:
        self._ingestor.notify(delivery_ids)
        if self._on_stopped is not None:
            self._on_stopped(endpoint_id)

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        check_endpoint_id(endpoint_id)
        async with self._sessions() as session, session.begin():
            endpoint = await self._load(session, tenant_id, endpoint_id, for_update=True)
            now = utcnow()
            endpoint.deleted_at = now
            endpoint.active = False
            endpoint.updated_at = now
            session.add(endpoint)
            await session.exec(
                delete(Subscription).where(col(Subscription.endpoint_id) == endpoint.id)
            )
            await session.exec(
                delete(EndpointSecret).where(col(EndpointSecret.endpoint_id) == endpoint.id)
            )
            ids = await self._emit(session, endpoint, "webhook_endpoint.deleted")
        self._ingestor.notify(ids)
        if self._on_stopped is not None:
            self._on_stopped(endpoint_id)

    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, secret: str, overlap: timedelta
    ) -> tuple[Endpoint, str, datetime]:
        check_endpoint_id(endpoint_id)
        secret = secret or generate_webhook_secret()
        now = utcnow()
        async with self._sessions() as session, session.begin():
            endpoint = await self._load(session, tenant_id, endpoint_id, for_update=True)
            await session.exec(
                delete(EndpointSecret).where(
                    col(EndpointSecret.endpoint_id) == endpoint.id,
                    col(EndpointSecret.expires_at) <= now,
                )
            )
            rows = list(
                (
                    await session.exec(
                        select(EndpointSecret).where(EndpointSecret.endpoint_id == endpoint.id)
                    )
                ).all()
            )
            previous = [r for r in rows if r.expires_at is not None]
            if overlap > timedelta(0) and len(previous) >= MAX_PREVIOUS_SECRETS:
                raise failed_precondition(
                    f"{len(previous)} previous secrets are still in their overlap window; "
                    "wait for one to expire or rotate with a shorter overlap",
                    reason="ROTATION_LIMIT",
                )
            expire_time = now + overlap
            for row in rows:
                if row.expires_at is None:
                    row.expires_at = expire_time
                    session.add(row)
            self._add_secret(session, endpoint.id, secret, now)
            endpoint.secret_hint = secret_hint(secret)
            endpoint.updated_at = now
            session.add(endpoint)
        return endpoint, secret, expire_time

    async def signing_keys(self, endpoint_id: str) -> list[bytes]:
        """Keys that sign a delivery now: the current secret first, then those still overlapping."""
        now = utcnow()
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(EndpointSecret)
                    .where(EndpointSecret.endpoint_id == endpoint_id)
                    .order_by(col(EndpointSecret.created_at).desc())
                )
            ).all()
        live = [r for r in rows if r.expires_at is None or r.expires_at > now]
        return [
            parse_webhook_secret(self._box.decrypt(r.ciphertext, aad=secret_aad(r.id)).decode())
            for r in live
        ]

    def _add_secret(
        self, session: AsyncSession, endpoint_id: str, secret: str, now: datetime
    ) -> None:
        secret_id = new_id("sec")
        ciphertext = self._box.encrypt(secret.encode(), aad=secret_aad(secret_id))
        session.add(
            EndpointSecret(
                id=secret_id, endpoint_id=endpoint_id, ciphertext=ciphertext, created_at=now
            )
        )

    @staticmethod
    def _add_subscriptions(session: AsyncSession, endpoint: Endpoint) -> None:
        session.add_all(
            Subscription(endpoint_id=endpoint.id, pattern=p, tenant_id=endpoint.tenant_id)
            for p in endpoint.events
        )

    @staticmethod
    async def _load(
        session: AsyncSession, tenant_id: str, endpoint_id: str, *, for_update: bool = False
    ) -> Endpoint:
        endpoint = await session.get(Endpoint, endpoint_id, with_for_update=for_update)
        # Another tenant's endpoint is NOT_FOUND, exactly like a missing one.
        if endpoint is None or endpoint.tenant_id != tenant_id or endpoint.deleted_at is not None:
            raise not_found("endpoint", endpoint_id)
        return endpoint

    async def _emit(self, session: AsyncSession, endpoint: Endpoint, event_type: str) -> list[str]:
        data = json.dumps({"endpoint": endpoint_summary(endpoint)}, separators=(",", ":"))
        workspace = endpoint.workspace_id or validation.ORG_WORKSPACE
        _, ids = await self._ingestor.add_event(
            session, endpoint.tenant_id, event_type, workspace, data.encode()
        )
        return ids

    # Validation of API input, shared by create and update.

    async def validate_spec(
        self,
        violations: Violations,
        *,
        url: str,
        events: Sequence[str],
        secret: str,
        active: bool,
        description: str,
        timeout_seconds: int,
        retry_policy: RetryPolicy | None,
        workspace_id: str,
    ) -> EndpointSpec:
        if secret:
            try:
                parse_webhook_secret(secret)
            except ValueError as exc:
                violations.add("secret", str(exc))
        spec = EndpointSpec(
            url=await validation.endpoint_url(url, violations, self._policy, self._resolver),
            events=validation.subscriptions(events, self._catalog, violations),
            active=active,
            description=validation.description(description, violations),
            timeout_seconds=validation.timeout_seconds(timeout_seconds, violations),
            retry_policy=retry_policy or DEFAULT_POLICY,
            workspace_id=validation.workspace_scope(workspace_id, violations),
        )
        return spec


def redact_url(url: str) -> str:
    """The URL without the password of any user:pass@ part."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def endpoint_summary(endpoint: Endpoint) -> dict[str, Any]:
    """What endpoint events carry: no secret, and a URL without credentials."""
    return {
        "id": endpoint.id,
        "url": redact_url(endpoint.url),
        "events": endpoint.events,
        "active": endpoint.active,
        "description": endpoint.description,
        "workspace_id": endpoint.workspace_id,
        "disabled_reason": endpoint.disabled_reason,
    }
