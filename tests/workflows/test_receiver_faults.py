"""End to end: receiver faults and SSRF at delivery time (reliability checklist B.3 and B.4).

Each test publishes an event through the gRPC API, lets the real worker deliver it to the loopback
receiver, then checks what the store recorded (delivery, attempts, endpoint, events) and what the
receiver actually saw.
"""

from __future__ import annotations

import ipaddress
import json
import zlib
from collections.abc import Callable

import pytest
from google.protobuf import duration_pb2
from sqlmodel import col, select

from hookline.v1 import endpoint_pb2
from service.db.models import Attempt, Event
from service.ssrf import IPAddress, StaticResolver
from tests.activities.receivers import RecordedRequest, ScriptedResponse
from tests.conftest import TEST_DNS
from tests.workflows.conftest import Stack, wait_for

EVENT = "message.sent"
# DeliveryHttpClient's defaults, as wired by service.runtime.http_client.
RESPONSE_CAP = 65536
EXCERPT_CAP = 4096
ONE_ATTEMPT = endpoint_pb2.RetryPolicy(max_attempts=1)
TWO_MIB = 2 * 1024 * 1024


class RebindingResolver:
    """TEST_DNS, plus names whose answer a test can change between registration and delivery."""

    def __init__(self) -> None:
        self._static = StaticResolver(TEST_DNS)
        self.answers: dict[str, list[IPAddress]] = {}

    def point(self, host: str, *addresses: str) -> None:
        self.answers[host] = [ipaddress.ip_address(a) for a in addresses]

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        answer = self.answers.get(host.lower().rstrip("."))
        if answer is not None:
            return list(answer)
        return await self._static.resolve(host, port)


@pytest.fixture
def resolver() -> RebindingResolver:
    return RebindingResolver()


def schedule(*delays: float, max_attempts: int = 0) -> endpoint_pb2.RetryPolicy:
    durations = []
    for delay in delays:
        duration = duration_pb2.Duration()
        duration.FromNanoseconds(round(delay * 1e9))
        durations.append(duration)
    return endpoint_pb2.RetryPolicy(
        max_attempts=max_attempts, schedule=endpoint_pb2.ScheduleBackoff(delays=durations)
    )


def requests_to(stack: Stack, path: str) -> list[RecordedRequest]:
    return [r for r in stack.receiver.requests if r.path == path]


async def single_attempt(stack: Stack, event_id: str, status: str) -> Attempt:
    """Wait for the event's one delivery to reach `status`; returns its only attempt."""
    (row,) = await stack.wait_status(event_id, status)
    attempts = await stack.attempts_of(row.id)
    assert [a.number for a in attempts] == [1]
    assert row.attempt_count == 1
    return attempts[0]


def gzip_of_zeros(size: int, piece: int = 1024 * 1024) -> bytes:
    """gzip of `size` zero bytes, compressed piece by piece (never holds `size` bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(piece)
    parts = [compressor.compress(zeros) for _ in range(size // piece)]
    parts.append(compressor.flush())
    return b"".join(parts)


# -- B.4: receiver faults -------------------------------------------------------------------------


async def test_hanging_receiver_times_out(stack: Stack) -> None:
    stack.receiver.route("/hang", ScriptedResponse(status=200, delay_seconds=5.0))
    await stack.endpoint("/hang", [EVENT], timeout_seconds=1, retry_policy=ONE_ATTEMPT)
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.error_class == "timeout"
    assert attempt.status_code is None
    assert attempt.response_bytes == 0
    assert len(requests_to(stack, "/hang")) == 1


@pytest.mark.parametrize(
    ("trickle", "timeout_seconds", "status_code"),
    [
        # The whole response, status line included, one byte every 0.3 s: the status line alone
        # needs about 5 s, so nothing usable arrives within the 1 s deadline.
        (ScriptedResponse(status=200, body=b"ok" * 50, trickle_interval=0.3), 1, None),
        # Status and headers at once, then the body one byte every 0.3 s (30 s in all): a 200
        # whose body never completes within the deadline is a timed-out attempt, not a success.
        # 2 s rather than 1 s so that a busy machine still gets the status line in time.
        (ScriptedResponse(status=200, body=b"ok" * 50, trickle_body_interval=0.3), 2, 200),
    ],
    ids=["whole-response", "body-only"],
)
async def test_slow_loris_hits_the_total_deadline(
    stack: Stack, trickle: ScriptedResponse, timeout_seconds: int, status_code: int | None
) -> None:
    stack.receiver.route("/loris", trickle)
    await stack.endpoint(
        "/loris", [EVENT], timeout_seconds=timeout_seconds, retry_policy=ONE_ATTEMPT
    )
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.error_class == "timeout"
    assert attempt.status_code == status_code
    assert len(requests_to(stack, "/loris")) == 1


async def test_redirect_to_metadata_is_not_followed(stack: Stack) -> None:
    stack.receiver.route(
        "/redirect", ScriptedResponse.redirect("http://169.254.169.254/latest/meta-data")
    )
    await stack.endpoint("/redirect", [EVENT], retry_policy=ONE_ATTEMPT)
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.status_code == 302
    assert attempt.error_class == "http_status"
    assert len(stack.receiver.requests) == 1
    assert stack.receiver.requests[0].path == "/redirect"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_huge_response_body_is_capped(stack: Stack, chunked: bool) -> None:
    body = bytes(range(256)) * (TWO_MIB // 256)
    stack.receiver.route("/big", ScriptedResponse(status=200, body=body, chunked=chunked))
    await stack.endpoint("/big", [EVENT], timeout_seconds=5, retry_policy=ONE_ATTEMPT)
    event_id = await stack.publish(EVENT)

    # AttemptResult.succeeded is "2xx and no fault": reading stops at the cap (truncated=True)
    # without an error class, so the receiver's 200 counts as a success.
    attempt = await single_attempt(stack, event_id, "SUCCEEDED")
    assert attempt.status_code == 200
    assert attempt.error_class == ""
    assert attempt.response_bytes <= RESPONSE_CAP
    assert attempt.response_bytes == RESPONSE_CAP  # 2 MiB available: read exactly up to the cap
    assert len(attempt.response_excerpt) <= EXCERPT_CAP
    assert attempt.response_excerpt == body[:EXCERPT_CAP]


async def test_gzip_bomb_is_capped_after_decompression(stack: Stack) -> None:
    bomb = gzip_of_zeros(20 * 1024 * 1024)
    assert len(bomb) < 64 * 1024  # what goes over the wire is small; the expansion is the threat
    stack.receiver.route(
        "/bomb",
        ScriptedResponse(status=200, body=bomb, headers=[("Content-Encoding", "gzip")]),
    )
    await stack.endpoint("/bomb", [EVENT], timeout_seconds=5, retry_policy=ONE_ATTEMPT)
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "SUCCEEDED")
    assert attempt.status_code == 200
    assert attempt.response_bytes <= RESPONSE_CAP
    assert attempt.response_bytes == RESPONSE_CAP  # counted after decompression
    assert len(attempt.response_excerpt) <= EXCERPT_CAP
    assert attempt.response_excerpt == bytes(EXCERPT_CAP)  # decoded zeros, not gzip bytes


async def test_connection_reset_fails_the_attempt(stack: Stack) -> None:
    stack.receiver.route("/reset", ScriptedResponse(reset=True))
    await stack.endpoint("/reset", [EVENT], timeout_seconds=5, retry_policy=ONE_ATTEMPT)
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.error_class in {"connection_reset", "protocol_error"}
    assert attempt.status_code is None
    assert len(requests_to(stack, "/reset")) == 1


async def test_gone_disables_the_endpoint(stack: Stack) -> None:
    stack.receiver.route("/gone", ScriptedResponse(status=410))
    # Default retry policy: a 410 must end the delivery anyway.
    endpoint_id, _ = await stack.endpoint("/gone", [EVENT])
    event_id = await stack.publish(EVENT)

    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.status_code == 410
    assert attempt.error_class == "http_status"
    assert len(requests_to(stack, "/gone")) == 1

    # The delivery row is final before the endpoint is disabled (separate transactions).
    async def endpoint_disabled() -> bool:
        got = await stack.endpoints.GetEndpoint(
            endpoint_pb2.GetEndpointRequest(id=endpoint_id), metadata=stack.auth
        )
        return not got.endpoint.active

    await wait_for(endpoint_disabled, timeout=10)
    got = await stack.endpoints.GetEndpoint(
        endpoint_pb2.GetEndpointRequest(id=endpoint_id), metadata=stack.auth
    )
    assert "410" in got.endpoint.disabled_reason

    async with stack.core.sessions() as session:
        rows = await session.exec(
            select(Event)
            .where(Event.tenant_id == stack.tenant_id, Event.type == "webhook_endpoint.updated")
            .order_by(col(Event.id))
        )
        updates = [json.loads(row.data) for row in rows.all()]
    summaries = [u["endpoint"] for u in updates if u["endpoint"]["id"] == endpoint_id]
    assert len(summaries) == 1
    assert summaries[0]["active"] is False
    assert "410" in summaries[0]["disabled_reason"]


# -- Retries --------------------------------------------------------------------------------------


def answers(*statuses: int) -> Callable[[RecordedRequest], ScriptedResponse]:
    """A handler answering the given statuses in turn, then repeating the last one."""
    remaining = list(statuses)

    def handle(_request: RecordedRequest) -> ScriptedResponse:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return ScriptedResponse(status=status)

    return handle


async def test_server_error_then_success_is_retried(stack: Stack) -> None:
    stack.receiver.route("/flaky", answers(500, 200))
    await stack.endpoint("/flaky", [EVENT], retry_policy=schedule(0.2, max_attempts=3))
    event_id = await stack.publish(EVENT)

    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    assert row.attempt_count == 2
    attempts = await stack.attempts_of(row.id)
    assert [(a.number, a.status_code, a.error_class) for a in attempts] == [
        (1, 500, "http_status"),
        (2, 200, ""),
    ]
    received = requests_to(stack, "/flaky")
    assert len(received) == 2
    assert [r.header("webhook-id") for r in received] == [event_id, event_id]


async def test_retries_stop_at_max_attempts(stack: Stack) -> None:
    stack.receiver.route("/down", ScriptedResponse(status=503))
    await stack.endpoint("/down", [EVENT], retry_policy=schedule(0.1, max_attempts=3))
    event_id = await stack.publish(EVENT)

    (row,) = await stack.wait_status(event_id, "FAILED")
    assert row.attempt_count == 3
    attempts = await stack.attempts_of(row.id)
    assert [(a.number, a.status_code, a.error_class) for a in attempts] == [
        (1, 503, "http_status"),
        (2, 503, "http_status"),
        (3, 503, "http_status"),
    ]
    received = requests_to(stack, "/down")
    assert len(received) == 3
    assert {r.header("webhook-id") for r in received} == {event_id}


# -- B.3: SSRF re-checked at connect time ---------------------------------------------------------


async def test_dns_rebinding_is_blocked_at_connect_time(
    stack: Stack, resolver: RebindingResolver
) -> None:
    # Registration sees the allow-listed loopback address (the stack allows 127.0.0.0/8 over http).
    resolver.point("rebind.test", "127.0.0.1")
    created = await stack.endpoints.CreateEndpoint(
        endpoint_pb2.CreateEndpointRequest(
            url=stack.receiver.url_for("rebind.test", "/rebind"), events=[EVENT]
        ),
        metadata=stack.auth,
    )
    assert created.endpoint.active
    # Then the name is rebound to the metadata address before anything is delivered.
    resolver.point("rebind.test", "169.254.169.254")
    event_id = await stack.publish(EVENT)

    # Default retry policy, yet a single attempt: blocked_address is not retryable.
    attempt = await single_attempt(stack, event_id, "FAILED")
    assert attempt.error_class == "blocked_address"
    assert attempt.status_code is None
    assert "169.254.169.254" in attempt.error_message
    assert requests_to(stack, "/rebind") == []
    assert stack.receiver.connections == 0  # nothing was sent anywhere
