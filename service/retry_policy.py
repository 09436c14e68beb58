"""Retry policies: validated from the API, stored as JSON, asked by the workflow for the next delay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2

from hookline.v1 import endpoint_pb2
from service.errors import Violations

MAX_ATTEMPTS = 30
MAX_DELAY_SECONDS = 24 * 3600.0
# Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours).
DEFAULT_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    schedule: tuple[float, ...] = ()
    initial_interval: float = 0.0
    multiplier: float = 0.0
    max_interval: float = 0.0

    @property
    def is_exponential(self) -> bool:
        return not self.schedule

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after attempt `attempt` (1-based) before the next; None when none is left."""
        if attempt >= self.max_attempts:
            return None
        if self.schedule:
            return self.schedule[min(attempt, len(self.schedule)) - 1]
        return min(self.initial_interval * self.multiplier ** (attempt - 1), self.max_interval)

    def to_json(self) -> dict[str, Any]:
        if self.schedule:
            return {"max_attempts": self.max_attempts, "schedule": list(self.schedule)}
        return {
            "max_attempts": self.max_attempts,
            "exponential": {
                "initial_interval": self.initial_interval,
                "multiplier": self.multiplier,
                "max_interval": self.max_interval,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        if "schedule" in data:
            return cls(
                max_attempts=int(data["max_attempts"]),
                schedule=tuple(float(s) for s in data["schedule"]),
            )
        exp = data["exponential"]
        return cls(
            max_attempts=int(data["max_attempts"]),
            initial_interval=float(exp["initial_interval"]),
            multiplier=float(exp["multiplier"]),
            max_interval=float(exp["max_interval"]),
        )


DEFAULT_POLICY = RetryPolicy(max_attempts=len(DEFAULT_SCHEDULE) + 1, schedule=DEFAULT_SCHEDULE)


def _seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def from_proto(
    message: endpoint_pb2.RetryPolicy, violations: Violations, field: str = "retry_policy"
) -> RetryPolicy:
    """Validate a policy from the API; every problem goes into `violations`."""
    max_attempts = message.max_attempts
    if max_attempts < 0 or max_attempts > MAX_ATTEMPTS:
        violations.add(f"{field}.max_attempts", f"must be between 1 and {MAX_ATTEMPTS}")
    kind = message.WhichOneof("backoff")
    if kind == "exponential":
        exp = message.exponential
        initial, mult, cap = (
            _seconds(exp.initial_interval),
            exp.multiplier,
            _seconds(exp.max_interval),
        )
        if not 1.0 <= initial <= 3600.0:
            violations.add(f"{field}.exponential.initial_interval", "must be 1 s to 1 h")
        if not 1.0 <= mult <= 10.0:
            violations.add(f"{field}.exponential.multiplier", "must be 1.0 to 10.0")
        if not initial <= cap <= MAX_DELAY_SECONDS:
            violations.add(
                f"{field}.exponential.max_interval",
                "must be at least initial_interval and at most 24 h",
            )
        return RetryPolicy(
            max_attempts=max_attempts or len(DEFAULT_SCHEDULE) + 1,
            initial_interval=initial,
            multiplier=mult,
            max_interval=cap,
        )
    if kind == "schedule":
        delays = [_seconds(d) for d in message.schedule.delays]
        if not delays:
            violations.add(f"{field}.schedule.delays", "must not be empty")
        if len(delays) > MAX_ATTEMPTS:
            violations.add(f"{field}.schedule.delays", f"at most {MAX_ATTEMPTS} entries")
        for i, delay in enumerate(delays):
            if not 0.0 <= delay <= MAX_DELAY_SECONDS:
                violations.add(f"{field}.schedule.delays[{i}]", "must be 0 s to 24 h")
        return RetryPolicy(
            max_attempts=max_attempts or len(delays) + 1,
            schedule=tuple(delays) or DEFAULT_SCHEDULE,
        )
    # No backoff given: the default schedule, optionally with another attempt count.
    return RetryPolicy(
        max_attempts=max_attempts or DEFAULT_POLICY.max_attempts, schedule=DEFAULT_SCHEDULE
    )


def to_proto(policy: RetryPolicy) -> endpoint_pb2.RetryPolicy:
    if policy.schedule:
        return endpoint_pb2.RetryPolicy(
            max_attempts=policy.max_attempts,
            schedule=endpoint_pb2.ScheduleBackoff(delays=[_duration(s) for s in policy.schedule]),
        )
    return endpoint_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        exponential=endpoint_pb2.ExponentialBackoff(
            initial_interval=_duration(policy.initial_interval),
            multiplier=policy.multiplier,
            max_interval=_duration(policy.max_interval),
        ),
    )
