"""Determinism guard: recorded delivery histories must replay against today's workflow code.

Every `histories/delivery_*.json` was written by `tools/record_history.py` from a real run. A
change to DeliveryWorkflow that would break workflows already running (other commands, or the same
commands in another order) fails here. After an intended change guarded by `workflow.patched`,
keep the old histories (rename them, e.g. `delivery_retry_now.v1.json`) and record fresh ones:

    .venv/bin/python -m tools.record_history"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.delivery import DeliveryWorkflow

HISTORIES = Path(__file__).parent / "histories"
# The recorder publishes this in its event data; no history may carry it (the workflow moves ids,
# never payloads). Webhook secrets all start with "whsec_".
PAYLOAD_CANARY = "hookline-history-canary-4b7e91"
SECRET_PREFIX = "whsec_"
# Scenarios the recorder writes; the test fails if one is missing.
SCENARIOS = ("success", "backoff_then_success", "retry_now", "cancel_while_waiting")


def history_files() -> list[Path]:
    return sorted(HISTORIES.glob("delivery_*.json"))


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def readable_texts(text: str, depth: int = 0) -> Iterator[str]:
    """The text, and inside it (when it is JSON) every string that is base64, decoded: payloads
    are stored that way, and a payload may itself be JSON holding base64 bytes."""
    yield text
    if depth >= 3:
        return
    try:
        parsed = json.loads(text)
    except ValueError:
        return
    for value in strings(parsed):
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        yield from readable_texts(decoded.decode("utf-8", errors="replace"), depth + 1)


def leaks(history_json: str) -> list[str]:
    """What a history must not contain and does: event data or a signing secret."""
    found: set[str] = set()
    for text in readable_texts(history_json):
        found.update(marker for marker in (PAYLOAD_CANARY, SECRET_PREFIX) if marker in text)
    return sorted(found)


def test_every_scenario_is_recorded() -> None:
    recorded = {p.name for p in history_files()}
    assert {f"delivery_{s}.json" for s in SCENARIOS} <= recorded


@pytest.mark.parametrize("path", history_files(), ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    text = path.read_text()
    history = WorkflowHistory.from_json(f"replay-{path.stem}", text)
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
    # Raises on any nondeterminism (and on any other workflow task failure during replay).
    await Replayer(workflows=[DeliveryWorkflow]).replay_workflow(history)


@pytest.mark.parametrize("path", history_files(), ids=lambda p: p.stem)
def test_history_carries_no_payload_or_secret(path: Path) -> None:
    assert leaks(path.read_text()) == []


def test_leak_check_sees_base64_payloads() -> None:
    """The check must look inside payloads, where the converter puts JSON as base64."""
    payload = base64.b64encode(json.dumps({"data": PAYLOAD_CANARY}).encode()).decode()
    assert leaks(json.dumps({"events": [{"input": {"payloads": [{"data": payload}]}}]})) == [
        PAYLOAD_CANARY
    ]
    nested = base64.b64encode(json.dumps({"body": payload}).encode()).decode()
    assert leaks(json.dumps({"data": nested})) == [PAYLOAD_CANARY]
    assert leaks('{"secret": "whsec_abc"}') == [SECRET_PREFIX]
    assert leaks(json.dumps({"data": base64.b64encode(b'{"delivery_id":"dlv_1"}').decode()})) == []
