"""Inputs and outputs of the delivery workflow and its activities: ids and outcomes, never payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

PENDING, SUCCEEDED, FAILED, CANCELED = "PENDING", "SUCCEEDED", "FAILED", "CANCELED"
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELED})


def workflow_id(delivery_id: str) -> str:
    return f"delivery-{delivery_id}"


# Version 2: a delivery that succeeds at its run's first attempt sets no HooklineStatus (its
# history stays at 6 events); every other outcome is upserted when the run ends. Histories of
# version 1 (the default, as their inputs carry no version) replay with version 1's upsert.
WORKFLOW_VERSION = 2


@dataclass
class DeliveryInput:
    delivery_id: str
    # A manual retry of a finished delivery starts a new run at the next number and makes one attempt.
    first_attempt: int = 1
    manual: bool = False
    version: int = 1


@dataclass
class AttemptInput:
    delivery_id: str
    number: int
    manual: bool = False


@dataclass
class AttemptOutcome:
    number: int
    # The delivery's status after this attempt; PENDING means another attempt follows.
    status: str
    status_code: int = 0
    error_class: str = ""
    latency_ms: float = 0.0
    next_delay_seconds: float | None = None


@dataclass
class FinishInput:
    delivery_id: str
    status: str


@dataclass
class DeliveryState:
    delivery_id: str
    status: str = PENDING
    attempts: int = 0
    last_status_code: int = 0
    last_error: str = ""
    next_attempt_time: datetime | None = None
    # workflow.now() at the start of each attempt: the durable schedule as the workflow ran it.
    attempt_times: list[datetime] = field(default_factory=list)
