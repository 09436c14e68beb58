"""CPU time and memory of processes, read from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """user+sys seconds of a process (all its threads) and of its reaped children."""

    own: float
    children: float

    @property
    def total(self) -> float:
        return self.own + self.children


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may contain spaces; fields after it are fixed.
    return text[text.rindex(")") + 2 :].split()


def cpu(pid: int) -> CpuSample | None:
    """None when the process is gone."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return CpuSample(own=(utime + stime) / _TICKS, children=(cutime + cstime) / _TICKS)


def ppid(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children (any session), by scanning /proc."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ppid(int(entry)) == pid:
            found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    frontier = [pid]
    while frontier:
        nxt: list[int] = []
        for p in frontier:
            kids = children(p)
            out.extend(kids)
            nxt.extend(kids)
        frontier = nxt
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb(pid: int) -> float | None:
    """High-water mark of the resident set since start or the last `reset_peak`."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (writing 5 to clear_refs; needs ownership or root)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def find_pid(name: str) -> int | None:
    """The first process whose comm is `name` (e.g. redis-server), or None."""
    for entry in sorted(os.listdir("/proc")):
        if entry.isdigit() and comm(int(entry)) == name:
            return int(entry)
    return None


class Meter:
    """CPU seconds and peak RSS of named processes between `start()` and `stop()`.

    A process that dies during the window is counted up to its last sample; call `sample()` now
    and then (the runner does, every half second) so that little is missed.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = dict(pids)
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._peak: dict[str, float] = {}
        self._banked: dict[str, float] = {}

    def start(self) -> None:
        for name, pid in self._pids.items():
            reset_peak(pid)
            sample = cpu(pid)
            self._first[name] = sample.own if sample else 0.0
            self._last[name] = self._first[name]
            self._peak[name] = rss_mb(pid) or 0.0
            self._banked[name] = 0.0

    def replace(self, name: str, pid: int) -> None:
        """The process `name` was restarted as `pid`: bank what the old one used, go on."""
        self.sample()
        self._banked[name] = self._banked.get(name, 0.0) + self._last[name] - self._first[name]
        self._pids[name] = pid
        sample = cpu(pid)
        self._first[name] = self._last[name] = sample.own if sample else 0.0

    def sample(self) -> None:
        for name, pid in self._pids.items():
            sample = cpu(pid)
            if sample is not None:
                self._last[name] = sample.own
            peak = peak_rss_mb(pid)
            if peak is not None:
                self._peak[name] = max(self._peak.get(name, 0.0), peak)

    def stop(self) -> tuple[dict[str, float], dict[str, float]]:
        """(cpu seconds by process, peak RSS MB by process)."""
        self.sample()
        used = {
            name: self._banked.get(name, 0.0) + self._last[name] - self._first[name]
            for name in self._pids
        }
        return used, dict(self._peak)
