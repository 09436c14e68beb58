"""Input rules shared by the RPCs: each check adds field violations instead of raising at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from service.catalog import Catalog
from service.errors import Violations
from service.ssrf import NetworkPolicy, Resolver, UrlRejectedError, vet_url

ORG_WORKSPACE = "__org__"
MAX_DESCRIPTION = 512
MAX_EVENTS_PER_ENDPOINT = 500
MAX_IDEMPOTENCY_KEY = 255
MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1, 30, 30


def workspace_for_event(value: str, violations: Violations, field: str = "workspace_id") -> str:
    """An event's workspace: a UUID or the __org__ sentinel, never empty."""
    if value == ORG_WORKSPACE:
        return value
    if not value:
        violations.add(field, f'is required: a workspace UUID or "{ORG_WORKSPACE}"')
        return value
    return _uuid(value, violations, field)


def workspace_scope(value: str, violations: Violations, field: str = "workspace_id") -> str:
    """An endpoint's scope: empty (every workspace), a UUID or __org__."""
    if value in ("", ORG_WORKSPACE):
        return value
    return _uuid(value, violations, field)


def _uuid(value: str, violations: Violations, field: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != 36:
        violations.add(field, f'must be a UUID such as 7d1c...-... or "{ORG_WORKSPACE}"')
        return value
    return str(parsed)


async def endpoint_url(
    url: str,
    violations: Violations,
    policy: NetworkPolicy,
    resolver: Resolver,
    field: str = "url",
) -> str:
    if not url:
        violations.add(field, "is required")
        return url
    try:
        await vet_url(url, policy, resolver)
    except UrlRejectedError as exc:
        violations.add(field, exc.reason)
    return url


def subscriptions(
    events: Sequence[str], catalog: Catalog, violations: Violations, field: str = "events"
) -> list[str]:
    if not events:
        violations.add(field, 'must name at least one event type, "*" or "group.*"')
        return []
    if len(events) > MAX_EVENTS_PER_ENDPOINT:
        violations.add(field, f"at most {MAX_EVENTS_PER_ENDPOINT} entries")
        return []
    for index, message in catalog.subscription_errors(events):
        violations.add(f"{field}[{index}]", message)
    return catalog.normalize_subscriptions(events)


def description(value: str, violations: Violations, field: str = "description") -> str:
    if len(value) > MAX_DESCRIPTION:
        violations.add(field, f"at most {MAX_DESCRIPTION} characters")
    elif any(ord(ch) < 32 and ch not in "\t\n" for ch in value):
        violations.add(field, "must not contain control characters")
    return value


def timeout_seconds(value: int, violations: Violations, field: str = "timeout_seconds") -> int:
    if value == 0:
        return DEFAULT_TIMEOUT
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        violations.add(field, f"must be between {MIN_TIMEOUT} and {MAX_TIMEOUT} seconds")
    return value


def idempotency_key(value: str, violations: Violations, field: str = "idempotency_key") -> str:
    if len(value) > MAX_IDEMPOTENCY_KEY:
        violations.add(field, f"at most {MAX_IDEMPOTENCY_KEY} characters")
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        violations.add(field, "must not contain control characters")
    return value


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKeyError("duplicate key in object")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def event_data(data: bytes, max_bytes: int, violations: Violations, field: str = "data") -> bytes:
    """A UTF-8 JSON object, kept byte for byte so integers of any size survive exactly."""
    if not data:
        violations.add(field, "is required: a JSON object")
        return data
    if len(data) > max_bytes:
        violations.add(field, f"is {len(data)} bytes; the limit is {max_bytes}")
        return data
    try:
        text = data.decode("utf-8")
        parsed = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except UnicodeDecodeError:
        violations.add(field, "must be UTF-8")
        return data
    except RecursionError:
        violations.add(field, "is nested too deeply")
        return data
    except ValueError as exc:
        violations.add(field, f"is not valid JSON ({str(exc).split(':')[0]})")
        return data
    if not isinstance(parsed, dict):
        violations.add(field, "must be a JSON object")
    return data
