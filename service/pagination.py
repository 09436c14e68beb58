"""Opaque keyset page tokens: stable when rows are added or removed between pages."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from service.errors import invalid_field

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class PageRequest:
    size: int
    after: str  # last key of the previous page, "" for the first page


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_token(after: str, query: str) -> str:
    payload = json.dumps({"a": after, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def parse_page(page_size: int, page_token: str, query: str = "") -> PageRequest:
    """query names the filters of the listing; a token from another listing is rejected."""
    if page_size < 0:
        raise invalid_field("page_size", "must not be negative")
    size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
    if not page_token:
        return PageRequest(size=size, after="")
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, fingerprint = payload["a"], payload["q"]
        if not isinstance(after, str) or not after or not isinstance(fingerprint, str):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise invalid_field("page_token", "is not a token this service issued") from None
    if fingerprint != _fingerprint(query):
        raise invalid_field("page_token", "was issued for a different query")
    return PageRequest(size=size, after=after)
