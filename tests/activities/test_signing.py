from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import standardwebhooks
import svix.webhooks

from activities.signing import sign_v1, signature_header, verify_v1, webhook_headers
from service.crypto import generate_webhook_secret, parse_webhook_secret

BODY = b'{"id":"evt_1","type":"message.sent","data":{"n":1}}'
MSG_ID = "evt_2Zb8x1"


def _now() -> int:
    return int(time.time())


# --- known answers ---


def test_github_hmac_test_vector() -> None:
    """Checklist item 33: the raw HMAC-SHA256 primitive against GitHub's published vector."""
    secret = b"It's a Secret to Everybody"
    body = b"Hello, World!"
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert digest.startswith("757107ea")
    assert digest.endswith("3e17")
    assert digest == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    # sign_v1 is that primitive over "msg_id.timestamp." + body, base64-encoded.
    expected = hmac.new(secret, b"msg_1.1700000000.Hello, World!", hashlib.sha256).digest()
    assert sign_v1(secret, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_standard_webhooks_test_vector() -> None:
    """The example from the Standard Webhooks / Svix documentation."""
    key = parse_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign_v1(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- headers ---


def test_webhook_headers_shape() -> None:
    key = parse_webhook_secret(generate_webhook_secret())
    ts = _now()
    headers = webhook_headers(
        keys=[key], msg_id=MSG_ID, timestamp=ts, body=BODY, vendor_header=None
    )
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_v1(key, MSG_ID, ts, BODY),
        "content-type": "application/json",
    }


def test_vendor_header_carries_same_signature() -> None:
    keys = [parse_webhook_secret(generate_webhook_secret()) for _ in range(2)]
    headers = webhook_headers(
        keys=keys, msg_id=MSG_ID, timestamp=_now(), body=BODY, vendor_header="X-Devotel-Signature"
    )
    assert headers["X-Devotel-Signature"] == headers["webhook-signature"]
    assert len(headers) == 5


@pytest.mark.parametrize(
    "name", ["", "X-Bad Header", "X-Evil\r\nInjected: 1", "webhook-signature", "Content-Type"]
)
def test_vendor_header_name_is_validated(name: str) -> None:
    key = parse_webhook_secret(generate_webhook_secret())
    with pytest.raises(ValueError, match="header"):
        webhook_headers(keys=[key], msg_id=MSG_ID, timestamp=_now(), body=BODY, vendor_header=name)


def test_signature_header_orders_active_key_first() -> None:
    new, old = (parse_webhook_secret(generate_webhook_secret()) for _ in range(2))
    ts = _now()
    header = signature_header([new, old], MSG_ID, ts, BODY)
    assert header.split(" ") == [sign_v1(new, MSG_ID, ts, BODY), sign_v1(old, MSG_ID, ts, BODY)]


def test_signature_header_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], MSG_ID, _now(), BODY)


# --- interoperability with the reference verifiers ---


def test_standardwebhooks_library_verifies() -> None:
    secret = generate_webhook_secret()
    headers = webhook_headers(
        keys=[parse_webhook_secret(secret)],
        msg_id=MSG_ID,
        timestamp=_now(),
        body=BODY,
        vendor_header="X-Devotel-Signature",
    )
    payload = standardwebhooks.Webhook(secret).verify(BODY, headers)
    assert payload["id"] == "evt_1"


def test_svix_library_verifies() -> None:
    secret = generate_webhook_secret()
    headers = webhook_headers(
        keys=[parse_webhook_secret(secret)],
        msg_id=MSG_ID,
        timestamp=_now(),
        body=BODY,
        vendor_header=None,
    )
    svix.webhooks.Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize("which", ["new", "old"])
def test_rotation_overlap_verifies_with_either_secret(which: str) -> None:
    new_secret, old_secret = generate_webhook_secret(), generate_webhook_secret()
    headers = webhook_headers(
        keys=[parse_webhook_secret(new_secret), parse_webhook_secret(old_secret)],
        msg_id=MSG_ID,
        timestamp=_now(),
        body=BODY,
        vendor_header=None,
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    secret = new_secret if which == "new" else old_secret
    standardwebhooks.Webhook(secret).verify(BODY, headers)
    svix.webhooks.Webhook(secret).verify(BODY, headers)
    ts = int(headers["webhook-timestamp"])
    assert verify_v1([parse_webhook_secret(secret)], MSG_ID, ts, BODY, headers["webhook-signature"])


def test_wrong_secret_fails_in_both_libraries() -> None:
    headers = webhook_headers(
        keys=[parse_webhook_secret(generate_webhook_secret())],
        msg_id=MSG_ID,
        timestamp=_now(),
        body=BODY,
        vendor_header=None,
    )
    other = generate_webhook_secret()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(BODY, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(other).verify(BODY, headers)


def test_tampered_body_fails_in_both_libraries() -> None:
    secret = generate_webhook_secret()
    headers = webhook_headers(
        keys=[parse_webhook_secret(secret)],
        msg_id=MSG_ID,
        timestamp=_now(),
        body=BODY,
        vendor_header=None,
    )
    tampered = BODY.replace(b'"n":1', b'"n":2')
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(tampered, headers)


# --- verify_v1 ---

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
TS = 1_700_000_000


def _good() -> str:
    return sign_v1(KEY, MSG_ID, TS, BODY)


def test_verify_v1_accepts_own_signature() -> None:
    assert verify_v1([KEY], MSG_ID, TS, BODY, _good())


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="missing"),
        pytest.param("v1,", id="bare-v1"),
        pytest.param("v1", id="no-comma"),
        pytest.param(sign_v1(OTHER_KEY, MSG_ID, TS, BODY), id="wrong-key"),
        pytest.param("v1,bm90IGEgc2lnbmF0dXJl", id="wrong-signature"),
        pytest.param("v1,!!!not-base64!!!", id="not-base64"),
        pytest.param("v2," + sign_v1(KEY, MSG_ID, TS, BODY)[3:], id="right-mac-wrong-version"),
        pytest.param("v2,xyz", id="only-unknown-version"),
    ],
)
def test_verify_v1_rejects(header: str) -> None:
    assert not verify_v1([KEY], MSG_ID, TS, BODY, header)


def test_verify_v1_rejects_changed_id_timestamp_or_body() -> None:
    header = _good()
    assert not verify_v1([KEY], "evt_other", TS, BODY, header)
    assert not verify_v1([KEY], MSG_ID, TS + 1, BODY, header)
    assert not verify_v1([KEY], MSG_ID, TS, BODY + b" ", header)


def test_verify_v1_with_no_keys_is_false() -> None:
    assert not verify_v1([], MSG_ID, TS, BODY, _good())


@pytest.mark.parametrize(
    "header_fmt", ["v2,xyz {good}", "{good} v2,xyz", "v1,AAAA v2,xyz {good}", "v1, {good}"]
)
def test_verify_v1_accepts_any_matching_entry(header_fmt: str) -> None:
    assert verify_v1([KEY], MSG_ID, TS, BODY, header_fmt.format(good=_good()))


def test_verify_v1_accepts_any_of_several_keys() -> None:
    header = sign_v1(OTHER_KEY, MSG_ID, TS, BODY)
    assert verify_v1([KEY, OTHER_KEY], MSG_ID, TS, BODY, header)
