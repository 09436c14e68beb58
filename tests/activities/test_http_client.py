"""DeliveryHttpClient against a real loopback receiver (checklist B.3 and B.4)."""

from __future__ import annotations

import base64
import datetime
import email.utils
import gzip
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from activities.http_client import (
    AttemptResult,
    DeliveryHttpClient,
    ErrorClass,
    parse_retry_after,
)
from service.ssrf import (
    IPAddress,
    NetworkPolicy,
    Resolver,
    StaticResolver,
    vet_url,
)
from tests.activities.receivers import (
    CertificateAuthority,
    LoopbackReceiver,
    ScriptedResponse,
    unused_port,
)

# Loopback is allowed (and plain http for it), as a local-development operator would configure.
LOOPBACK_POLICY = NetworkPolicy.from_strings(["127.0.0.0/8"], allow_http=True)
# The production default: nothing internal is reachable, https only.
STRICT_POLICY = NetworkPolicy()
# https only, loopback allow-listed.
HTTPS_LOOPBACK_POLICY = NetworkPolicy.from_strings(["127.0.0.0/8"])
RESOLVER = StaticResolver({"receiver.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
BODY = b'{"id":"msg_1","type":"message.sent","data":{"n":1}}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


class RecordingResolver:
    """Answers from a script, one answer per call (the last one repeats); counts calls."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self._answers = [StaticResolver({"x": answer}) for answer in answers]
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        index = min(len(self.calls), len(self._answers)) - 1
        return await self._answers[index].resolve("x", port)


def make_client(
    *,
    policy: NetworkPolicy = LOOPBACK_POLICY,
    resolver: Resolver = RESOLVER,
    **kwargs: Any,
) -> DeliveryHttpClient:
    return DeliveryHttpClient(policy=policy, resolver=resolver, **kwargs)


async def post(client: DeliveryHttpClient, url: str, timeout: float = 2.0) -> AttemptResult:
    return await client.post(url, headers=HEADERS, body=BODY, timeout_seconds=timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[LoopbackReceiver]:
    async with LoopbackReceiver(url_host="receiver.test") as server:
        yield server


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
async def tls_receiver(ca: CertificateAuthority) -> AsyncIterator[LoopbackReceiver]:
    async with LoopbackReceiver(tls=ca.server_context(["receiver.test"])) as server:
        yield server


# -- success --------------------------------------------------------------------------------


async def test_success_delivers_headers_and_body_intact(receiver: LoopbackReceiver) -> None:
    reply = b'{"received":true}'
    receiver.route("/hook", ScriptedResponse(status=200, headers=[("X-Reply", "ok")], body=reply))
    async with make_client() as client:
        result = await client.post(
            receiver.url_for("receiver.test", "/hook?x=1"),
            headers={**HEADERS, "Host": "evil.test", "Content-Length": "1"},
            body=BODY,
            timeout_seconds=2,
        )
    assert result.succeeded
    assert result.status_code == 200
    assert result.error_class is ErrorClass.NONE
    assert result.error_message == ""
    assert result.response_excerpt == reply
    assert result.response_bytes_read == len(reply)
    assert not result.truncated
    assert result.latency_ms > 0
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.target == "/hook?x=1"
    assert request.body == BODY
    assert request.header("webhook-id") == "msg_1"
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent") == "Hookline-Webhooks/1.0"
    # Host and Content-Length are the client's, whatever the caller passes.
    assert request.header_values("host") == [f"receiver.test:{receiver.port}"]
    assert request.header("content-length") == str(len(BODY))
    assert request.server_address == "127.0.0.1"


@pytest.mark.parametrize("trust", ["context", "bundle_path"])
async def test_tls_with_test_ca_pins_address_and_keeps_hostname(
    tls_receiver: LoopbackReceiver, ca: CertificateAuthority, tmp_path: Path, trust: str
) -> None:
    verify = ca.client_context() if trust == "context" else str(ca.write_bundle(tmp_path))
    resolver = RecordingResolver(["127.0.0.1"])
    async with make_client(policy=HTTPS_LOOPBACK_POLICY, resolver=resolver, verify=verify) as c:
        result = await post(c, tls_receiver.url_for("receiver.test", "/hook"))
    assert result.succeeded, result
    (request,) = tls_receiver.requests
    assert request.tls_server_name == "receiver.test"
    assert request.header("host") == f"receiver.test:{tls_receiver.port}"
    assert request.server_address == "127.0.0.1"
    # Resolved once, by the injected resolver, inside the connection path.
    assert resolver.calls == ["receiver.test"]


async def test_tls_untrusted_ca_fails(tls_receiver: LoopbackReceiver) -> None:
    stranger = CertificateAuthority(common_name="Someone Else's CA")
    async with make_client(verify=stranger.client_context()) as client:
        result = await post(client, tls_receiver.url_for("receiver.test", "/hook"))
    assert result.error_class is ErrorClass.TLS
    assert result.status_code is None
    assert "certificate" in result.error_message
    assert not result.succeeded
    assert tls_receiver.requests == []


async def test_tls_wrong_hostname_fails(
    tls_receiver: LoopbackReceiver, ca: CertificateAuthority
) -> None:
    async with make_client(verify=ca.client_context()) as client:
        result = await post(client, tls_receiver.url_for("other.test", "/hook"))
    assert result.error_class is ErrorClass.TLS
    assert tls_receiver.requests == []


async def test_tls_expired_certificate_fails(ca: CertificateAuthority) -> None:
    async with (
        LoopbackReceiver(tls=ca.server_context(["receiver.test"], expired=True)) as server,
        make_client(verify=ca.client_context()) as client,
    ):
        result = await post(client, server.url_for("receiver.test", "/hook"))
    assert result.error_class is ErrorClass.TLS
    assert "expired" in result.error_message


def test_verification_cannot_be_disabled() -> None:
    with pytest.raises(ValueError, match="cannot be disabled"):
        make_client(verify=False)


# -- SSRF at connect time -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["1.1.1.1", "127.0.0.1"],
        ["2606:4700:4700::1111", "::1"],
        ["::ffff:127.0.0.1"],
    ],
)
async def test_forbidden_resolution_is_blocked_without_connecting(
    receiver: LoopbackReceiver, answer: list[str]
) -> None:
    resolver = RecordingResolver(answer)
    async with make_client(policy=STRICT_POLICY, resolver=resolver) as client:
        result = await post(client, f"https://receiver.test:{receiver.port}/hook")
    assert result.error_class is ErrorClass.BLOCKED
    assert result.status_code is None
    assert result.error_message.startswith("destination not allowed")
    assert resolver.calls == ["receiver.test"]
    assert receiver.connections == 0
    assert receiver.requests == []


async def test_literal_ip_is_checked_at_connect(receiver: LoopbackReceiver) -> None:
    resolver = RecordingResolver(["1.1.1.1"])
    async with make_client(policy=STRICT_POLICY, resolver=resolver) as client:
        result = await post(client, f"https://0x7f.1:{receiver.port}/hook")
    assert result.error_class is ErrorClass.BLOCKED
    assert resolver.calls == []  # a literal is never resolved
    assert receiver.connections == 0


async def test_dns_rebinding_is_blocked_at_connect(receiver: LoopbackReceiver) -> None:
    url = f"https://receiver.test:{receiver.port}/hook"
    resolver = RecordingResolver(["1.1.1.1"], ["127.0.0.1"])
    # Registration-time check passes: the name resolves to a public address...
    _parsed, addresses = await vet_url(url, STRICT_POLICY, resolver)
    assert [str(a) for a in addresses] == ["1.1.1.1"]
    # ...then the name is rebound to loopback; the connect-time check catches it.
    async with make_client(policy=STRICT_POLICY, resolver=resolver) as client:
        result = await post(client, url)
    assert result.error_class is ErrorClass.BLOCKED
    assert resolver.calls == ["receiver.test", "receiver.test"]
    assert receiver.connections == 0


async def test_plain_http_needs_every_address_allow_listed(receiver: LoopbackReceiver) -> None:
    resolver = RecordingResolver(["127.0.0.1", "1.1.1.1"])
    async with make_client(resolver=resolver) as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.error_class is ErrorClass.BLOCKED
    assert "http" in result.error_message
    assert receiver.connections == 0


async def test_dns_failure(receiver: LoopbackReceiver) -> None:
    async with make_client() as client:
        result = await post(client, receiver.url_for("unknown.test", "/hook"))
    assert result.error_class is ErrorClass.DNS
    assert result.error_message == "host could not be resolved"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://receiver.test/hook",
        "https://localhost/hook",
        "https://receiver.test:91337/hook",
        "javascript:alert(1)",
        "http://receiver.test/hook",  # plain http under the strict policy
    ],
)
async def test_invalid_url(url: str) -> None:
    resolver = RecordingResolver(["1.1.1.1"])
    async with make_client(policy=STRICT_POLICY, resolver=resolver) as client:
        result = await post(client, url)
    assert result.error_class is ErrorClass.INVALID_URL
    assert result.error_message.startswith("invalid URL: ")
    assert resolver.calls == []


async def test_redirect_is_not_followed(receiver: LoopbackReceiver) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    receiver.route("/hook", ScriptedResponse.redirect(metadata))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.status_code == 302
    assert result.location == metadata
    assert result.error_class is ErrorClass.NONE
    assert not result.succeeded
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_proxy_environment_is_ignored(
    receiver: LoopbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{unused_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.succeeded, result
    (request,) = receiver.requests
    assert request.target == "/hook"  # origin form: no proxy in between


async def test_connections_are_pooled_per_hostname(receiver: LoopbackReceiver) -> None:
    async with make_client() as client:
        first = await post(client, receiver.url_for("receiver.test", "/a"))
        second = await post(client, receiver.url_for("receiver.test", "/b"))
        third = await post(client, receiver.url_for("other.test", "/c"))
    assert first.succeeded and second.succeeded and third.succeeded
    a, b, c = receiver.requests
    assert a.connection_id == b.connection_id  # keep-alive reuse for the same hostname
    assert c.connection_id != a.connection_id  # same address, other hostname: new connection
    assert c.header("host") == f"other.test:{receiver.port}"


# -- receiver faults ------------------------------------------------------------------------


async def test_hang_past_timeout(receiver: LoopbackReceiver) -> None:
    receiver.route("/hook", ScriptedResponse(delay_seconds=30))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"), timeout=1)
    assert result.error_class is ErrorClass.TIMEOUT
    assert result.status_code is None
    assert not result.succeeded


async def test_slow_loris_response_hits_total_deadline(receiver: LoopbackReceiver) -> None:
    # Each byte arrives well within the 1 s read timeout; only the total deadline stops it.
    receiver.route("/hook", ScriptedResponse(body=b"x" * 100, trickle_interval=0.3))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"), timeout=1)
    assert result.error_class is ErrorClass.TIMEOUT
    assert result.status_code is None


async def test_trickled_body_after_200_is_a_timeout(receiver: LoopbackReceiver) -> None:
    receiver.route("/hook", ScriptedResponse(body=b"x" * 100, trickle_body_interval=0.3))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"), timeout=1)
    assert result.error_class is ErrorClass.TIMEOUT
    assert result.status_code == 200
    assert not result.succeeded
    assert 0 < result.response_bytes_read < 100
    assert result.response_excerpt == b"x" * result.response_bytes_read


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_large_body_is_capped(receiver: LoopbackReceiver, chunked: bool) -> None:
    receiver.route("/hook", ScriptedResponse(body=b"a" * (2 * 1024 * 1024), chunked=chunked))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.succeeded
    assert result.truncated
    assert result.response_bytes_read == 65536
    assert result.response_excerpt == b"a" * 4096


async def test_body_exactly_at_cap_is_not_truncated(receiver: LoopbackReceiver) -> None:
    receiver.route("/hook", ScriptedResponse(body=b"b" * 1000))
    async with make_client(max_response_bytes=1000, excerpt_bytes=10) as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert not result.truncated
    assert result.response_bytes_read == 1000
    assert result.response_excerpt == b"b" * 10


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
async def test_compression_bomb_is_capped_after_decompression(
    receiver: LoopbackReceiver, encoding: str, compress: Any
) -> None:
    bomb = compress(b"\0" * (10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024  # the compressed body alone would pass a raw-byte cap
    receiver.route("/hook", ScriptedResponse(headers=[("Content-Encoding", encoding)], body=bomb))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.succeeded
    assert result.truncated
    assert result.response_bytes_read == 65536
    assert result.response_excerpt == b"\0" * 4096


@pytest.mark.parametrize(
    ("encoding", "body", "expected"),
    [
        ("gzip", gzip.compress(b"small reply"), b"small reply"),
        ("deflate", zlib.compress(b"small reply")[2:-4], b"small reply"),  # raw deflate
        ("br", b"\x0b\x02\x80opaque", b"\x0b\x02\x80opaque"),  # unknown: kept raw
    ],
)
async def test_small_encoded_bodies(
    receiver: LoopbackReceiver, encoding: str, body: bytes, expected: bytes
) -> None:
    receiver.route("/hook", ScriptedResponse(headers=[("Content-Encoding", encoding)], body=body))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.response_excerpt == expected
    assert not result.truncated
    (request,) = receiver.requests
    assert request.header("accept-encoding") == "gzip, deflate"


@pytest.mark.parametrize(
    "behaviour",
    [ScriptedResponse(reset=True), ScriptedResponse(close_without_response=True)],
    ids=["reset", "half-close"],
)
async def test_connection_reset(receiver: LoopbackReceiver, behaviour: ScriptedResponse) -> None:
    receiver.route("/hook", behaviour)
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.error_class in {ErrorClass.RESET, ErrorClass.PROTOCOL}
    assert result.status_code is None
    assert len(receiver.requests) == 1


async def test_refused_port_is_connect_error() -> None:
    async with make_client() as client:
        result = await post(client, f"http://receiver.test:{unused_port()}/hook")
    assert result.error_class is ErrorClass.CONNECT
    assert result.error_message == "connection refused by the endpoint"


async def test_retry_after_is_captured(receiver: LoopbackReceiver) -> None:
    receiver.route("/hook", ScriptedResponse(status=503, headers=[("Retry-After", "120")]))
    async with make_client() as client:
        result = await post(client, receiver.url_for("receiver.test", "/hook"))
    assert result.status_code == 503
    assert result.retry_after == "120"
    assert result.location is None
    assert not result.succeeded


NOW = datetime.datetime(2015, 10, 21, 7, 27, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("99999999999999999999", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Wed, 21 Oct 2015 07:26:00 GMT", None),  # already past
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_with_formatted_date() -> None:
    later = email.utils.format_datetime(NOW + datetime.timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(later, NOW) == 300.0


async def test_userinfo_becomes_basic_auth_and_stays_secret(
    receiver: LoopbackReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = receiver.url_for("receiver.test", "/hook", userinfo="hook%40user:s3cr%3Atpw")
    async with make_client() as client:
        ok = await post(client, url)
        failed = await post(client, f"http://hook:s3cr%3Atpw@receiver.test:{unused_port()}/hook")
    assert ok.succeeded
    (request,) = receiver.requests
    expected = base64.b64encode(b"hook@user:s3cr:tpw").decode()
    assert request.header("authorization") == f"Basic {expected}"
    assert "s3cr" not in request.target
    assert failed.error_class is ErrorClass.CONNECT
    for text in (repr(ok), repr(failed), failed.error_message, caplog.text):
        assert "s3cr" not in text
