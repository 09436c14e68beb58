"""Batcher: concurrent callers share a batch, a lone caller goes at once, a bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from service.batching import Batcher


class Recorder:
    def __init__(self, *, bad: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.singles: list[int] = []
        self.bad = bad

    async def write_batch(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)  # a real batch awaits its database round trip
        if self.bad in items:
            raise ValueError("one bad item spoils the batch")
        return [item * 10 for item in items]

    async def write_one(self, item: int) -> int:
        self.singles.append(item)
        if item == self.bad:
            raise ValueError(f"{item} is bad")
        return item * 10


async def test_a_lone_caller_is_written_at_once() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.write_batch, recorder.write_one)
    assert await batcher.submit(1) == 10
    assert await batcher.submit(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_callers_arriving_together_share_batches_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.write_batch, recorder.write_one, max_batch=4)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert [i for batch in recorder.batches for i in batch] == list(range(10))
    assert len(recorder.batches) == 3
    assert max(len(batch) for batch in recorder.batches) == 4
    assert recorder.singles == []


async def test_a_failing_batch_is_retried_item_by_item_so_only_the_bad_item_fails() -> None:
    recorder = Recorder(bad=3)
    batcher = Batcher(recorder.write_batch, recorder.write_one)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]
    assert sorted(recorder.singles) == sorted({i for b in recorder.batches if 3 in b for i in b})
    # The batcher keeps working after a failure.
    assert await batcher.submit(7) == 70


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.write_batch, recorder.write_one)
    first = asyncio.ensure_future(batcher.submit(1))
    second = asyncio.ensure_future(batcher.submit(2))
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 20
