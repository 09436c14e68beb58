"""Child processes of the benchmark and the receiver's control client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench import procstat

PYTHON = sys.executable
BIN = Path(sys.executable).parent
# The repository root: children run from here so `-m bench.x` imports work.
ROOT = Path(__file__).resolve().parent.parent


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without HOOKLINE_* and OTEL_* settings of the caller, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOOKLINE_", "OTEL_", "BENCH_CELERY_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


class Child:
    """One subprocess, its output in a log file (or a pipe for handshakes), killed on close."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path | None) -> None:
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @classmethod
    async def start(
        cls,
        name: str,
        args: Sequence[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        pipe: bool = False,
        new_session: bool = True,
    ) -> Child:
        """With `pipe`, stdout is a pipe (handshake lines, JSON result) and stderr goes to `log`."""
        handle = log.open("ab") if log is not None else None
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                env=env if env is not None else child_env(),
                stdin=asyncio.subprocess.PIPE if pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipe else (handle or asyncio.subprocess.DEVNULL),
                stderr=handle or asyncio.subprocess.DEVNULL,
                start_new_session=new_session,
                limit=64 * 1024 * 1024,
            )
        finally:
            if handle is not None:
                handle.close()
        return cls(name, process, log)

    async def readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited early{self.tail()}")
        return line.decode().rstrip("\n")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        while (line := await self.readline(timeout)) != "ready":
            if line.startswith("{"):
                raise RuntimeError(f"{self.name} answered before it was ready: {line[:200]}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def result(self, timeout: float) -> dict[str, Any]:
        """The last stdout line, parsed as JSON, once the child exits."""
        assert self.process.stdout is not None
        out = await asyncio.wait_for(self.process.stdout.read(), timeout)
        await asyncio.wait_for(self.process.wait(), timeout=10)
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"{self.name} printed no result{self.tail()}")
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed

    def tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {self.log}:\n" + "\n".join(text)

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the process and every descendant (whatever session they are in)."""
        if not self.alive:
            return
        for pid in [*procstat.descendants(self.pid), self.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL of the whole tree if it lingers. Idempotent."""
        if self.alive:
            kids = procstat.descendants(self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill_tree()
                await self.process.wait()
            for pid in kids:  # e.g. a dev server left behind by a killed parent
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5)


@contextlib.asynccontextmanager
async def children() -> AsyncIterator[list[Child]]:
    """A list to register children in; every one is stopped on exit, whatever happened."""
    registry: list[Child] = []
    try:
        yield registry
    finally:
        for child in reversed(registry):
            with contextlib.suppress(Exception):
                await child.stop()


class ReceiverClient:
    """Talks to bench.receiver's control paths."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def _get(self, path: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        async with self._session.get(self.url(path)) as response:
            data: dict[str, Any] = await response.json(content_type=None)
            return data

    async def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self._get("/_stats")).items()}

    async def dump(self) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], float(r[2])) for r in (await self._get("/_dump"))["records"]]

    async def reset(self) -> None:
        await self._get("/_reset")

    async def wait_for(self, distinct: int, deadline: float, on_tick: Any = None) -> int:
        """Wait until `distinct` deliveries arrived or the deadline passes; returns what arrived."""
        seen = 0
        while time.monotonic() < deadline:
            seen = (await self.stats())["distinct"]
            if on_tick is not None:
                on_tick(seen)
            if seen >= distinct:
                return seen
            await asyncio.sleep(0.1)
        return seen

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def start_receiver(log: Path) -> tuple[Child, ReceiverClient]:
    child = await Child.start(
        "receiver", [PYTHON, "-m", "bench.receiver"], log=log, pipe=True, new_session=True
    )
    line = await child.readline(30)
    if not line.startswith("port "):
        raise RuntimeError(f"receiver said {line!r}")
    return child, ReceiverClient(int(line.split()[1]))
