"""Tenant authentication by the x-api-key metadata; keys are stored as SHA-256 hashes."""

from __future__ import annotations

import time
from typing import Any

import grpc
from opentelemetry import trace
from sqlmodel import col, select

from service.crypto import api_key_hint, generate_api_key, hash_api_key
from service.db.engine import SessionFactory
from service.db.models import ApiKey, Tenant
from service.errors import unauthenticated
from service.ids import new_id

API_KEY_HEADER = "x-api-key"
# Revoking a key takes effect within this many seconds on every API replica.
CACHE_SECONDS = 30.0


class Authenticator:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[str, float]] = {}

    async def tenant_id(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        keys = [
            value for key, value in (context.invocation_metadata() or ()) if key == API_KEY_HEADER
        ]
        if not keys:
            raise unauthenticated(f"missing {API_KEY_HEADER} metadata")
        if len(keys) > 1 or not isinstance(keys[0], str) or not keys[0]:
            raise unauthenticated(f"exactly one {API_KEY_HEADER} is required")
        tenant_id = await self.tenant_for_key(keys[0])
        trace.get_current_span().set_attribute("hookline.tenant_id", tenant_id)
        return tenant_id

    async def tenant_for_key(self, key: str) -> str:
        digest = hash_api_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(ApiKey).where(
                        ApiKey.key_hash == digest, col(ApiKey.revoked_at).is_(None)
                    )
                )
            ).first()
        if row is None:
            self._cache.pop(digest, None)
            raise unauthenticated("invalid API key")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (row.tenant_id, now + CACHE_SECONDS)
        return row.tenant_id


async def create_tenant(sessions: SessionFactory, name: str) -> tuple[Tenant, str]:
    """A tenant and its first API key; the key is returned once and stored only as a hash."""
    key = generate_api_key()
    tenant = Tenant(id=new_id("ten"), name=name)
    async with sessions() as session, session.begin():
        session.add(tenant)
        await session.flush()
        session.add(
            ApiKey(
                id=new_id("key"),
                tenant_id=tenant.id,
                key_hash=hash_api_key(key),
                hint=api_key_hint(key),
            )
        )
    return tenant, key
