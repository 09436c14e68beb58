"""One delivery (one event to one endpoint) as a durable workflow: attempt, back off, repeat."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities
    from workflows import search_attributes
    from workflows.types import (
        CANCELED,
        FINAL_STATUSES,
        PENDING,
        SUCCEEDED,
        AttemptInput,
        AttemptOutcome,
        DeliveryInput,
        DeliveryState,
        FinishInput,
    )

# An attempt is bounded by the endpoint's timeout (at most 30 s) plus store work; past this a
# crashed worker's attempt is retried on another worker.
ATTEMPT_TIMEOUT = timedelta(seconds=60)
# The attempt heartbeats every 2 s while it waits on the receiver.
ATTEMPT_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Retries of the activity itself (store or worker trouble), not of the HTTP attempt: the receiver's
# answer always comes back as an outcome, so these never count against the endpoint's policy.
INFRASTRUCTURE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)


# The local fast path gives up quickly and hands the attempt to a regular activity.
LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)


@workflow.defn(name="Delivery")
class DeliveryWorkflow:
    def __init__(self) -> None:
        self._state = DeliveryState(delivery_id="")
        self._retry_now = False
        self._cancel = False

    @workflow.run
    async def run(self, request: DeliveryInput) -> DeliveryState:
        self._state.delivery_id = request.delivery_id
        number = request.first_attempt
        while self._state.status == PENDING:
            if self._cancel:
                await self._finish(CANCELED)
                break
            self._retry_now = False
            self._state.next_attempt_time = None
            self._state.attempt_times.append(workflow.now())
            outcome = await self._attempt(
                AttemptInput(delivery_id=request.delivery_id, number=number, manual=request.manual),
                local=number == request.first_attempt,
            )
            self._record(outcome)
            # A retry asked for while this attempt ran is answered by it; it must not also skip
            # the next backoff.
            self._retry_now = False
            if self._state.status != PENDING:
                break
            if self._cancel:
                await self._finish(CANCELED)
                break
            delay = timedelta(seconds=outcome.next_delay_seconds or 0.0)
            self._state.next_attempt_time = workflow.now() + delay
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._retry_now or self._cancel,
                    timeout=delay,
                    timeout_summary="backoff",
                )
            number += 1
        self._state.next_attempt_time = None
        succeeded_at_once = self._state.status == SUCCEEDED and number == request.first_attempt
        if request.version < 2 or not succeeded_at_once:
            workflow.upsert_search_attributes(
                [search_attributes.STATUS.value_set(self._state.status)]
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _attempt(self, attempt: AttemptInput, *, local: bool) -> AttemptOutcome:
        """The first attempt runs as a local activity: a delivery that succeeds at once costs one
        workflow task and a marker instead of a second task and three activity events. Later
        attempts are regular activities, each with its own scheduled/started/completed events."""
        if local:
            try:
                outcome: AttemptOutcome = await workflow.execute_local_activity_method(
                    DeliveryActivities.attempt,
                    attempt,
                    start_to_close_timeout=ATTEMPT_TIMEOUT,
                    retry_policy=LOCAL_RETRY,
                    summary=f"attempt {attempt.number}",
                )
                return outcome
            except ActivityError:
                # Store or worker trouble: leave the fast path (a local activity retrying
                # forever would hold the workflow task, and a worker's shutdown, hostage).
                pass
        return await workflow.execute_activity_method(
            DeliveryActivities.attempt,
            attempt,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            heartbeat_timeout=ATTEMPT_HEARTBEAT_TIMEOUT,
            retry_policy=INFRASTRUCTURE_RETRY,
            summary=f"attempt {attempt.number}",
        )

    def _record(self, outcome: AttemptOutcome) -> None:
        self._state.attempts = outcome.number
        self._state.status = outcome.status
        self._state.last_status_code = outcome.status_code
        self._state.last_error = outcome.error_class

    async def _finish(self, status: str) -> None:
        await workflow.execute_activity_method(
            DeliveryActivities.finish,
            FinishInput(delivery_id=self._state.delivery_id, status=status),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=INFRASTRUCTURE_RETRY,
        )
        self._state.status = status

    @workflow.query
    def state(self) -> DeliveryState:
        return self._state

    @workflow.signal
    def request_cancel(self) -> None:
        """Fire-and-forget cancel, used when an endpoint is disabled or deleted."""
        self._cancel = True

    @workflow.update
    async def retry_now(self) -> DeliveryState:
        """Skip the rest of the backoff; answers once that attempt has finished."""
        before = self._state.attempts
        self._retry_now = True
        await workflow.wait_condition(
            lambda: self._state.attempts > before or self._state.status in FINAL_STATUSES
        )
        return self._state

    @retry_now.validator
    def _validate_retry_now(self) -> None:
        if self._state.status in FINAL_STATUSES or self._cancel:
            raise ApplicationError(f"delivery is {self._state.status}", type="NotPending")

    @workflow.update
    async def cancel(self) -> DeliveryState:
        """End the delivery as CANCELED (after an attempt in flight, unless that one succeeds)."""
        self._cancel = True
        await workflow.wait_condition(lambda: self._state.status in FINAL_STATUSES)
        return self._state

    @cancel.validator
    def _validate_cancel(self) -> None:
        if self._state.status in FINAL_STATUSES:
            raise ApplicationError(f"delivery is {self._state.status}", type="NotPending")
