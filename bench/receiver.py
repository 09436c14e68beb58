"""The benchmark's webhook receiver: a separate process on loopback, as fast as plain asyncio allows.

    python -m bench.receiver [--port 0]

Prints ``port <n>`` on its first stdout line once it listens on 127.0.0.1. Every POST is answered
at once and recorded as (webhook-id, path, time.time()): the id is the ``webhook-id`` header (the
event id for Hookline, the task id for Celery, the message id of the bare loop). Paths:

- ``/fail...`` answers ``500`` (used to park deliveries on backoff timers),
- anything else answers ``200``.

Control (plain GET, same port): ``/_stats`` → ``{"requests", "distinct", "duplicates"}``,
``/_dump`` → ``{"records": [[id, path, time], ...]}``, ``/_reset`` forgets everything. Records of
``/fail`` requests are counted apart (``failed_requests``, ``failed_distinct`` by id and path)
and not dumped.

It is HTTP/1.1 with keep-alive, Content-Length bodies only (every client here sends one), no
pipelining beyond what arrives in order on one connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import time

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
_FAIL = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nfail"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_MAX_HEAD = 64 * 1024


class Ledger:
    """What the receiver saw, in arrival order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, float]] = []
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.failed_requests = 0
        self.failed_seen: set[tuple[str, str]] = set()

    def add(self, webhook_id: str, path: str, when: float) -> None:
        key = (webhook_id, path)
        if key in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(key)
        self.records.append((webhook_id, path, when))

    def stats(self) -> dict[str, int]:
        return {
            "requests": len(self.records),
            "distinct": len(self.seen),
            "duplicates": self.duplicates,
            "failed_requests": self.failed_requests,
            "failed_distinct": len(self.failed_seen),
        }

    def reset(self) -> None:
        self.records.clear()
        self.seen.clear()
        self.duplicates = 0
        self.failed_requests = 0
        self.failed_seen.clear()


def _json_response(payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\ncontent-type: application/json\r\n\r\n"
    )
    return head.encode() + body


class ReceiverProtocol(asyncio.Protocol):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        transport = self._transport
        assert transport is not None
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    transport.write(_BAD)
                    transport.close()
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                transport.write(_BAD)
                transport.close()
                return
            method, target = parts[0], parts[1]
            length = 0
            webhook_id = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value.strip() or 0)
                elif lowered == "webhook-id":
                    webhook_id = value.strip()
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            del self._buffer[:total]
            transport.write(self._answer(method, target, webhook_id))

    def _answer(self, method: str, target: str, webhook_id: str) -> bytes:
        path = target.split("?", 1)[0]
        ledger = self._ledger
        if method == "GET":
            if path == "/_stats":
                return _json_response(ledger.stats())
            if path == "/_dump":
                return _json_response({"records": ledger.records})
            if path == "/_reset":
                ledger.reset()
                return _json_response({"reset": True})
            return _OK
        if path.startswith("/fail"):
            ledger.failed_requests += 1
            ledger.failed_seen.add((webhook_id, path))
            return _FAIL
        ledger.add(webhook_id, path, time.time())
        return _OK


async def serve(port: int) -> None:
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ReceiverProtocol(ledger), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"port {bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
