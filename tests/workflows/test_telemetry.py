"""One trace per event, from the gRPC call to the receiver; metrics that move with outcomes."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan

from hookline.v1 import endpoint_pb2, event_pb2
from tests.activities.receivers import ScriptedResponse
from tests.conftest import METRIC_READER, SPANS
from tests.workflows.conftest import WS, Stack, wait_for

CALLER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN = 0x00F067AA0BA902B7


def spans_of_trace(trace_id: int) -> list[ReadableSpan]:
    return [s for s in SPANS.get_finished_spans() if s.context and s.context.trace_id == trace_id]


def chain_to_root(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans if s.context}
    names = [span.name]
    current = span
    while current.parent is not None and current.parent.span_id in by_id:
        current = by_id[current.parent.span_id]
        names.append(current.name)
    return names


async def test_one_trace_from_publish_to_receiver(stack: Stack) -> None:
    endpoint_id, _ = await stack.endpoint("/trace", ["message.sent"])
    traceparent = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"
    response = await stack.events.PublishEvent(
        event_pb2.PublishEventRequest(type="message.sent", workspace_id=WS, data=b'{"n":1}'),
        metadata=(*stack.auth, ("traceparent", traceparent)),
    )
    event_id = response.event.id
    (delivery,) = await stack.wait_status(event_id, "SUCCEEDED")

    (request,) = [r for r in stack.receiver.requests if r.header("webhook-id") == event_id]
    received = request.header("traceparent") or ""
    assert received.split("-")[1] == f"{CALLER_TRACE:032x}"

    async def complete() -> bool:
        names = {s.name for s in spans_of_trace(CALLER_TRACE)}
        return {"RunWorkflow:Delivery", "POST"} <= names

    await wait_for(complete)
    spans = spans_of_trace(CALLER_TRACE)
    (post,) = [s for s in spans if s.name == "POST"]
    chain = chain_to_root(post, spans)
    # temporalio's interceptor parents workflow-issued spans on the workflow's start context.
    assert chain == [
        "POST",
        "RunActivity:attempt_delivery",
        "StartActivity:attempt_delivery",
        "StartWorkflow:Delivery",
        "/hookline.v1.EventService/PublishEvent",
    ]
    run_workflow = next(s for s in spans if s.name == "RunWorkflow:Delivery")
    assert chain_to_root(run_workflow, spans)[1:] == chain[-2:]
    server = next(s for s in spans if s.name == "/hookline.v1.EventService/PublishEvent")
    assert server.parent is not None
    assert server.parent.span_id == CALLER_SPAN  # the caller's context was honoured
    assert server.attributes is not None
    assert server.attributes["hookline.tenant_id"] == stack.tenant_id
    assert server.attributes["hookline.event_type"] == "message.sent"
    assert server.attributes["hookline.event_id"] == event_id
    # The POST's own span id is what the receiver was told to continue from.
    assert post.context is not None
    assert received.split("-")[2] == f"{post.context.span_id:016x}"
    attempt = next(s for s in spans if s.name == "RunActivity:attempt_delivery")
    assert attempt.attributes is not None
    assert attempt.attributes["hookline.delivery_id"] == delivery.id
    assert attempt.attributes["hookline.endpoint_id"] == endpoint_id
    assert attempt.attributes["hookline.attempt"] == 1
    assert attempt.attributes["http.response.status_code"] == 200
    for span in spans:
        values = " ".join(str(v) for v in (span.attributes or {}).values())
        assert "whsec_" not in values
        assert '{"n":1}' not in values


def metric_sum(name: str, match: Mapping[str, str] | None = None) -> float:
    """Current value of a counter (sum) or count of a histogram, over points whose attributes match."""
    data = METRIC_READER.get_metrics_data()
    total = 0.0
    if data is None:
        return total
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if match and any(attributes.get(k) != v for k, v in match.items()):
                        continue
                    count = getattr(point, "count", None)  # histograms count, counters sum
                    total += float(count if count is not None else getattr(point, "value", 0))
    return total


async def test_metrics_follow_successes_and_failures(stack: Stack) -> None:
    names = [
        ("hookline.events.published", {"tenant": stack.tenant_id}),
        ("hookline.attempts", {"status_class": "2xx"}),
        ("hookline.attempts", {"status_class": "5xx"}),
        ("hookline.deliveries.completed", {"outcome": "SUCCEEDED"}),
        ("hookline.deliveries.completed", {"outcome": "FAILED"}),
        ("hookline.attempt.duration", None),
        ("hookline.delivery.time_to_success", None),
        ("hookline.endpoints.disabled", None),
    ]
    before = [metric_sum(n, m) for n, m in names]
    await stack.endpoint("/ok", ["message.sent"])
    await stack.endpoint(
        "/bad", ["message.read"], retry_policy=endpoint_pb2.RetryPolicy(max_attempts=1)
    )
    await stack.endpoint("/gone", ["message.failed"])
    stack.receiver.route("/bad", ScriptedResponse(status=500))
    stack.receiver.route("/gone", ScriptedResponse(status=410))
    ok = await stack.publish("message.sent")
    bad = await stack.publish("message.read")
    gone = await stack.publish("message.failed")
    await stack.wait_status(ok, "SUCCEEDED")
    await stack.wait_status(bad, "FAILED")
    await stack.wait_status(gone, "FAILED")
    after = [metric_sum(n, m) for n, m in names]
    delta = {f"{n} {m or ''}": a - b for (n, m), a, b in zip(names, after, before, strict=True)}
    # 3 events published, plus webhook_endpoint.created x3 and .updated for the disabled one.
    assert delta[f"hookline.events.published {{'tenant': '{stack.tenant_id}'}}"] >= 3
    assert delta["hookline.attempts {'status_class': '2xx'}"] == 1
    assert delta["hookline.attempts {'status_class': '5xx'}"] == 1
    assert delta["hookline.deliveries.completed {'outcome': 'SUCCEEDED'}"] == 1
    assert delta["hookline.deliveries.completed {'outcome': 'FAILED'}"] == 2
    assert delta["hookline.attempt.duration "] == 3
    assert delta["hookline.delivery.time_to_success "] == 1
    assert delta["hookline.endpoints.disabled "] == 1
