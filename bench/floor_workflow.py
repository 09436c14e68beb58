"""The Temporal floor's workflow: one no-op activity, nothing else (loaded into the sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

NOOP_ACTIVITY = "bench_noop"


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    @workflow.run
    async def run(self, n: int) -> None:
        await workflow.execute_activity(
            NOOP_ACTIVITY, n, start_to_close_timeout=timedelta(seconds=60)
        )
