from __future__ import annotations

import base64
import hashlib
import re

import pytest

from service.crypto import (
    API_KEY_PREFIX,
    SECRET_PREFIX,
    DecryptionError,
    MasterKey,
    SecretBox,
    UnknownKeyIdError,
    api_key_hint,
    generate_api_key,
    generate_webhook_secret,
    hash_api_key,
    parse_webhook_secret,
    secret_hint,
)

K1 = MasterKey("k1", bytes(range(32)))
K2 = MasterKey("k2", bytes(range(100, 132)))
AAD = b"endpoint_secret:ep_123"
PLAINTEXT = b"whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _tamper_payload(token: str) -> str:
    version, kid, payload = token.split(".")
    blob = bytearray(base64.urlsafe_b64decode(payload))
    blob[-1] ^= 0x01
    return f"{version}.{kid}.{_b64(bytes(blob))}"


# --- SecretBox ---


def test_round_trip() -> None:
    box = SecretBox([K1])
    token = box.encrypt(PLAINTEXT, aad=AAD)
    assert re.fullmatch(r"v1\.k1\.[A-Za-z0-9_-]+=*", token)
    assert box.decrypt(token, aad=AAD) == PLAINTEXT


def test_empty_plaintext_round_trips() -> None:
    box = SecretBox([K1])
    assert box.decrypt(box.encrypt(b"", aad=AAD), aad=AAD) == b""


def test_nonce_is_random() -> None:
    box = SecretBox([K1])
    a, b = box.encrypt(PLAINTEXT, aad=AAD), box.encrypt(PLAINTEXT, aad=AAD)
    assert a != b
    assert (
        base64.urlsafe_b64decode(a.split(".")[2])[:12]
        != (base64.urlsafe_b64decode(b.split(".")[2])[:12])
    )


def test_plaintext_never_appears_in_token() -> None:
    box = SecretBox([K1])
    token = box.encrypt(PLAINTEXT, aad=AAD)
    raw = base64.urlsafe_b64decode(token.split(".")[2])
    assert PLAINTEXT.decode() not in token
    assert PLAINTEXT not in raw
    assert _b64(PLAINTEXT).rstrip("=") not in token
    assert base64.b64encode(PLAINTEXT).decode().rstrip("=") not in token


def test_wrong_aad_fails() -> None:
    """A ciphertext copied into another row does not decrypt there."""
    box = SecretBox([K1])
    token = box.encrypt(PLAINTEXT, aad=b"endpoint_secret:ep_123")
    with pytest.raises(DecryptionError):
        box.decrypt(token, aad=b"endpoint_secret:ep_124")


def test_tampered_token_fails() -> None:
    box = SecretBox([K1])
    token = box.encrypt(PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError) as excinfo:
        box.decrypt(_tamper_payload(token), aad=AAD)
    assert PLAINTEXT.decode() not in str(excinfo.value)


def test_relabelled_key_id_fails() -> None:
    box = SecretBox([K2, K1])
    token = box.encrypt(PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        box.decrypt(token.replace("v1.k2.", "v1.k1.", 1), aad=AAD)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "v1.k1",
        "v1.k1.AAAA.extra",
        "v2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.bad kid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAA",  # too short for nonce + tag
        "v1.k1.!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAAAAAAAAAAAAAA+/AAAAAAAAAAAAAAAAAAAAAA",  # standard, not urlsafe, alphabet
    ],
)
def test_malformed_token_fails(token: str) -> None:
    with pytest.raises(DecryptionError):
        SecretBox([K1]).decrypt(token, aad=AAD)


def test_unknown_key_id() -> None:
    token = SecretBox([MasterKey("k9", b"\x09" * 32)]).encrypt(PLAINTEXT, aad=AAD)
    with pytest.raises(UnknownKeyIdError, match="k9") as excinfo:
        SecretBox([K1, K2]).decrypt(token, aad=AAD)
    assert excinfo.value.key_id == "k9"
    message = str(excinfo.value)
    for key in (K1.key, K2.key):
        assert _b64(key) not in message
        assert key.hex() not in message


def test_rotation() -> None:
    old_box = SecretBox([K1])
    old_token = old_box.encrypt(PLAINTEXT, aad=AAD)

    box = SecretBox([K2, K1])
    assert box.decrypt(old_token, aad=AAD) == PLAINTEXT
    assert box.needs_rotation(old_token)

    new_token = box.rotate(old_token, aad=AAD)
    assert new_token.startswith("v1.k2.")
    assert not box.needs_rotation(new_token)
    assert box.decrypt(new_token, aad=AAD) == PLAINTEXT

    # Once every row is rotated, k1 can be dropped.
    assert SecretBox([K2]).decrypt(new_token, aad=AAD) == PLAINTEXT
    with pytest.raises(UnknownKeyIdError):
        SecretBox([K2]).decrypt(old_token, aad=AAD)


def test_rotate_authenticates_first() -> None:
    box = SecretBox([K2, K1])
    old_token = SecretBox([K1]).encrypt(PLAINTEXT, aad=AAD)
    with pytest.raises(DecryptionError):
        box.rotate(old_token, aad=b"endpoint_secret:other")
    with pytest.raises(DecryptionError):
        box.rotate(_tamper_payload(old_token), aad=AAD)


def test_needs_rotation_on_unknown_key_is_true() -> None:
    token = SecretBox([MasterKey("k0", b"\x00" * 32)]).encrypt(PLAINTEXT, aad=AAD)
    assert SecretBox([K1]).needs_rotation(token)


def test_constructor_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SecretBox([])
    with pytest.raises(ValueError, match="duplicate"):
        SecretBox([K1, MasterKey("k1", b"\x01" * 32)])
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey("k1", b"\x00" * 16)
    for bad_id in ("", "a" * 33, "has.dot", "has:colon", "spa ce"):
        with pytest.raises(ValueError, match="key id"):
            MasterKey(bad_id, b"\x00" * 32)


def test_master_key_repr_hides_key() -> None:
    assert K1.key.hex() not in repr(K1)
    assert repr(K1.key) not in repr(K1)
    assert repr(K1.key) not in repr(SecretBox([K1]))


def test_from_spec_first_key_is_active() -> None:
    box = SecretBox.from_spec(f"k2:{_b64(K2.key)}, k1:{_b64(K1.key)}")
    old_token = SecretBox([K1]).encrypt(PLAINTEXT, aad=AAD)
    assert box.decrypt(old_token, aad=AAD) == PLAINTEXT
    assert box.encrypt(PLAINTEXT, aad=AAD).startswith("v1.k2.")
    assert box.active_key_id == "k2"
    assert box.key_ids == ("k2", "k1")


def test_from_spec_accepts_unpadded_keys() -> None:
    box = SecretBox.from_spec(f"k1:{_b64(K1.key).rstrip('=')}")
    assert box.decrypt(SecretBox([K1]).encrypt(b"x", aad=AAD), aad=AAD) == b"x"


def test_generate_spec() -> None:
    spec = SecretBox.generate_spec("main_2025-01")
    kid, _, key = spec.partition(":")
    assert kid == "main_2025-01"
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert SecretBox.generate_spec() != SecretBox.generate_spec()
    box = SecretBox.from_spec(spec)
    assert box.decrypt(box.encrypt(b"x", aad=AAD), aad=AAD) == b"x"
    assert SecretBox.generate_spec().startswith("k1:")
    with pytest.raises(ValueError, match="key id"):
        SecretBox.generate_spec("bad id")


SHORT_KEY = _b64(b"\x07" * 16)
GOOD_KEY = _b64(K1.key)
STD_ALPHABET_KEY = base64.b64encode(b"\xfb" * 32).decode()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (GOOD_KEY, "entry 1"),
        (f"k1:{GOOD_KEY},", "entry 2"),
        (f"k1:{GOOD_KEY},k2", "entry 2"),
        (f"k1:{GOOD_KEY},:{GOOD_KEY}", "entry 2"),
        (f"k1:{GOOD_KEY},k2:", "entry 2"),
        (f"bad id:{GOOD_KEY}", "key id"),
        (f"k1:{GOOD_KEY},k1:{GOOD_KEY}", "duplicate"),
        (f"k1:{SHORT_KEY}", "32 bytes"),
        ("k1:not*base64*at*all", "base64"),
        (f"k1:{STD_ALPHABET_KEY}", "base64"),  # '+' and '/' are not the urlsafe alphabet
    ],
)
def test_from_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        SecretBox.from_spec(spec)
    for material in (GOOD_KEY, SHORT_KEY, STD_ALPHABET_KEY, "not*base64"):
        assert material not in str(excinfo.value)


# --- webhook secrets ---


def test_generate_webhook_secret() -> None:
    secret = generate_webhook_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert len(parse_webhook_secret(secret)) == 32
    assert generate_webhook_secret() != secret


@pytest.mark.parametrize("size", [24, 32, 64])
def test_parse_webhook_secret_accepts_24_to_64_bytes(size: int) -> None:
    key = bytes(range(size))
    assert parse_webhook_secret(SECRET_PREFIX + base64.b64encode(key).decode()) == key


def test_parse_webhook_secret_accepts_missing_padding() -> None:
    key = b"\xfb" * 32
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("=")
    assert parse_webhook_secret(SECRET_PREFIX + encoded.rstrip("=")) == key


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (SECRET_PREFIX + base64.b64encode(b"s" * 23).decode(), "must decode to 24 to 64 bytes"),
        (SECRET_PREFIX + base64.b64encode(b"s" * 65).decode(), "must decode to 24 to 64 bytes"),
        (SECRET_PREFIX, "must decode to 24 to 64 bytes"),
        (SECRET_PREFIX + "c2VjcmV0*c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "must be base64"),
        (SECRET_PREFIX + "c2VjcmV0_c2VjcmV0-c2VjcmV0c2VjcmV0c2VjcmV0", "must be base64"),
        (SECRET_PREFIX + "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c", "must be base64"),
        (SECRET_PREFIX + " c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "must be base64"),
        (base64.b64encode(b"s" * 32).decode(), 'must start with "whsec_"'),
        ("WHSEC_" + base64.b64encode(b"s" * 32).decode(), 'must start with "whsec_"'),
        ("sk_live_" + base64.b64encode(b"s" * 32).decode(), 'must start with "whsec_"'),
    ],
)
def test_parse_webhook_secret_rejects(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as excinfo:
        parse_webhook_secret(secret)
    text = str(excinfo.value)
    assert secret.removeprefix(SECRET_PREFIX) not in text or secret == SECRET_PREFIX
    assert secret not in text
    # No chained decoder error that could carry the input into a traceback.
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__context__ is None or excinfo.value.__suppress_context__


def test_secret_hint() -> None:
    secret = generate_webhook_secret()
    hint = secret_hint(secret)
    assert hint == secret[:10] + "…"
    assert hint.startswith("whsec_")
    assert secret_hint("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == "whsec_MfKQ…"


# --- API keys ---


def test_generate_api_key() -> None:
    key = generate_api_key()
    assert key.startswith(API_KEY_PREFIX)
    body = key.removeprefix(API_KEY_PREFIX)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body)
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert generate_api_key() != key


def test_hash_api_key() -> None:
    key = generate_api_key()
    digest = hash_api_key(key)
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_api_key(key) == digest  # deterministic: usable as an indexed lookup column
    assert hash_api_key(generate_api_key()) != digest
    assert key not in digest


def test_api_key_hint() -> None:
    assert api_key_hint("hk_AbCdEfGhIjKl") == "hk_AbCdEf…"
    key = generate_api_key()
    assert api_key_hint(key) == key[:9] + "…"
