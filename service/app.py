"""Wiring: builds every component once from Settings and hands them out explicitly."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from service.auth import Authenticator
from service.catalog import Catalog
from service.config import Settings
from service.crypto import SecretBox
from service.db.engine import SessionFactory, create_engine, session_factory
from service.db.migrate import upgrade_to_head
from service.endpoints import EndpointManager
from service.ingest import Ingestor
from service.ssrf import NetworkPolicy, Resolver, SystemResolver

log = logging.getLogger("hookline")

MASTER_KEY_FILE = "master.keys"


def load_secret_box(settings: Settings) -> SecretBox:
    """HOOKLINE_MASTER_KEYS in production; on the embedded default a key file made on first start."""
    if settings.master_keys:
        return SecretBox.from_spec(settings.master_keys)
    path = settings.data_dir / MASTER_KEY_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(SecretBox.generate_spec("k1"))
        log.warning(
            "generated a master key in %s; set HOOKLINE_MASTER_KEYS outside local development", path
        )
    return SecretBox.from_spec(path.read_text().strip())


def network_policy(settings: Settings) -> NetworkPolicy:
    port = settings.grpc_address.rsplit(":", 1)[-1]
    own_ports = [int(port)] if port.isdigit() and int(port) > 0 else []
    return NetworkPolicy.from_strings(
        settings.ssrf_allow_cidrs, allow_http=settings.ssrf_allow_http, blocked_ports=own_ports
    )


@dataclass
class Core:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    catalog: Catalog
    box: SecretBox
    policy: NetworkPolicy
    resolver: Resolver
    auth: Authenticator
    ingestor: Ingestor
    endpoints: EndpointManager

    async def aclose(self) -> None:
        await self.engine.dispose()


async def build_core(
    settings: Settings, *, resolver: Resolver | None = None, migrate: bool = True
) -> Core:
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    if migrate:
        await upgrade_to_head(engine)
    sessions = session_factory(engine)
    catalog = Catalog.load(settings.catalog_path)
    box = load_secret_box(settings)
    policy = network_policy(settings)
    resolver = resolver or SystemResolver()
    ingestor = Ingestor(sessions, catalog, max_event_bytes=settings.max_event_bytes)
    return Core(
        settings=settings,
        engine=engine,
        sessions=sessions,
        catalog=catalog,
        box=box,
        policy=policy,
        resolver=resolver,
        auth=Authenticator(sessions),
        ingestor=ingestor,
        endpoints=EndpointManager(sessions, catalog, box, ingestor, policy, resolver),
    )
