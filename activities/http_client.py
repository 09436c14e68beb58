"""The HTTP client that POSTs one signed webhook attempt (reliability checklist B.3 and B.4).

Guarantees, each covered by tests/activities/test_http_client.py against a real loopback receiver:

* SSRF check at connect time, pinned. The URL is parsed by ``service.ssrf.parse_url`` before
  anything is sent. Resolution and the address check then happen inside the connection path
  (a custom httpcore network backend): the host is resolved with the injected ``Resolver``, the
  whole answer is checked with ``service.ssrf.check_addresses`` (one forbidden address rejects
  the target), and the socket connects to exactly one of the checked addresses. The Host header,
  TLS SNI and certificate verification keep the hostname. Nothing resolves the name again, so
  DNS rebinding cannot slip in between check and connect.
* Connection pooling is keyed by (scheme, hostname, port): a connection is never reused for a
  different hostname, even one resolving to the same address.
* No proxies (``trust_env=False``: ``HTTP(S)_PROXY`` cannot route around the check), no redirects
  (a 3xx is a failed attempt carrying its status and Location), HTTP/1.1 only.
* A hard total deadline (``timeout_seconds``) around connect, send and reading the response, so a
  receiver trickling one byte at a time cannot hold the worker; plus a connect timeout of
  ``min(timeout_seconds, 10)``.
* The response body is streamed and capped after decompression (gzip/deflate decoded here with
  bounded output, so a gzip bomb never expands past the cap); the first ``excerpt_bytes`` are kept
  and the response is closed, not drained.
* TLS verification is always on; only the trust anchors can be changed (a CA bundle path or an
  ``ssl.SSLContext``, e.g. a test CA). ``verify=False`` is refused.
* Receiver and network faults never raise: they come back as an ``AttemptResult`` with an
  ``ErrorClass`` and a short message that is safe to show to the endpoint's owner. URL user info
  becomes Basic auth and appears in no result, message or log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import email.utils
import ipaddress
import logging
import math
import os
import ssl
import time
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Final, Self, TypeVar, cast

import httpcore
import httpx
from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

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

MAX_CONNECT_TIMEOUT_SECONDS: Final = 10.0
# Idle keep-alive connections are dropped before common server idle timeouts (Node.js: 5 s), so a
# pooled connection is rarely reused just as the receiver closes it.
KEEPALIVE_EXPIRY_SECONDS: Final = 4.0
MAX_KEEPALIVE_CONNECTIONS: Final = 100
# Header values kept in results are bounded: they end up in workflow history and the store.
MAX_HEADER_VALUE_CHARS: Final = 2048
# Set by this client, never taken from the caller's headers.
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


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
# Connection path: resolve, check, connect to a checked address
# --------------------------------------------------------------------------------------------


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class _PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves with the injected resolver, checks every address, connects to a checked one.

    One backend per scheme, because plain http is only allowed when every address is inside
    the operator allow-list (``check_addresses`` needs to know the scheme).
    """

    def __init__(self, *, scheme: str, policy: NetworkPolicy, resolver: Resolver) -> None:
        self._scheme = scheme
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int, limit: float | None) -> list[IPAddress]:
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(limit):
                answer = await self._resolver.resolve(host, port)
        except TimeoutError:
            raise DnsResolutionError("host resolution timed out") from None
        except ResolutionError:
            raise DnsResolutionError("host could not be resolved") from None
        return list(dict.fromkeys(answer))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self._resolve(host, port, timeout)
        target = ParsedUrl(
            scheme=self._scheme,
            host=host,
            port=port,
            literal_ip=_ip_literal(host),
            username=None,
            password=None,
        )
        try:
            check_addresses(target, addresses, self._policy)
        except UrlRejectedError as exc:
            raise DestinationBlockedError(exc.reason) from None
        # Every address passed the check; connect to the first one that answers. The address
        # is passed as a literal, so nothing below resolves the name again.
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout("connect timed out")
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        if failure is None:  # pragma: no cover - check_addresses refuses an empty answer
            raise DestinationBlockedError("host has no addresses")
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationBlockedError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore exception -> httpx exception, most specific first (as httpx's own transport maps).
_EXCEPTION_MAP: Final[tuple[tuple[type[Exception], type[httpx.HTTPError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _map_httpcore_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTION_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not isinstance(self._stream, AsyncIterable):  # pragma: no cover
            raise TypeError("httpcore returned a synchronous stream")
        with _map_httpcore_exceptions():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class _PinnedTransport(httpx.AsyncBaseTransport):
    """Maps httpx requests onto httpcore pools whose network backends pin checked addresses."""

    def __init__(
        self, *, policy: NetworkPolicy, resolver: Resolver, ssl_context: ssl.SSLContext
    ) -> None:
        self._pools = {
            scheme: httpcore.AsyncConnectionPool(
                ssl_context=ssl_context,
                # Per-host limits are enforced by DeliveryHttpClient; the pool keys connections
                # by origin (scheme, hostname, port), so no connection crosses hostnames.
                max_connections=None,
                max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
                http1=True,
                http2=False,
                retries=0,
                network_backend=_PinnedNetworkBackend(
                    scheme=scheme, policy=policy, resolver=resolver
                ),
            )
            for scheme in ("https", "http")
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pools.get(request.url.scheme)
        if pool is None:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {request.url.scheme!r}")
        if not isinstance(request.stream, httpx.AsyncByteStream):  # pragma: no cover
            raise TypeError("an async request body is required")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _map_httpcore_exceptions():
            response = await pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


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


def _tls_message(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"TLS certificate verification failed: {error.verify_message}"
    if isinstance(error.reason, str) and error.reason:
        return f"TLS handshake failed ({error.reason.lower()})"
    return "TLS handshake failed"


def _classify(exc: Exception, timeout_seconds: float) -> tuple[ErrorClass, str]:
    if isinstance(exc, DestinationBlockedError):
        return ErrorClass.BLOCKED, f"destination not allowed: {exc.reason}"
    if isinstance(exc, DnsResolutionError):
        return ErrorClass.DNS, str(exc)
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT, f"no complete response within {timeout_seconds:g} s"
    tls_error = _find(exc, ssl.SSLError)
    if isinstance(exc, httpx.ConnectTimeout):
        return ErrorClass.TIMEOUT, "timed out connecting to the endpoint"
    if isinstance(exc, httpx.TimeoutException):
        return ErrorClass.TIMEOUT, f"no complete response within {timeout_seconds:g} s"
    if isinstance(exc, httpx.ConnectError):
        if tls_error is not None:
            return ErrorClass.TLS, _tls_message(tls_error)
        if _find(exc, ConnectionRefusedError) is not None:
            return ErrorClass.CONNECT, "connection refused by the endpoint"
        return ErrorClass.CONNECT, "could not connect to the endpoint"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.NetworkError):
        return ErrorClass.RESET, "connection closed or reset by the endpoint"
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "disconnected" in text or "peer closed" in text:
            # httpcore/h11 wording for a connection closed before the response was complete.
            return ErrorClass.RESET, "connection closed by the endpoint before a complete response"
        return ErrorClass.PROTOCOL, "malformed HTTP response from the endpoint"
    if isinstance(exc, httpx.LocalProtocolError):
        return ErrorClass.PROTOCOL, "the request could not be encoded (invalid header?)"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ErrorClass.INVALID_URL, "invalid URL: unsupported scheme"
    if isinstance(exc, httpx.HTTPError):
        return ErrorClass.PROTOCOL, "HTTP error while talking to the endpoint"
    if tls_error is not None:
        return ErrorClass.TLS, _tls_message(tls_error)
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return ErrorClass.RESET, "connection closed or reset by the endpoint"
    return ErrorClass.CONNECT, "network error while talking to the endpoint"


_HANDLED_ERRORS: Final = (
    DestinationBlockedError,
    DnsResolutionError,
    TimeoutError,
    httpx.HTTPError,
    OSError,  # includes ssl.SSLError
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
        context = httpx.create_ssl_context(verify=True, trust_env=False)
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


def _basic_auth(username: str, password: str | None) -> str:
    token = f"{username}:{password or ''}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


def _bounded(value: str | None) -> str | None:
    if value is None:
        return None
    return value[:MAX_HEADER_VALUE_CHARS]


@dataclass
class _HostSlots:
    semaphore: asyncio.Semaphore
    users: int = 0


class DeliveryHttpClient:
    """POSTs webhook attempts; one instance per worker, shared by all activities."""

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
        self._max_response_bytes = max_response_bytes
        self._excerpt_bytes = min(excerpt_bytes, max_response_bytes)
        self._max_per_host = max_connections_per_host
        self._slots: dict[tuple[str, str, int], _HostSlots] = {}
        self._transport = _PinnedTransport(
            policy=policy, resolver=resolver, ssl_context=_build_ssl_context(verify)
        )
        self._client = httpx.AsyncClient(
            # Client spans, and `traceparent` on the POST so a receiver can continue the trace.
            transport=AsyncOpenTelemetryTransport(self._transport),
            trust_env=False,
            follow_redirects=False,
            headers={
                "User-Agent": user_agent,
                "Accept": "*/*",
                # Only what _BodyCollector can decode with a bounded output.
                "Accept-Encoding": "gzip, deflate",
            },
        )

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
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def _host_slot(self, key: tuple[str, str, int]) -> AsyncGenerator[None, None]:
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = _HostSlots(asyncio.Semaphore(self._max_per_host))
        slots.users += 1
        try:
            async with slots.semaphore:
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._slots[key]

    def _request_headers(self, parsed: ParsedUrl, headers: Mapping[str, str]) -> dict[str, str]:
        merged = {
            name: value for name, value in headers.items() if name.lower() not in _RESERVED_HEADERS
        }
        has_auth = any(name.lower() == "authorization" for name in merged)
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

        timeout = httpx.Timeout(
            timeout_seconds, connect=min(timeout_seconds, MAX_CONNECT_TIMEOUT_SECONDS)
        )
        request = self._client.build_request(
            "POST",
            parsed.request_url(),
            headers=self._request_headers(parsed, headers),
            content=body,
            timeout=timeout,
        )
        status: int | None = None
        retry_after: str | None = None
        location: str | None = None
        collector: _BodyCollector | None = None
        try:
            async with asyncio.timeout(timeout_seconds):
                async with self._host_slot((parsed.scheme, parsed.host, parsed.port)):
                    response = await self._client.send(request, stream=True)
                    try:
                        status = response.status_code
                        retry_after = _bounded(response.headers.get("retry-after"))
                        if 300 <= status < 400:
                            location = _bounded(response.headers.get("location"))
                        collector = _BodyCollector(
                            response.headers.get("content-encoding"),
                            self._max_response_bytes,
                            self._excerpt_bytes,
                        )
                        await self._read_body(response, collector)
                    finally:
                        await response.aclose()
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

    async def _read_body(self, response: httpx.Response, collector: _BodyCollector) -> None:
        if self._max_response_bytes == 0:
            return
        chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                collector.feed(chunk)
                if collector.done:
                    break

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
