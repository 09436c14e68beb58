"""Standard Webhooks signing (https://www.standardwebhooks.com/).

The signed content is ``f"{msg_id}.{timestamp}.".encode() + body``; the signature is
``v1,<base64 HMAC-SHA256>``. ``webhook-signature`` carries several space-separated signatures
while a secret rotation overlaps (active key first), and any one matching ``v1`` entry verifies.
The id and timestamp come from the service, never from the producer.

Signatures are only ever compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["sign_v1", "signature_header", "verify_v1", "webhook_headers"]

_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_STANDARD_HEADERS: Final = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
)


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed_content, hashlib.sha256).digest()


def sign_v1(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`` for one key."""
    return "v1," + base64.b64encode(_mac(key, msg_id, timestamp, body)).decode("ascii")


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated v1 signatures, one per key (active key first), for rotation overlap."""
    if not keys:
        raise ValueError("at least one signing key is required")
    return " ".join(sign_v1(key, msg_id, timestamp, body) for key in keys)


def webhook_headers(
    *,
    keys: Sequence[bytes],
    msg_id: str,
    timestamp: int,
    body: bytes,
    vendor_header: str | None,
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, plus an optional vendor alias.

    ``vendor_header`` (e.g. ``X-Devotel-Signature``) carries the same value as
    ``webhook-signature``. It must be a valid HTTP header name and must not shadow one of the
    standard headers.
    """
    signature = signature_header(keys, msg_id, timestamp, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    if vendor_header is not None:
        if not _HEADER_NAME_RE.fullmatch(vendor_header):
            raise ValueError(f"vendor signature header name {vendor_header[:64]!r} is not valid")
        if vendor_header.lower() in _STANDARD_HEADERS:
            raise ValueError(
                f"vendor signature header {vendor_header!r} would replace a standard header"
            )
        headers[vendor_header] = signature
    return headers


def verify_v1(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any ``v1`` entry of ``header`` matches the signature under any of ``keys``.

    Entries of other versions (``v2,...``) and malformed entries are ignored; an empty header or a
    bare ``v1,`` never verifies. MACs are compared in constant time. Timestamp freshness (the
    5-minute tolerance of the specification) is the caller's check, not this function's.
    """
    expected = [_mac(key, msg_id, timestamp, body) for key in keys]
    if not expected:
        return False
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if version != "v1" or not sep or not encoded:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        for mac in expected:
            if hmac.compare_digest(mac, candidate):
                return True
    return False
