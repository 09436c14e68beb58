"""The physical limit: a bare signed-POST loop (aiohttp, one process, no durability).

    python -m bench.bare --url http://127.0.0.1:PORT/bare --count N [--concurrency C | --rate R]

Signs each request exactly as Hookline's attempt does (same envelope, same headers), says
``ready``, waits for a line on stdin, then sends. Prints one JSON line: send times by message id,
errors, and its own CPU seconds and peak RSS over the sending window.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aiohttp

from bench.common import emit, self_cpu_seconds, self_peak_rss_mb, signed_request, wait_for_go


async def run(url: str, count: int, concurrency: int, rate: float | None) -> None:
    ids = [f"msg_{uuid.uuid4().hex}" for _ in range(count)]
    sent: dict[str, float] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(msg_id: str) -> None:
            nonlocal errors
            sent[msg_id] = time.time()
            body, headers = signed_request(msg_id)
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        await asyncio.to_thread(wait_for_go)
        cpu0 = self_cpu_seconds()
        started = time.time()
        if rate is None:
            queue = iter(ids)

            async def lane() -> None:
                for msg_id in queue:
                    await post(msg_id)

            await asyncio.gather(*(lane() for _ in range(concurrency)))
        else:
            tasks: list[asyncio.Task[None]] = []
            t0 = time.monotonic()
            for n, msg_id in enumerate(ids):
                delay = t0 + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(msg_id)))
            await asyncio.gather(*tasks)
        finished = time.time()
        cpu = self_cpu_seconds() - cpu0
    emit(
        {
            "sent": sent,
            "errors": errors,
            "started": started,
            "finished": finished,
            "cpu_s": cpu,
            "peak_rss_mb": self_peak_rss_mb(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.count, args.concurrency, args.rate))


if __name__ == "__main__":
    main()
