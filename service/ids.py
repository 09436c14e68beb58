"""Time-ordered ids (UUIDv7 layout) with a type prefix, so keyset pagination can order by id."""

from __future__ import annotations

import os
import re
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0

ID_PATTERN = re.compile(r"^(?P<prefix>[a-z]+)_(?P<hex>[0-9a-f]{32})$")


def _uuid7_hex() -> str:
    """48-bit millisecond time, then a 12-bit counter that keeps ids monotonic within a millisecond."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter >= 0x1000:
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return f"{value:032x}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{_uuid7_hex()}"


def is_valid_id(value: str, prefix: str) -> bool:
    match = ID_PATTERN.match(value)
    return match is not None and match.group("prefix") == prefix
