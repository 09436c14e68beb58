"""The HTTP client that POSTs one signed webhook attempt (reliability checklist B.3 and B.4).

Built on aiohttp: one ``ClientSession`` (and ``TCPConnector``) per scheme. Guarantees, each covered
by tests/activities/test_http_client.py against a real loopback receiver:

* SSRF check at connect time, pinned. The URL is parsed by ``service.ssrf.parse_url`` before
  anything is sent. Resolution and the address check then happen inside the connection path:
  the connector's resolver (``_PinnedResolver``, DNS cache off) resolves the host with the
  injected ``Resolver``, checks the whole answer with ``service.ssrf.check_addresses`` (one
  forbidden address rejects the target) and hands the connector only the checked addresses, so
  the socket connects to one of them. aiohttp never calls a resolver for an IP literal, so a
  literal host is checked the same way before the request is made. The Host header, TLS SNI and
  certificate verification keep the hostname. Nothing resolves the name again, so DNS rebinding
  cannot slip in between check and connect.
* Connection pooling is keyed by (scheme, hostname, port) (aiohttp's connection key): a
  connection is never reused for a different hostname, even one resolving to the same address.
  At most ``max_connections_per_host`` requests run at once per key (``limit_per_host``); the
  others wait for a connection within their own deadline.
* No proxies (``trust_env=False``: ``HTTP(S)_PROXY`` cannot route around the check), no redirects
  (a 3xx is a failed attempt carrying its status and Location), HTTP/1.1 only, no cookie jar
  (nothing a receiver sets is sent to another endpoint).
* A hard total deadline (``timeout_seconds``) around connect, send and reading the response, so a
  receiver trickling one byte at a time cannot hold the worker; plus a connect timeout of
  ``min(timeout_seconds, 10)`` for resolving, and for each TCP connect with its TLS handshake.
* The response body is streamed and capped after decompression (aiohttp's own decompression is
  off; gzip/deflate are decoded here with bounded output, so a gzip bomb never expands past the
  cap); the first ``excerpt_bytes`` are kept and the response is closed, not drained.
* TLS verification is always on; only the trust anchors can be changed (a CA bundle path or an
  ``ssl.SSLContext``, e.g. a test CA). ``verify=False`` is refused.
* Receiver and network faults never raise: they come back as an ``AttemptResult`` with an
  ``ErrorClass`` and a short message that is safe to show to the endpoint's owner. URL user info
  becomes Basic auth and appears in no result, message, span or log line.
* Each POST is an OpenTelemetry CLIENT span, and its context goes out as ``traceparent`` so the
  receiver can continue the trace.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import functools
import io
import ipaddress
import logging
import math
import os
import re
import socket
import ssl
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Final, Self, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from service.ssrf import (
    IPAddress,
    NetworkPolicy,
    ParsedUrl,
    ResolutionError,
    Resolver,
    UrlRejectedError,
    check_addresses,
    parse_url,
)

__all__ = [
    "AttemptResult",
    "DeliveryHttpClient",
    "DestinationBlockedError",
    "DnsResolutionError",
    "ErrorClass",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

MAX_CONNECT_TIMEOUT_SECONDS: Final = 10.0
# Idle keep-alive connections are dropped before common server idle timeouts (Node.js: 5 s), so a
# pooled connection is rarely reused just as the receiver closes it.
KEEPALIVE_EXPIRY_SECONDS: Final = 4.0
# Header values kept in results are bounded: they end up in workflow history and the store.
MAX_HEADER_VALUE_CHARS: Final = 2048
# Set by this client, never taken from the caller's headers.
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# RFC 9110 field name (token). aiohttp refuses control characters in values but sends any name.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# aiohttp warns (ResourceWarning) about raw bytes bodies above 1 MiB; larger ones go as a stream.
_LARGE_BODY_BYTES: Final = 2**20
# Query parameters whose values OpenTelemetry's HTTP instrumentations redact (signed URLs).
_REDACTED_QUERY_PARAMS: Final = frozenset(
    {"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"}
)


class ErrorClass(StrEnum):
    NONE = ""
    TIMEOUT = "timeout"
    CONNECT = "connect_error"
    DNS = "dns_error"
    TLS = "tls_error"
    BLOCKED = "blocked_address"
    INVALID_URL = "invalid_url"
    PROTOCOL = "protocol_error"
    RESET = "connection_reset"


@dataclass(frozen=True)
class AttemptResult:
    """Outcome of one POST.

    ``status_code`` is set whenever a status line arrived, even if reading the body then failed
    (a timeout or reset while reading sets ``error_class`` too, and the attempt is not a success).
    """

    status_code: int | None
    error_class: ErrorClass
    error_message: str  # short, generic, safe for a customer to see (no internals, no secrets)
    latency_ms: float
    response_excerpt: bytes = field(repr=False)
    response_bytes_read: int  # body bytes read, counted after decompression, <= the cap
    truncated: bool  # the body was longer than the cap and reading stopped there
    retry_after: str | None  # raw Retry-After header value if present
    location: str | None  # Location header on a 3xx

    @property
    def succeeded(self) -> bool:
        """A 2xx status and a response read without fault."""
        return (
            self.status_code is not None
            and 200 <= self.status_code < 300
            and self.error_class is ErrorClass.NONE
        )


class DestinationBlockedError(Exception):
    """Raised inside the connection path when the resolved addresses are not allowed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsResolutionError(Exception):
    """Raised inside the connection path when the host cannot be resolved."""


class _InvalidHeaderError(ValueError):
    """A caller header that cannot be sent as is (aiohttp would send a bad name unchecked)."""


# --------------------------------------------------------------------------------------------
# Retry-After
# --------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime.datetime) -> float | None:
    """Seconds to wait according to a Retry-After value (delta-seconds or HTTP-date).

    Returns None for a missing, malformed or negative value, and for a date that is already
    past; clamping to a sane window is the caller's job. ``now`` should be timezone-aware
    (a naive value is taken as UTC).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 10:  # more than ~300 years: garbage
            return None
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.UTC)
    delta = (when - now).total_seconds()
    if delta < 0 or not math.isfinite(delta):
        return None
    return delta


# --------------------------------------------------------------------------------------------
# Connection path: resolve, check, hand the connector only checked addresses
# --------------------------------------------------------------------------------------------


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check(target: ParsedUrl, addresses: Sequence[IPAddress], policy: NetworkPolicy) -> None:
    try:
        check_addresses(target, addresses, policy)
    except UrlRejectedError as exc:
        raise DestinationBlockedError(exc.reason) from None


class _PinnedResolver(AbstractResolver):
    """Resolves with the injected resolver and returns the answer only if all of it is allowed.

    One per scheme (each connector has its own), because plain http is only allowed when every
    address is inside the operator allow-list (``check_addresses`` needs to know the scheme).
    Its errors are not ``OSError``s, so aiohttp lets them through unwrapped.
    """

    def __init__(self, *, scheme: str, policy: NetworkPolicy, resolver: Resolver) -> None:
        self._scheme = scheme
        self._policy = policy
        self._resolver = resolver

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            # With the total deadline around every request, this bounds resolution by the
            # connect timeout, min(timeout_seconds, 10).
            async with asyncio.timeout(MAX_CONNECT_TIMEOUT_SECONDS):
                answer = await self._resolver.resolve(host, port)
        except TimeoutError:
            raise DnsResolutionError("host resolution timed out") from None
        except ResolutionError:
            raise DnsResolutionError("host could not be resolved") from None
        return list(dict.fromkeys(answer))

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._lookup(host, port)
        target = ParsedUrl(
            scheme=self._scheme,
            host=host,
            port=port,
            literal_ip=_ip_literal(host),
            username=None,
            password=None,
        )
        _check(target, addresses, self._policy)
        # Every address passed the check; the connector connects to one of these literals.
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Response body: bounded, decompressed here
# --------------------------------------------------------------------------------------------


class _BodyCollector:
    """Counts body bytes after decompression up to ``cap`` and keeps the first ``keep`` bytes."""

    def __init__(self, content_encoding: str | None, cap: int, keep: int) -> None:
        self._cap = cap
        self._keep = keep
        self._excerpt = bytearray()
        self._encoding = _single_known_encoding(content_encoding)
        # wbits 32+15: zlib or gzip header, detected automatically.
        self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if self._encoding else None
        self._first_chunk = True
        self.total = 0
        self.truncated = False
        self.done = False

    @property
    def excerpt(self) -> bytes:
        return bytes(self._excerpt)

    def feed(self, chunk: bytes) -> None:
        if self.done or not chunk:
            return
        if self._decoder is None:
            self._accept(chunk)
            return
        try:
            self._decompress(chunk)
        except zlib.error:
            if self._first_chunk and self._encoding == "deflate":
                # Some servers send raw deflate (no zlib header) as "deflate".
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                try:
                    self._decompress(chunk)
                except zlib.error:
                    self.done = True
            else:
                # Corrupt compressed data: keep what was decoded and stop reading.
                self.done = True
        self._first_chunk = False

    def _decompress(self, data: bytes) -> None:
        decoder = self._decoder
        if decoder is None:  # pragma: no cover
            return
        pending = data
        while pending and not self.done and not decoder.eof:
            # One byte more than the room left, to tell "exactly at the cap" from "over it".
            room = self._cap - self.total
            out = decoder.decompress(pending, room + 1)
            pending = decoder.unconsumed_tail
            if not out:
                break
            self._accept(out)

    def _accept(self, data: bytes) -> None:
        room = self._cap - self.total
        if len(data) > room:
            data = data[:room]
            self.truncated = True
            self.done = True
        self.total += len(data)
        missing = self._keep - len(self._excerpt)
        if missing > 0:
            self._excerpt += data[:missing]


def _single_known_encoding(content_encoding: str | None) -> str | None:
    """'gzip' or 'deflate' when the body is encoded exactly once with one of them, else None."""
    if not content_encoding:
        return None
    codings = [part.strip().lower() for part in content_encoding.split(",") if part.strip().lower()]
    codings = [coding for coding in codings if coding != "identity"]
    if len(codings) != 1:
        return None  # none, stacked or unknown: the raw bytes are kept
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        return "gzip"
    if coding == "deflate":
        return "deflate"
    return None


# --------------------------------------------------------------------------------------------
# Error classification
# --------------------------------------------------------------------------------------------


_E = TypeVar("_E", bound=BaseException)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    for item in _causes(exc):
        if isinstance(item, kind):
            return item
    return None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    # aiohttp's ClientConnectorSSLError/CertificateError subclass ssl's errors; the real one is
    # their cause.
    for item in _causes(exc):
        if isinstance(item, ssl.SSLError) and not isinstance(item, aiohttp.ClientError):
            return item
    return None


def _tls_message(error: ssl.SSLError | None) -> str:
    if error is None:
        return "TLS handshake failed"
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"TLS certificate verification failed: {error.verify_message}"
    if isinstance(error.reason, str) and error.reason:
        return f"TLS handshake failed ({error.reason.lower()})"
    return "TLS handshake failed"


_CLOSED_EARLY: Final = "connection closed by the endpoint before a complete response"


def _classify(exc: Exception, timeout_seconds: float) -> tuple[ErrorClass, str]:
    blocked = _find(exc, DestinationBlockedError)
    if blocked is not None:
        return ErrorClass.BLOCKED, f"destination not allowed: {blocked.reason}"
    unresolved = _find(exc, DnsResolutionError)
    if unresolved is not None:
        return ErrorClass.DNS, str(unresolved)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorClass.TIMEOUT, "timed out connecting to the endpoint"
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT, f"no complete response within {timeout_seconds:g} s"
    tls_error = _ssl_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if tls_error is not None or isinstance(exc, aiohttp.ClientSSLError):
            return ErrorClass.TLS, _tls_message(tls_error)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return ErrorClass.DNS, "host could not be resolved"
        if _find(exc, ConnectionRefusedError) is not None:
            return ErrorClass.CONNECT, "connection refused by the endpoint"
        return ErrorClass.CONNECT, "could not connect to the endpoint"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorClass.RESET, _CLOSED_EARLY
    if isinstance(exc, aiohttp.ClientPayloadError):
        # aiohttp's wording when the connection is lost mid-body; otherwise the framing is bad.
        if "payload is not completed" in str(exc):
            return ErrorClass.RESET, _CLOSED_EARLY
        return ErrorClass.PROTOCOL, "malformed HTTP response from the endpoint"
    if isinstance(exc, aiohttp.ClientResponseError):
        # No raise_for_status: a ClientResponseError here is a response that did not parse.
        return ErrorClass.PROTOCOL, "malformed HTTP response from the endpoint"
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return ErrorClass.INVALID_URL, "invalid URL: unsupported scheme"
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorClass.INVALID_URL, "invalid URL: the URL cannot be requested"
    if isinstance(exc, aiohttp.ClientError) and tls_error is None:
        if isinstance(exc, aiohttp.ClientConnectionError):
            return ErrorClass.RESET, "connection closed or reset by the endpoint"
        return ErrorClass.PROTOCOL, "HTTP error while talking to the endpoint"
    if isinstance(exc, ValueError):  # aiohttp: control characters in a header; ours: bad names
        return ErrorClass.PROTOCOL, "the request could not be encoded (invalid header?)"
    if tls_error is not None:
        return ErrorClass.TLS, _tls_message(tls_error)
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return ErrorClass.RESET, "connection closed or reset by the endpoint"
    return ErrorClass.CONNECT, "network error while talking to the endpoint"


_HANDLED_ERRORS: Final = (
    DestinationBlockedError,
    DnsResolutionError,
    TimeoutError,
    aiohttp.ClientError,
    OSError,  # includes ssl.SSLError
    ValueError,  # invalid header (see _classify)
)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def _build_ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    if verify is False:
        raise ValueError("TLS certificate verification cannot be disabled")
    if isinstance(verify, ssl.SSLContext):
        if verify.verify_mode != ssl.CERT_REQUIRED or not verify.check_hostname:
            raise ValueError("the SSL context must verify certificates and host names")
        return verify
    if verify is True:
        context = ssl.create_default_context()  # the system trust store
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


@functools.lru_cache(maxsize=64)
def _client_timeout(timeout_seconds: float) -> aiohttp.ClientTimeout:
    # The total deadline is the caller's asyncio.timeout; aiohttp bounds each connect (TCP and
    # TLS handshake). Waiting for a free connection to the host counts only against the total.
    return aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_read=None,
        sock_connect=min(timeout_seconds, MAX_CONNECT_TIMEOUT_SECONDS),
        # Not rounded up to a whole second (aiohttp does that above the threshold, default 5 s).
        ceil_threshold=MAX_CONNECT_TIMEOUT_SECONDS,
    )


def _basic_auth(username: str, password: str | None) -> str:
    token = f"{username}:{password or ''}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


def _bounded(value: str | None) -> str | None:
    if value is None:
        return None
    return value[:MAX_HEADER_VALUE_CHARS]


def _span_url(parsed: ParsedUrl) -> str:
    """``url.full`` for the span: no user info, values of signed-URL query parameters redacted."""
    url = parsed.request_url()
    base, question, query = url.partition("?")
    if not question:
        return url
    parts = []
    for item in query.split("&"):
        name, equals, _value = item.partition("=")
        parts.append(f"{name}=REDACTED" if equals and name in _REDACTED_QUERY_PARAMS else item)
    return f"{base}?{'&'.join(parts)}"


class DeliveryHttpClient:
    """POSTs webhook attempts; one instance per worker, shared by all activities.

    The aiohttp sessions are opened on first use, inside the running event loop.
    """

    def __init__(
        self,
        *,
        policy: NetworkPolicy,
        resolver: Resolver,
        verify: ssl.SSLContext | str | bool = True,
        max_response_bytes: int = 65536,
        excerpt_bytes: int = 4096,
        max_connections_per_host: int = 8,
        user_agent: str = "Hookline-Webhooks/1.0",
    ) -> None:
        if max_response_bytes < 0 or excerpt_bytes < 0:
            raise ValueError("max_response_bytes and excerpt_bytes must not be negative")
        if max_connections_per_host < 1:
            raise ValueError("max_connections_per_host must be at least 1")
        self._policy = policy
        self._resolver = resolver
        self._ssl_context = _build_ssl_context(verify)
        self._max_response_bytes = max_response_bytes
        self._excerpt_bytes = min(excerpt_bytes, max_response_bytes)
        self._max_per_host = max_connections_per_host
        self._headers = {
            "User-Agent": user_agent,
            "Accept": "*/*",
            # Only what _BodyCollector can decode with a bounded output.
            "Accept-Encoding": "gzip, deflate",
        }
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def _open_session(self, scheme: str) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client has been closed")
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(scheme=scheme, policy=self._policy, resolver=self._resolver),
            use_dns_cache=False,
            ssl=self._ssl_context,
            # Pooled by aiohttp's connection key: (hostname, port, TLS or not, ...).
            limit=0,
            limit_per_host=self._max_per_host,
            keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            # aiohttp would label the bytes application/octet-stream; only the caller sets it.
            skip_auto_headers=("Content-Type",),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            trust_env=False,
        )
        self._sessions[scheme] = session
        return session

    def _request_headers(self, parsed: ParsedUrl, headers: Mapping[str, str]) -> dict[str, str]:
        merged: dict[str, str] = {}
        has_auth = False
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS:
                continue
            if _HEADER_NAME.fullmatch(name) is None:
                raise _InvalidHeaderError("invalid header name")
            has_auth = has_auth or lowered == "authorization"
            merged[name] = value
        # URL user info becomes Basic auth, unless the caller set Authorization explicitly.
        if parsed.username is not None and not has_auth:
            merged["Authorization"] = _basic_auth(parsed.username, parsed.password)
        return merged

    async def post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout_seconds: float,
    ) -> AttemptResult:
        """POST ``body`` to ``url``; never raises for receiver, network or URL faults."""
        if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise ValueError("timeout_seconds must be a positive number")
        started = time.perf_counter()
        try:
            parsed = parse_url(url, self._policy)
        except UrlRejectedError as exc:
            return self._result(started, ErrorClass.INVALID_URL, f"invalid URL: {exc.reason}")
        session = self._sessions.get(parsed.scheme)
        if session is None:
            session = self._open_session(parsed.scheme)

        span = _tracer.start_span("POST", kind=SpanKind.CLIENT)
        try:
            recording = span.is_recording()
            if recording:
                span.set_attributes(
                    {
                        "http.request.method": "POST",
                        "server.address": parsed.host,
                        "server.port": parsed.port,
                        "url.full": _span_url(parsed),
                    }
                )
            result = await self._send(
                session, parsed, headers, body, timeout_seconds, span, started
            )
            if recording:
                self._record_on_span(span, result)
            return result
        finally:
            span.end()

    async def _send(
        self,
        session: aiohttp.ClientSession,
        parsed: ParsedUrl,
        headers: Mapping[str, str],
        body: bytes,
        timeout_seconds: float,
        span: trace.Span,
        started: float,
    ) -> AttemptResult:
        status: int | None = None
        retry_after: str | None = None
        location: str | None = None
        collector: _BodyCollector | None = None
        try:
            async with asyncio.timeout(timeout_seconds):
                request_headers = self._request_headers(parsed, headers)
                if span.get_span_context().is_valid:
                    # traceparent: the receiver continues the trace from this span.
                    propagate.inject(request_headers, context=trace.set_span_in_context(span))
                if parsed.literal_ip is not None:
                    _check(parsed, [parsed.literal_ip], self._policy)  # never resolved by aiohttp
                response = await session.post(
                    parsed.request_url(),
                    data=body if len(body) <= _LARGE_BODY_BYTES else io.BytesIO(body),
                    headers=request_headers,
                    allow_redirects=False,
                    timeout=_client_timeout(timeout_seconds),
                )
                complete = False
                try:
                    status = response.status
                    retry_after = _bounded(response.headers.get("retry-after"))
                    if 300 <= status < 400:
                        location = _bounded(response.headers.get("location"))
                    collector = _BodyCollector(
                        response.headers.get("content-encoding"),
                        self._max_response_bytes,
                        self._excerpt_bytes,
                    )
                    complete = await self._read_body(response, collector)
                finally:
                    if complete:
                        response.release()  # back to the pool
                    else:
                        response.close()  # capped, timed out or failed: not drained
        except _HANDLED_ERRORS as exc:
            error_class, message = _classify(exc, timeout_seconds)
            logger.debug(
                "webhook attempt to %s failed: %s (%s)",
                parsed.redacted(),
                error_class.value,
                message,
            )
            return self._result(
                started,
                error_class,
                message,
                status=status,
                collector=collector,
                retry_after=retry_after,
                location=location,
            )
        return self._result(
            started,
            ErrorClass.NONE,
            "",
            status=status,
            collector=collector,
            retry_after=retry_after,
            location=location,
        )

    async def _read_body(self, response: aiohttp.ClientResponse, collector: _BodyCollector) -> bool:
        """Feed raw body chunks to ``collector`` until it is done; True if the body ended."""
        content = response.content
        if self._max_response_bytes == 0:
            return content.is_eof()
        while not collector.done:
            chunk = await content.readany()
            if not chunk:
                return True
            collector.feed(chunk)
        return content.is_eof()

    @staticmethod
    def _record_on_span(span: trace.Span, result: AttemptResult) -> None:
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        if result.error_class is not ErrorClass.NONE:
            span.set_attribute("error.type", result.error_class.value)
            span.set_status(StatusCode.ERROR, result.error_message)
        elif result.status_code is not None and result.status_code >= 400:
            span.set_attribute("error.type", str(result.status_code))
            span.set_status(StatusCode.ERROR)

    @staticmethod
    def _result(
        started: float,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        collector: _BodyCollector | None = None,
        retry_after: str | None = None,
        location: str | None = None,
    ) -> AttemptResult:
        return AttemptResult(
            status_code=status,
            error_class=error_class,
            error_message=message,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            response_excerpt=collector.excerpt if collector is not None else b"",
            response_bytes_read=collector.total if collector is not None else 0,
            truncated=collector.truncated if collector is not None else False,
            retry_after=retry_after,
            location=location,
        )
