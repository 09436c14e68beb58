from __future__ import annotations

import base64

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from hookline.v1 import endpoint_pb2
from tests.conftest import Api
from tests.grpc_errors import details

URL = "https://hooks.example.com/orbit"


def create_request(**overrides: object) -> endpoint_pb2.CreateEndpointRequest:
    fields: dict[str, object] = {"url": URL, "events": ["message.delivered", "call.*"]}
    fields.update(overrides)
    return endpoint_pb2.CreateEndpointRequest(**fields)  # type: ignore[arg-type]


async def expect_error(call: object, code: grpc.StatusCode) -> tuple[str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return details(caught.value)


async def test_create_returns_secret_once_and_defaults(api: Api) -> None:
    created = await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)
    ep = created.endpoint
    assert ep.id.startswith("ep_")
    assert created.secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(created.secret.removeprefix("whsec_"))) <= 64
    assert ep.active is True
    assert ep.timeout_seconds == 30
    assert list(ep.events) == ["message.delivered", "call.*"]
    delays = [d.seconds for d in ep.retry_policy.schedule.delays]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert ep.retry_policy.max_attempts == 8
    assert ep.secret_hint.startswith("whsec_") and created.secret not in ep.secret_hint

    got = await api.endpoints.GetEndpoint(
        endpoint_pb2.GetEndpointRequest(id=ep.id), metadata=api.auth
    )
    assert got.endpoint == ep
    assert created.secret not in str(got)


async def test_create_with_given_secret_and_options(api: Api) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    policy = endpoint_pb2.RetryPolicy(
        max_attempts=4,
        exponential=endpoint_pb2.ExponentialBackoff(
            initial_interval=duration_pb2.Duration(seconds=2),
            multiplier=3.0,
            max_interval=duration_pb2.Duration(seconds=60),
        ),
    )
    created = await api.endpoints.CreateEndpoint(
        create_request(
            secret=secret,
            active=False,
            description="CRM sync",
            timeout_seconds=5,
            retry_policy=policy,
            workspace_id="7d1c2e4a-1111-4222-8333-444455556666",
        ),
        metadata=api.auth,
    )
    assert created.secret == secret
    ep = created.endpoint
    assert (ep.active, ep.description, ep.timeout_seconds) == (False, "CRM sync", 5)
    assert ep.retry_policy == policy
    assert ep.workspace_id == "7d1c2e4a-1111-4222-8333-444455556666"


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"url": ""}, "url", "required"),
        ({"url": "http://hooks.example.com/x"}, "url", "https"),
        ({"url": "https://127.0.0.1/x"}, "url", "loopback"),
        ({"url": "https://internal.example.com/x"}, "url", "private"),
        ({"url": "https://metadata.example.com/x"}, "url", "metadata"),
        ({"url": "https://mixed.example.com/x"}, "url", "loopback"),
        ({"url": "ftp://hooks.example.com/x"}, "url", ""),
        ({"events": []}, "events", "at least one"),
        ({"events": ["message.sent", "mesage.sent"]}, "events[1]", "mesage.sent"),
        ({"events": ["cal.*"]}, "events[0]", "cal.*"),
        ({"secret": "not-a-secret"}, "secret", "whsec_"),
        ({"secret": "whsec_" + base64.b64encode(b"x" * 8).decode()}, "secret", "24 to 64"),
        ({"timeout_seconds": 31}, "timeout_seconds", "1 and 30"),
        ({"timeout_seconds": -1}, "timeout_seconds", "1 and 30"),
        ({"description": "x" * 513}, "description", "512"),
        ({"workspace_id": "not-a-uuid"}, "workspace_id", "UUID"),
        (
            {"retry_policy": endpoint_pb2.RetryPolicy(max_attempts=31)},
            "retry_policy.max_attempts",
            "between",
        ),
        (
            {
                "retry_policy": endpoint_pb2.RetryPolicy(
                    schedule=endpoint_pb2.ScheduleBackoff(
                        delays=[duration_pb2.Duration(seconds=90000)]
                    )
                )
            },
            "retry_policy.schedule.delays[0]",
            "24 h",
        ),
        (
            {
                "retry_policy": endpoint_pb2.RetryPolicy(
                    exponential=endpoint_pb2.ExponentialBackoff(multiplier=50)
                )
            },
            "retry_policy.exponential.multiplier",
            "10",
        ),
    ],
)
async def test_create_rejects_each_bad_field(
    api: Api, overrides: dict[str, object], field: str, fragment: str
) -> None:
    reason, violations = await expect_error(
        api.endpoints.CreateEndpoint(create_request(**overrides), metadata=api.auth),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "VALIDATION_ERROR"
    assert field in violations, violations
    assert fragment in violations[field]


async def test_every_unknown_event_is_named(api: Api) -> None:
    _, violations = await expect_error(
        api.endpoints.CreateEndpoint(
            create_request(events=["message.sent", "nope.one", "call.completed", "nope.two"]),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(violations) == {"events[1]", "events[3]"}
    assert "nope.one" in violations["events[1]"] and "nope.two" in violations["events[3]"]


async def test_several_bad_fields_reported_together(api: Api) -> None:
    _, violations = await expect_error(
        api.endpoints.CreateEndpoint(
            create_request(url="https://10.1.1.1/", events=[], timeout_seconds=99),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"url", "events", "timeout_seconds"} <= set(violations)


async def test_list_paginates_stably_under_inserts_and_deletes(api: Api) -> None:
    ids = [
        (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint.id
        for _ in range(7)
    ]
    first = await api.endpoints.ListEndpoints(
        endpoint_pb2.ListEndpointsRequest(page_size=3), metadata=api.auth
    )
    assert [e.id for e in first.endpoints] == ids[:3]
    assert first.next_page_token
    # Changes between pages: delete a seen and an unseen endpoint, add a new one.
    await api.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=ids[0]), metadata=api.auth
    )
    await api.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=ids[4]), metadata=api.auth
    )
    added = (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint.id
    seen = [e.id for e in first.endpoints]
    token = first.next_page_token
    while token:
        page = await api.endpoints.ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(page_size=3, page_token=token), metadata=api.auth
        )
        seen += [e.id for e in page.endpoints]
        token = page.next_page_token
    assert seen == ids[:4] + ids[5:] + [added]


async def test_list_page_size_rules(api: Api) -> None:
    for _ in range(3):
        await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)
    default = await api.endpoints.ListEndpoints(
        endpoint_pb2.ListEndpointsRequest(page_size=0), metadata=api.auth
    )
    assert len(default.endpoints) == 3 and default.next_page_token == ""
    huge = await api.endpoints.ListEndpoints(
        endpoint_pb2.ListEndpointsRequest(page_size=5000), metadata=api.auth
    )
    assert len(huge.endpoints) == 3
    _, violations = await expect_error(
        api.endpoints.ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(page_size=-1), metadata=api.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_size" in violations
    _, violations = await expect_error(
        api.endpoints.ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(page_token="garbage!"), metadata=api.auth
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in violations


async def test_update_with_field_mask(api: Api) -> None:
    ep = (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint
    change = endpoint_pb2.Endpoint(
        id=ep.id, url="https://other.example.com/new", description="ignored", timeout_seconds=10
    )
    updated = (
        await api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=change,
                update_mask=field_mask_pb2.FieldMask(paths=["url", "timeout_seconds"]),
            ),
            metadata=api.auth,
        )
    ).endpoint
    assert updated.url == "https://other.example.com/new"
    assert updated.timeout_seconds == 10
    assert updated.description == ""  # not in the mask
    assert list(updated.events) == list(ep.events)

    disabled = (
        await api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(id=ep.id, active=False),
                update_mask=field_mask_pb2.FieldMask(paths=["active"]),
            ),
            metadata=api.auth,
        )
    ).endpoint
    assert disabled.active is False

    implied = (
        await api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(id=ep.id, events=["*"], description="all of it")
            ),
            metadata=api.auth,
        )
    ).endpoint
    assert list(implied.events) == ["*"] and implied.description == "all of it"
    assert implied.url == "https://other.example.com/new"


async def test_update_rejects_bad_mask_and_values(api: Api) -> None:
    ep = (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint
    _, violations = await expect_error(
        api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(id=ep.id, url="https://192.168.1.1/"),
                update_mask=field_mask_pb2.FieldMask(paths=["url", "secret_hint"]),
            ),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask.paths[1]" in violations
    _, violations = await expect_error(
        api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(
                    id=ep.id, url="https://192.168.1.1/", events=["bogus"]
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["url", "events"]),
            ),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"endpoint.url", "endpoint.events[0]"} <= set(violations)
    await expect_error(
        api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(endpoint=endpoint_pb2.Endpoint(id=ep.id)),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        api.endpoints.UpdateEndpoint(
            endpoint_pb2.UpdateEndpointRequest(
                endpoint=endpoint_pb2.Endpoint(id="ep_" + "0" * 32, description="x")
            ),
            metadata=api.auth,
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_delete_then_not_found(api: Api) -> None:
    ep = (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint
    await api.endpoints.DeleteEndpoint(
        endpoint_pb2.DeleteEndpointRequest(id=ep.id), metadata=api.auth
    )
    reason, _ = await expect_error(
        api.endpoints.GetEndpoint(endpoint_pb2.GetEndpointRequest(id=ep.id), metadata=api.auth),
        grpc.StatusCode.NOT_FOUND,
    )
    assert reason == "ENDPOINT_NOT_FOUND"
    await expect_error(
        api.endpoints.DeleteEndpoint(
            endpoint_pb2.DeleteEndpointRequest(id=ep.id), metadata=api.auth
        ),
        grpc.StatusCode.NOT_FOUND,
    )


@pytest.mark.parametrize("bad_id", ["", "ep_123", "evt_" + "0" * 32, "ep_" + "g" * 32])
async def test_malformed_ids_are_invalid(api: Api, bad_id: str) -> None:
    _, violations = await expect_error(
        api.endpoints.GetEndpoint(endpoint_pb2.GetEndpointRequest(id=bad_id), metadata=api.auth),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "id" in violations


async def test_rotate_secret(api: Api) -> None:
    created = await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)
    rotated = await api.endpoints.RotateEndpointSecret(
        endpoint_pb2.RotateEndpointSecretRequest(id=created.endpoint.id), metadata=api.auth
    )
    assert rotated.secret.startswith("whsec_") and rotated.secret != created.secret
    assert rotated.endpoint.secret_hint != created.endpoint.secret_hint
    expire = rotated.previous_secret_expire_time.ToDatetime()
    update = rotated.endpoint.update_time.ToDatetime()
    assert 23 * 3600 < (expire - update).total_seconds() <= 24 * 3600 + 1
    keys = await api.core.endpoints.signing_keys(created.endpoint.id)
    assert len(keys) == 2  # new and, during the overlap, the previous one

    _, violations = await expect_error(
        api.endpoints.RotateEndpointSecret(
            endpoint_pb2.RotateEndpointSecretRequest(
                id=created.endpoint.id, overlap=duration_pb2.Duration(seconds=8 * 86400)
            ),
            metadata=api.auth,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "overlap" in violations


async def test_rotation_limit_within_overlap(api: Api) -> None:
    ep = (await api.endpoints.CreateEndpoint(create_request(), metadata=api.auth)).endpoint
    for _ in range(10):
        await api.endpoints.RotateEndpointSecret(
            endpoint_pb2.RotateEndpointSecretRequest(id=ep.id), metadata=api.auth
        )
    reason, _ = await expect_error(
        api.endpoints.RotateEndpointSecret(
            endpoint_pb2.RotateEndpointSecretRequest(id=ep.id), metadata=api.auth
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "ROTATION_LIMIT"
    # A rotation without overlap retires the old secret at once and is always allowed.
    await api.endpoints.RotateEndpointSecret(
        endpoint_pb2.RotateEndpointSecretRequest(
            id=ep.id, overlap=duration_pb2.Duration(seconds=0)
        ),
        metadata=api.auth,
    )
