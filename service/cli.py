"""`hookline`: the one entry point (serve, dev, worker, tenants, migrate)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.logs import configure_logging
from service.runtime import attach_delivery, background, build_worker, connect_temporal, http_client
from service.server import ApiServer
from service.telemetry import configure_metrics, configure_tracing
from service.temporal_dev import DevServer, DevServerConfig
from workflows import search_attributes

app = typer.Typer(no_args_is_help=True, help="Hookline: durable webhook delivery over gRPC.")
tenants = typer.Typer(no_args_is_help=True, help="Manage tenants and their API keys.")
app.add_typer(tenants, name="tenants")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.hookline).")
]
log = logging.getLogger("hookline")


MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="Serve Prometheus metrics on this port (Hookline's), and Temporal SDK metrics on the next."
    ),
]


def _observability(
    *, dev: bool, metrics_port: int | None, trace_console: bool = False
) -> Runtime | None:
    """Logs (JSON unless dev or HOOKLINE_LOG_FORMAT=text), traces and metrics from OTEL_* settings."""
    fmt = os.environ.get("HOOKLINE_LOG_FORMAT", "text" if dev else "json")
    configure_logging(json_lines=fmt == "json")
    configure_tracing(console=trace_console)
    configure_metrics(prometheus_port=metrics_port)
    if metrics_port is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port + 1}")
        )
    )


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings.from_env(**overrides)


async def _wait_for_stop_signal(also: asyncio.Future[None] | None = None) -> None:
    """Returns on SIGTERM or SIGINT, or when `also` (the worker) ends by itself."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if also is not None:
        waiters.append(also)
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    waiters[0].cancel()


LOOPBACK_CIDRS = ("127.0.0.0/8", "::1/128")


async def _run(
    core: Core, *, api: bool, worker: bool, lazy_temporal: bool, runtime: Runtime | None
) -> None:
    """Run the API and/or a worker, each with a dispatcher, until SIGTERM or SIGINT."""
    client = await connect_temporal(core, lazy=lazy_temporal, runtime=runtime)
    delivery = attach_delivery(core, client, with_worker=worker)
    server = ApiServer(core, core.settings.grpc_address, delivery.control) if api else None
    async with http_client(core) as http, background(delivery.dispatcher.run()):
        temporal_worker = build_worker(core, client, http) if worker else None
        worker_task = asyncio.ensure_future(temporal_worker.run()) if temporal_worker else None
        if server is not None:
            await server.start()
            log.info("gRPC API listening on %s", core.settings.grpc_address)
        if temporal_worker is not None:
            log.info("worker polling task queue %s", core.settings.task_queue)
        try:
            await _wait_for_stop_signal(worker_task)
            log.info("stopping: draining in-flight calls and attempts")
        finally:
            if server is not None:
                await server.stop()
            if temporal_worker is not None and worker_task is not None:
                if not worker_task.done():
                    await temporal_worker.shutdown()
                await asyncio.gather(worker_task, return_exceptions=True)
    await core.aclose()


@app.command()
def serve(
    data_dir: DataDir = None,
    address: Annotated[str | None, typer.Option(help="host:port to listen on.")] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Run the gRPC API (and a dispatcher) against HOOKLINE_TEMPORAL_ADDRESS."""
    runtime = _observability(dev=False, metrics_port=metrics_port)
    overrides: dict[str, object] = {"grpc_address": address} if address else {}

    async def main() -> None:
        core = await build_core(_settings(data_dir, **overrides))
        await _run(core, api=True, worker=False, lazy_temporal=True, runtime=runtime)

    asyncio.run(main())


@app.command()
def worker(data_dir: DataDir = None, metrics_port: MetricsPort = None) -> None:
    """Run a delivery worker (and a dispatcher) against HOOKLINE_TEMPORAL_ADDRESS."""
    runtime = _observability(dev=False, metrics_port=metrics_port)

    async def main() -> None:
        core = await build_core(_settings(data_dir))
        await _run(core, api=False, worker=True, lazy_temporal=False, runtime=runtime)

    asyncio.run(main())


@app.command()
def dev(
    data_dir: DataDir = None,
    address: Annotated[str | None, typer.Option(help="gRPC host:port.")] = None,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    allow_loopback_receivers: Annotated[
        bool,
        typer.Option(
            help="Let endpoints point at 127.0.0.0/8 and ::1 over plain http (local testing only)."
        ),
    ] = False,
    trace_console: Annotated[bool, typer.Option(help="Print every span to stdout.")] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Everything on one machine: Temporal dev server (SQLite file), the API and a worker."""
    runtime = _observability(dev=True, metrics_port=metrics_port, trace_console=trace_console)
    overrides: dict[str, object] = {"grpc_address": address} if address else {}
    if allow_loopback_receivers:
        overrides |= {"ssrf_allow_cidrs": LOOPBACK_CIDRS, "ssrf_allow_http": True}
    settings = _settings(data_dir, **overrides)

    async def main() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        config = DevServerConfig(
            db_file=settings.data_dir / "temporal.db",
            port=temporal_port,
            ui_port=ui_port,
            namespace=settings.temporal_namespace,
            search_attributes=search_attributes.dev_server_flags(),
            log_file=settings.data_dir / "temporal.log",
        )
        async with DevServer(config) as temporal:
            core = await build_core(replace(settings, temporal_address=temporal.target))
            log.info("Temporal dev server on %s, Web UI at %s", temporal.target, temporal.ui_url)
            log.info("data in %s (SQLite store and Temporal history)", settings.data_dir.resolve())
            if allow_loopback_receivers:
                log.warning(
                    "!!! SSRF allowance ON: endpoints may target loopback over plain http. "
                    "Never use --allow-loopback-receivers outside local testing. !!!"
                )
            await _run(core, api=True, worker=True, lazy_temporal=False, runtime=runtime)

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
