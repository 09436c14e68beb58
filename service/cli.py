"""`hookline`: the one entry point (serve, dev, worker, tenants, migrate)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.server import ApiServer

app = typer.Typer(no_args_is_help=True, help="Hookline: durable webhook delivery over gRPC.")
tenants = typer.Typer(no_args_is_help=True, help="Manage tenants and their API keys.")
app.add_typer(tenants, name="tenants")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.hookline).")
]
log = logging.getLogger("hookline")


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings.from_env(**overrides)


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(core: Core) -> None:
    server = ApiServer(core, core.settings.grpc_address)
    await server.start()
    log.info("gRPC API listening on %s", core.settings.grpc_address)
    try:
        await _wait_for_stop_signal()
        log.info("stopping: draining in-flight calls")
    finally:
        await server.stop()
        await core.aclose()


@app.command()
def serve(
    data_dir: DataDir = None,
    address: Annotated[str | None, typer.Option(help="host:port to listen on.")] = None,
) -> None:
    """Run the gRPC API."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides: dict[str, object] = {"grpc_address": address} if address else {}

    async def main() -> None:
        await _serve(await build_core(_settings(data_dir, **overrides)))

    asyncio.run(main())


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Bring the database schema up to date."""

    async def main() -> None:
        core = await build_core(_settings(data_dir))
        await core.aclose()

    asyncio.run(main())
    typer.echo("schema is up to date")


@tenants.command("create")
def tenants_create(name: str, data_dir: DataDir = None) -> None:
    """Create a tenant and print its API key (shown once)."""

    async def main() -> str:
        core = await build_core(_settings(data_dir))
        try:
            tenant, key = await create_tenant(core.sessions, name)
        finally:
            await core.aclose()
        return f"tenant {tenant.id} ({tenant.name})\napi key (shown once): {key}"

    typer.echo(asyncio.run(main()))
