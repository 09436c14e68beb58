"""The delivery flow on PostgreSQL too (the rest of tests/workflows runs on SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from hookline.v1 import delivery_pb2, endpoint_pb2
from tests.activities.receivers import ScriptedResponse
from tests.workflows.conftest import Stack


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"
    # Its own database: a dispatcher picks up every undispatched row it can see.
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


async def test_publish_deliver_retry_and_inspect(stack: Stack) -> None:
    endpoint_id, _ = await stack.endpoint(
        "/pg",
        ["message.*"],
        retry_policy=endpoint_pb2.RetryPolicy(
            schedule=endpoint_pb2.ScheduleBackoff(delays=[duration_pb2.Duration(nanos=100_000_000)])
        ),
    )
    stack.receiver.enqueue(ScriptedResponse(status=503))
    event_id = await stack.publish("message.sent")
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    assert row.endpoint_id == endpoint_id
    got = await stack.deliveries.GetDelivery(
        delivery_pb2.GetDeliveryRequest(id=row.id), metadata=stack.auth
    )
    assert [a.status_code for a in got.delivery.attempts] == [503, 200]
