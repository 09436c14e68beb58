"""Concurrent callers share one batch: one transaction for publishes, one query for loads.

On SQLite every transaction costs a few milliseconds of round trips through one connection, which
capped publishing near 240 events/s and cost each delivery attempt about 10 ms of CPU in its load
and its record; one round trip per batch lets the rate grow with concurrency while a lone caller
still goes at once (it waits for at most the batch already in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("hookline.batching")

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class Batcher(Generic[Item, Result]):
    """Runs `write_batch` over whatever has queued up, one batch at a time, and hands each caller
    its own result. If a batch fails, each of its items is retried alone with `write_one`, so one
    bad item (say, an idempotency race lost to another replica) cannot fail its neighbours."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Awaitable[list[Result]]],
        write_one: Callable[[Item], Awaitable[Result]],
        *,
        max_batch: int = 256,
    ) -> None:
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_batch = max_batch
        self._queue: list[_Pending[Item, Result]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                results = await self._write_batch([p.item for p in batch])
            except Exception:
                log.warning("a batch of %d failed; writing its items one by one", len(batch))
                for pending in batch:
                    await self._settle_alone(pending)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _settle_alone(self, pending: _Pending[Item, Result]) -> None:
        try:
            result = await self._write_one(pending.item)
        except Exception as error:
            if not pending.future.done():
                pending.future.set_exception(error)
            return
        if not pending.future.done():
            pending.future.set_result(result)
