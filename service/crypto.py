"""Secrets at rest, webhook signing secrets and API keys.

Three unrelated kinds of secret live here:

* **Secrets at rest** (:class:`SecretBox`): endpoint signing secrets are stored encrypted with
  AES-256-GCM under an operator-held master key. Every token names its key id, so master keys can
  be rotated: the first key encrypts, all keys decrypt, and :meth:`SecretBox.rotate` re-encrypts an
  old token under the active key (the MultiFernet model). The caller passes associated data that
  names the row (``b"endpoint_secret:" + row_id``), so a ciphertext copied into another row fails
  to decrypt.
* **Webhook secrets** in the Standard Webhooks format (``whsec_`` + base64 of the HMAC key). They
  are shown once, at creation or rotation; afterwards only :func:`secret_hint` is shown.
* **API keys** (``hk_`` + 256 random bits). Only their SHA-256 is stored; :func:`api_key_hint` is
  what a listing shows.

No error message raised here contains key material, a secret or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "API_KEY_PREFIX",
    "SECRET_PREFIX",
    "DecryptionError",
    "MasterKey",
    "SecretBox",
    "UnknownKeyIdError",
    "api_key_hint",
    "generate_api_key",
    "generate_webhook_secret",
    "hash_api_key",
    "parse_webhook_secret",
    "secret_hint",
]

# ------------------------------------------------------------------------------------------------
# Secrets at rest
# ------------------------------------------------------------------------------------------------

_TOKEN_VERSION: Final = "v1"  # noqa: S105 (a format tag, not a password)
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_B64STD_RE: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MASTER_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16


class UnknownKeyIdError(Exception):
    """A token names a master key id that this :class:`SecretBox` does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"no master key with id {key_id!r} is configured; "
            "keep retired keys in the key list until every token has been rotated"
        )
        self.key_id = key_id


class DecryptionError(Exception):
    """A token is malformed, was tampered with, or is being decrypted with the wrong aad."""


def _validate_key_id(key_id: str) -> None:
    if not _KEY_ID_RE.fullmatch(key_id):
        # The id is not secret, but it may be arbitrary junk: show its repr, truncated.
        raise ValueError(
            f"master key id {key_id[:40]!r} is invalid: use 1 to 32 characters from A-Z a-z 0-9 _ -"
        )


def _b64_decode_strict(data: str, *, urlsafe: bool) -> bytes:
    """Decode base64 strictly (no skipped characters); padding is optional.

    ``base64.urlsafe_b64decode`` silently discards characters outside the alphabet, which would let
    two different strings decode to the same bytes, so the alphabet is checked first.
    """
    if not (_B64URL_RE if urlsafe else _B64STD_RE).fullmatch(data):
        raise ValueError("not base64")
    body = data.rstrip("=")
    if len(body) % 4 == 1:
        raise ValueError("not base64")
    padded = body + "=" * (-len(body) % 4)
    try:
        if urlsafe:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


@dataclass(frozen=True)
class MasterKey:
    """One AES-256 master key and the id that tokens encrypted under it carry."""

    key_id: str
    key: bytes = field(repr=False)  # never in a repr, a log line or a traceback

    def __post_init__(self) -> None:
        _validate_key_id(self.key_id)
        if len(self.key) != _MASTER_KEY_BYTES:
            raise ValueError(
                f"master key {self.key_id!r} must be {_MASTER_KEY_BYTES} bytes (AES-256), "
                f"got {len(self.key)}"
            )


class SecretBox:
    """AES-256-GCM with key ids so master keys can rotate. The first key encrypts; all keys decrypt.

    Token format: ``v1.<key id>.<urlsafe base64 of nonce (12 B) + ciphertext + tag (16 B)>``.
    Nonces are random 96-bit values, so one master key must be retired (made non-active, then
    dropped after :meth:`rotate`) well before 2**32 encryptions; storing endpoint secrets comes
    nowhere near that.
    """

    __slots__ = ("_active_id", "_aeads")

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one master key")
        aeads: dict[str, AESGCM] = {}
        for mk in keys:
            if mk.key_id in aeads:
                raise ValueError(f"duplicate master key id {mk.key_id!r}")
            aeads[mk.key_id] = AESGCM(mk.key)
        self._aeads: Final = aeads
        self._active_id: Final = keys[0].key_id

    def __repr__(self) -> str:
        return f"SecretBox(active={self._active_id!r}, key_ids={list(self._aeads)!r})"

    @property
    def active_key_id(self) -> str:
        return self._active_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aeads)

    @classmethod
    def from_spec(cls, spec: str) -> SecretBox:
        """Build a box from ``"kid1:<urlsafe-b64 32 bytes>,kid0:<...>"``; the first entry is active.

        Raises ``ValueError`` naming the faulty entry (by position and key id, never by key).
        """
        if not spec.strip():
            raise ValueError(
                "master key spec is empty; expected '<key_id>:<urlsafe base64 key>,...'"
            )
        keys: list[MasterKey] = []
        for position, raw_entry in enumerate(spec.split(","), start=1):
            entry = raw_entry.strip()
            key_id, sep, encoded = entry.partition(":")
            key_id, encoded = key_id.strip(), encoded.strip()
            if not sep or not key_id or not encoded:
                raise ValueError(
                    f"master key spec entry {position} must look like "
                    "'<key_id>:<urlsafe base64 key>'"
                )
            _validate_key_id(key_id)
            try:
                key = _b64_decode_strict(encoded, urlsafe=True)
            except ValueError:
                raise ValueError(
                    f"master key {key_id!r} (spec entry {position}) is not valid urlsafe base64"
                ) from None
            keys.append(MasterKey(key_id, key))
        return cls(keys)

    @staticmethod
    def generate_spec(key_id: str = "k1") -> str:
        """A fresh single-key spec: for a first setup, or a new key to put first in a spec."""
        _validate_key_id(key_id)
        key = secrets.token_bytes(_MASTER_KEY_BYTES)
        return f"{key_id}:{base64.urlsafe_b64encode(key).decode('ascii')}"

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> str:
        """Encrypt under the active key, binding ``aad`` (which row this ciphertext belongs to)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aeads[self._active_id].encrypt(nonce, plaintext, aad)
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_TOKEN_VERSION}.{self._active_id}.{payload}"

    def decrypt(self, token: str, *, aad: bytes) -> bytes:
        """Decrypt a token made by :meth:`encrypt` under any configured key.

        Raises :class:`UnknownKeyIdError` when the token's key id is not configured and
        :class:`DecryptionError` when it is malformed, tampered with or the aad differs.
        """
        key_id, blob = self._parse(token)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnknownKeyIdError(key_id)
        try:
            return aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"token under master key {key_id!r} failed authentication "
                "(tampered, or encrypted for a different row)"
            ) from None

    def needs_rotation(self, token: str) -> bool:
        """True when the token is not under the active key (it may even be under an unknown one)."""
        key_id, _ = self._parse(token)
        return key_id != self._active_id

    def rotate(self, token: str, *, aad: bytes) -> str:
        """Decrypt (authenticating the token), then re-encrypt under the active key."""
        return self.encrypt(self.decrypt(token, aad=aad), aad=aad)

    @staticmethod
    def _parse(token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3:
            raise DecryptionError("malformed token: expected 'v1.<key id>.<payload>'")
        version, key_id, payload = parts
        if version != _TOKEN_VERSION:
            raise DecryptionError(f"unsupported token version {version[:10]!r}")
        if not _KEY_ID_RE.fullmatch(key_id):
            raise DecryptionError("malformed token: invalid key id")
        try:
            blob = _b64_decode_strict(payload, urlsafe=True)
        except ValueError:
            raise DecryptionError("malformed token: payload is not urlsafe base64") from None
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError("malformed token: payload too short")
        return key_id, blob


# ------------------------------------------------------------------------------------------------
# Webhook signing secrets (Standard Webhooks)
# ------------------------------------------------------------------------------------------------

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a password)
_WEBHOOK_SECRET_BYTES: Final = 32
# Svix and the Standard Webhooks libraries accept keys of 24 to 64 bytes.
_WEBHOOK_SECRET_MIN_BYTES: Final = 24
_WEBHOOK_SECRET_MAX_BYTES: Final = 64


def generate_webhook_secret() -> str:
    """A new ``whsec_`` secret: standard base64 of 32 random bytes."""
    key = secrets.token_bytes(_WEBHOOK_SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def parse_webhook_secret(secret: str) -> bytes:
    """Validate a user-supplied ``whsec_`` secret and return the HMAC key bytes.

    Raises ``ValueError`` with a message fit to show the user; it never contains the secret.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f'webhook secret must start with "{SECRET_PREFIX}"')
    try:
        key = _b64_decode_strict(secret[len(SECRET_PREFIX) :], urlsafe=False)
    except ValueError:
        raise ValueError(
            f'webhook secret must be base64 (standard alphabet) after "{SECRET_PREFIX}"'
        ) from None
    if not _WEBHOOK_SECRET_MIN_BYTES <= len(key) <= _WEBHOOK_SECRET_MAX_BYTES:
        raise ValueError(
            f"webhook secret must decode to {_WEBHOOK_SECRET_MIN_BYTES} to "
            f"{_WEBHOOK_SECRET_MAX_BYTES} bytes, got {len(key)}"
        )
    return key


def secret_hint(secret: str) -> str:
    """``whsec_`` + the first 4 base64 characters + ``…``: safe to show after creation (24 bits)."""
    return SECRET_PREFIX + secret.removeprefix(SECRET_PREFIX)[:4] + "…"


# ------------------------------------------------------------------------------------------------
# API keys
# ------------------------------------------------------------------------------------------------

API_KEY_PREFIX: Final = "hk_"
_API_KEY_BYTES: Final = 32


def generate_api_key() -> str:
    """A new API key: ``hk_`` + a urlsafe token of 32 random bytes. Show it once; store its hash."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_API_KEY_BYTES)


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of the key, the value stored and looked up.

    A fast hash is the right choice here, unlike for passwords: an API key carries 256 random
    bits, so a stolen hash cannot be brute-forced however fast the hash is, and a slow KDF (bcrypt,
    argon2) would only add latency to every request. It is also deterministic (no salt), so the
    hash can be a unique, indexed lookup column.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_hint(key: str) -> str:
    """``hk_`` + the first 6 characters after the prefix + ``…``: what a key listing shows."""
    return API_KEY_PREFIX + key.removeprefix(API_KEY_PREFIX)[:6] + "…"
