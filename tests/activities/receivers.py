"""A scriptable loopback webhook receiver for tests (plain HTTP/1.1 or TLS with a throwaway CA).

The receiver is a real server on 127.0.0.1 with an ephemeral port, running inside the test's event
loop. It records every request and answers with `ScriptedResponse`s chosen per test, including the
misbehaviours a webhook sender must survive: hanging, trickling one byte at a time, resetting the
connection, closing without an answer, huge or compressed bodies and redirects.

    ca = CertificateAuthority()
    async with LoopbackReceiver(tls=ca.server_context(["receiver.test"])) as receiver:
        receiver.route("/hook", ScriptedResponse(status=204))
        receiver.enqueue(ScriptedResponse(status=503, headers=[("Retry-After", "5")]))
        ...  # POST to receiver.url_for("receiver.test", "/hook") trusting ca.client_context()
        assert receiver.requests[0].header("webhook-id") == "msg_1"

Response selection: one-shot responses from `enqueue` first (any path, in order), then the
response or handler routed to the exact path, then `default`.
"""

from __future__ import annotations

import asyncio
import datetime
import http
import ipaddress
import itertools
import socket
import ssl
import struct
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateAuthority",
    "Handler",
    "LoopbackReceiver",
    "RecordedRequest",
    "ScriptedResponse",
    "unused_port",
]

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver saw it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    connection_id: int
    # The local address of the accepted socket: the address the client actually connected to.
    server_address: str
    # The SNI name the client sent in its TLS ClientHello (None for plain HTTP or no SNI).
    tls_server_name: str | None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """First value of a header, case-insensitively; None when absent."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True)
class ScriptedResponse:
    """What the receiver does with one request."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    # Transfer-Encoding: chunked instead of Content-Length.
    chunked: bool = False
    chunk_size: int = 16 * 1024
    # Seconds to wait before sending anything (a receiver that hangs).
    delay_seconds: float = 0.0
    # Send the whole response (status line included) one byte per interval: slow loris.
    trickle_interval: float | None = None
    # Send status line and headers at once, then the body one byte per interval.
    trickle_body_interval: float | None = None
    # Read the request, then reset the connection (TCP RST) without answering.
    reset: bool = False
    # Read the request, then close the connection cleanly without answering.
    close_without_response: bool = False
    # Close the connection after this response.
    close_after: bool = False

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> ScriptedResponse:
        return cls(status=status, headers=[("Location", location)])

    @property
    def keeps_connection(self) -> bool:
        return not (
            self.close_after
            or self.reset
            or self.close_without_response
            or self.trickle_interval is not None
            or self.trickle_body_interval is not None
        )


Handler = Callable[[RecordedRequest], "ScriptedResponse | Awaitable[ScriptedResponse]"]


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


class LoopbackReceiver:
    """HTTP/1.1 server on 127.0.0.1:<ephemeral> that records requests and plays scripted answers."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, url_host: str | None = None) -> None:
        self._tls = tls
        self._url_host = url_host or ("receiver.test" if tls is not None else "127.0.0.1")
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._queue: deque[ScriptedResponse | Handler] = deque()
        self._routes: dict[str, ScriptedResponse | Handler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._sni_by_object: dict[int, str | None] = {}
        self._connection_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self.default: ScriptedResponse | Handler = ScriptedResponse()
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.sni_names: list[str | None] = []

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> Self:
        if self._tls is not None:
            self._tls.sni_callback = self._record_sni
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addressing -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def url(self) -> str:
        """Base URL with the default host (receiver.test for TLS, 127.0.0.1 otherwise)."""
        return self.url_for(self._url_host)

    def url_for(self, host: str, path: str = "/", *, userinfo: str = "") -> str:
        netloc = f"[{host}]" if ":" in host else host
        if userinfo:
            netloc = f"{userinfo}@{netloc}"
        return f"{self.scheme}://{netloc}:{self.port}{path}"

    # -- scripting --------------------------------------------------------------------------

    def enqueue(self, *responses: ScriptedResponse | Handler) -> None:
        """One-shot responses used in order by the next requests, whatever their path."""
        self._queue.extend(responses)

    def route(self, path: str, response: ScriptedResponse | Handler) -> None:
        """A sticky response (or handler) for one exact path (query string ignored)."""
        self._routes[path] = response

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least `count` requests arrived; returns them."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.requests)

    # -- internals --------------------------------------------------------------------------

    def _record_sni(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        self.sni_names.append(name)
        self._sni_by_object[id(ssl_object)] = name

    async def _pick(self, request: RecordedRequest) -> ScriptedResponse:
        if self._queue:
            chosen = self._queue.popleft()
        else:
            chosen = self._routes.get(request.path, self.default)
        if isinstance(chosen, ScriptedResponse):
            return chosen
        outcome = chosen(request)
        if isinstance(outcome, ScriptedResponse):
            return outcome
        return await outcome

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        connection_id = next(self._connection_ids)
        sockname = writer.get_extra_info("sockname")
        server_address = str(sockname[0]) if sockname else ""
        ssl_object = writer.get_extra_info("ssl_object")
        sni = self._sni_by_object.pop(id(ssl_object), None) if ssl_object is not None else None
        self._changed.set()
        try:
            while True:
                request = await self._read_request(reader, connection_id, server_address, sni)
                if request is None:
                    break
                self.requests.append(request)
                self._changed.set()
                response = await self._pick(request)
                await self._respond(writer, response)
                if not response.keeps_connection:
                    break
        except (
            OSError,
            EOFError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # the client went away or sent garbage: nothing to record
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _read_request(
        self,
        reader: asyncio.StreamReader,
        connection_id: int,
        server_address: str,
        sni: str | None,
    ) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise
        if len(head) > _MAX_HEAD_BYTES:
            raise ValueError("request head too large")
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        lowered = {name.lower(): value for name, value in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            length = int(lowered.get("content-length", "0"))
            if length > _MAX_BODY_BYTES:
                raise ValueError("request body too large")
            body = await reader.readexactly(length) if length else b""
        return RecordedRequest(
            method=method,
            target=target,
            headers=tuple(headers),
            body=body,
            connection_id=connection_id,
            server_address=server_address,
            tls_server_name=sni,
        )

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (if any) end with an empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY_BYTES:
                raise ValueError("request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    @staticmethod
    def _encode(response: ScriptedResponse) -> tuple[bytes, bytes]:
        try:
            reason = http.HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
        headers = list(response.headers)
        names = {name.lower() for name, _ in headers}
        if response.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
            pieces = [
                response.body[i : i + response.chunk_size]
                for i in range(0, len(response.body), response.chunk_size)
            ]
            body = (
                b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
            )
        else:
            if "content-length" not in names:
                headers.append(("Content-Length", str(len(response.body))))
            body = response.body
        if not response.keeps_connection and "connection" not in names:
            headers.append(("Connection", "close"))
        head = f"HTTP/1.1 {response.status} {reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        return head.encode("latin-1"), body

    async def _respond(self, writer: asyncio.StreamWriter, response: ScriptedResponse) -> None:
        if response.delay_seconds:
            await asyncio.sleep(response.delay_seconds)
        if response.reset:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if response.close_without_response:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
            await writer.drain()
            return
        head, body = self._encode(response)
        if response.trickle_interval is not None:
            await self._trickle(writer, head + body, response.trickle_interval)
            return
        writer.write(head)
        await writer.drain()
        if response.trickle_body_interval is not None:
            await self._trickle(writer, body, response.trickle_body_interval)
            return
        for offset in range(0, len(body), 64 * 1024):
            writer.write(body[offset : offset + 64 * 1024])
            await writer.drain()

    @staticmethod
    async def _trickle(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
        for index in range(len(data)):
            writer.write(data[index : index + 1])
            await writer.drain()
            await asyncio.sleep(interval)


@dataclass
class _Issued:
    cert_pem: bytes
    key_pem: bytes


@dataclass
class CertificateAuthority:
    """A throwaway CA generated in memory at test time (EC P-256, valid for a day)."""

    common_name: str = "Hookline Test CA"
    _key: ec.EllipticCurvePrivateKey = field(init=False, repr=False)
    _cert: x509.Certificate = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)])
        now = datetime.datetime.now(datetime.UTC)
        public_key = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, hostnames: Iterable[str], *, expired: bool = False) -> _Issued:
        """A server certificate for the given DNS names / IP literals."""
        names = list(hostnames)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            not_before, not_after = (
                now - datetime.timedelta(days=3),
                now - datetime.timedelta(days=1),
            )
        else:
            not_before, not_after = (
                now - datetime.timedelta(hours=1),
                now + datetime.timedelta(days=1),
            )
        alt_names: list[x509.GeneralName] = []
        for host in names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt_names.append(x509.DNSName(host))
        ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return _Issued(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def server_context(
        self,
        hostnames: Iterable[str] = ("localhost", "receiver.test", "127.0.0.1"),
        *,
        expired: bool = False,
    ) -> ssl.SSLContext:
        """A server-side TLS context presenting a fresh certificate signed by this CA."""
        issued = self.issue(hostnames, expired=expired)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain only reads files; they live just long enough to be loaded.
        with tempfile.TemporaryDirectory(prefix="hookline-test-tls-") as directory:
            cert_path = Path(directory) / "server.pem"
            key_path = Path(directory) / "server.key"
            cert_path.write_bytes(issued.cert_pem + self.cert_pem)
            key_path.write_bytes(issued.key_pem)
            ctx.load_cert_chain(cert_path, key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA only."""
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))

    def write_bundle(self, directory: Path) -> Path:
        """Write the CA certificate as a PEM bundle file (for `verify=<path>`)."""
        path = directory / "test-ca.pem"
        path.write_bytes(self.cert_pem)
        return path
