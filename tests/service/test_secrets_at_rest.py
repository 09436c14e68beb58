from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlmodel import select

from hookline.v1 import endpoint_pb2
from service.config import Settings
from service.db.models import EndpointSecret
from tests.conftest import Api


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Only SQLite here: the point is to read the database file itself."""
    return f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"


async def test_secret_plaintext_is_absent_from_database_file(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    secret = "whsec_" + base64.b64encode(b"very-distinctive-secret-bytes!!!").decode()
    created = await api.endpoints.CreateEndpoint(
        endpoint_pb2.CreateEndpointRequest(
            url="https://hooks.example.com/x", events=["*"], secret=secret
        ),
        metadata=api.auth,
    )
    rotated = await api.endpoints.RotateEndpointSecret(
        endpoint_pb2.RotateEndpointSecretRequest(id=created.endpoint.id), metadata=api.auth
    )
    await api.core.engine.dispose()  # checkpoint and close so every byte is in the files
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("hookline.db*"))
    for plaintext in (secret, rotated.secret):
        body = plaintext.removeprefix("whsec_")
        assert plaintext.encode() not in raw
        assert body.encode() not in raw
        assert base64.b64decode(body) not in raw
    # ...and yet both still decrypt for signing.
    keys = await api.core.endpoints.signing_keys(created.endpoint.id)
    assert base64.b64decode(secret.removeprefix("whsec_")) in keys
    assert base64.b64decode(rotated.secret.removeprefix("whsec_")) in keys
    async with api.core.sessions() as session:
        rows = (
            await session.exec(
                select(EndpointSecret).where(EndpointSecret.endpoint_id == created.endpoint.id)
            )
        ).all()
    assert all(r.ciphertext.startswith("v1.test1.") for r in rows)
