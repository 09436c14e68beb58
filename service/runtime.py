"""Process wiring around Temporal: the client, the worker, the dispatcher and delivery control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.delivery import DeliveryActivities, DeliverySettings
from activities.http_client import DeliveryHttpClient
from service.app import Core
from service.delivery_control import DeliveryControl
from service.dispatcher import Dispatcher
from workflows.delivery import DeliveryWorkflow

log = logging.getLogger("hookline")


async def connect_temporal(
    core: Core, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    return await Client.connect(
        core.settings.temporal_address,
        namespace=core.settings.temporal_namespace,
        lazy=lazy,
        # Workflow and activity spans; workers built on this client inherit it.
        interceptors=[TracingInterceptor()],
        runtime=runtime,
    )


@dataclass
class Delivery:
    """What a process needs to start and control deliveries."""

    client: Client
    dispatcher: Dispatcher
    control: DeliveryControl


DISPATCH_CONCURRENCY = 32
# Modules with no workflow-visible state: the workflow package itself (pure code and dataclasses)
# and what the activities it names pull in.
PASSTHROUGH = (
    "workflows",
    "activities",
    "service",
    "hookline",
    "sqlmodel",
    "sqlalchemy",
    "pydantic",
    "aiohttp",
    "opentelemetry",
    "grpc",
)


def attach_delivery(core: Core, client: Client, *, with_worker: bool = False) -> Delivery:
    """Publishing wakes the dispatcher; disabling or deleting an endpoint cancels its deliveries."""
    dispatcher = Dispatcher(
        core.sessions,
        client,
        core.settings.task_queue,
        concurrency=DISPATCH_CONCURRENCY,
        eager=with_worker,
    )
    control = DeliveryControl(core.sessions, client, core.settings.task_queue, dispatcher)
    core.ingestor.set_on_committed(dispatcher.wake)
    core.endpoints.set_on_stopped(control.endpoint_stopped)
    return Delivery(client=client, dispatcher=dispatcher, control=control)


def build_worker(
    core: Core,
    client: Client,
    http: DeliveryHttpClient,
    *,
    task_queue: str | None = None,
) -> Worker:
    activities = DeliveryActivities(
        core.sessions,
        core.endpoints,
        http,
        DeliverySettings(vendor_signature_header=core.settings.signature_header or None),
    )
    return Worker(
        client,
        task_queue=task_queue or core.settings.task_queue,
        workflows=[DeliveryWorkflow],
        workflow_runner=workflow_runner(core.settings.workflow_sandbox),
        activities=[activities.attempt, activities.finish],
        max_concurrent_activities=200,
        max_concurrent_local_activities=200,
        # Eager starts only go eager while a workflow-task slot is free: keep more slots than
        # concurrent starts (perf-notes: too few and half the starts silently fall back).
        max_concurrent_workflow_tasks=4 * DISPATCH_CONCURRENCY,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    # Still sandboxed, but Hookline's own and its dependencies' modules are loaded once rather
    # than re-imported for every workflow run (that import was 7 % of the CPU per delivery).
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def http_client(core: Core, verify: ssl.SSLContext | str | bool = True) -> DeliveryHttpClient:
    return DeliveryHttpClient(policy=core.policy, resolver=core.resolver, verify=verify)


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run a coroutine as a task for the duration of a block, cancelling it on exit."""
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
