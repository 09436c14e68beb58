from __future__ import annotations

import json

import standardwebhooks
import svix.webhooks

from hookline.v1 import delivery_pb2, endpoint_pb2
from tests.activities.receivers import RecordedRequest
from tests.workflows.conftest import WS, Stack


def verify_both(secret: str, request: RecordedRequest) -> None:
    """Both reference verifiers must accept what Hookline sent."""
    headers = {k: v for k, v in request.headers}
    standardwebhooks.Webhook(secret).verify(request.body, headers)
    svix.webhooks.Webhook(secret).verify(request.body, headers)


async def test_event_reaches_every_matching_endpoint_signed(stack: Stack) -> None:
    a, secret_a = await stack.endpoint("/a", ["message.delivered"])
    b, secret_b = await stack.endpoint("/b", ["message.*"])
    await stack.endpoint("/c", ["call.*"])
    event_id = await stack.publish("message.delivered", b'{"id": 12345678901234567890}')

    rows = await stack.wait_status(event_id, "SUCCEEDED", count=2)
    assert {r.endpoint_id for r in rows} == {a, b}
    received = [r for r in stack.receiver.requests if r.header("webhook-id") == event_id]
    assert sorted(r.path for r in received) == ["/a", "/b"]
    for request in received:
        verify_both(secret_a if request.path == "/a" else secret_b, request)
        assert request.header("X-Devotel-Signature") == request.header("webhook-signature")
        assert request.header("content-type") == "application/json"
        body = json.loads(request.body)
        assert body["id"] == event_id
        assert body["type"] == "message.delivered"
        assert body["workspace_id"] == WS
        assert body["data"] == {"id": 12345678901234567890}
        assert b'"data":{"id": 12345678901234567890}' in request.body
    for row in rows:
        attempts = await stack.attempts_of(row.id)
        assert [(x.number, x.status_code, x.error_class) for x in attempts] == [(1, 200, "")]


async def test_rotation_overlap_sends_both_signatures(stack: Stack) -> None:
    endpoint_id, old_secret = await stack.endpoint("/rot", ["message.sent"])
    rotated = await stack.endpoints.RotateEndpointSecret(
        endpoint_pb2.RotateEndpointSecretRequest(id=endpoint_id), metadata=stack.auth
    )
    event_id = await stack.publish("message.sent")
    await stack.wait_status(event_id, "SUCCEEDED")
    (request,) = [r for r in stack.receiver.requests if r.header("webhook-id") == event_id]
    assert len((request.header("webhook-signature") or "").split(" ")) == 2
    verify_both(old_secret, request)
    verify_both(rotated.secret, request)


async def test_get_delivery_shows_attempts(stack: Stack) -> None:
    await stack.endpoint("/get", ["message.sent"])
    event_id = await stack.publish("message.sent")
    (row,) = await stack.wait_status(event_id, "SUCCEEDED")
    got = await stack.deliveries.GetDelivery(
        delivery_pb2.GetDeliveryRequest(id=row.id), metadata=stack.auth
    )
    assert got.delivery.status == delivery_pb2.DELIVERY_STATUS_SUCCEEDED
    assert got.delivery.workflow_id == f"delivery-{row.id}"
    assert [a.status_code for a in got.delivery.attempts] == [200]
    assert got.delivery.HasField("complete_time")
