"""The peer a Python team would pick: Celery with a Redis broker, a task that signs and POSTs.

Worker (the runner starts it):

    python -m celery -A bench.celery_app worker --pool prefork --concurrency 2 \
        --prefetch-multiplier 4 --loglevel WARNING

Settings come from the environment so the runner can compare configurations:
``BENCH_CELERY_BROKER`` (default ``redis://127.0.0.1:6379/13``), ``BENCH_CELERY_ACKS_LATE``
(``1``: acks_late + reject_on_worker_lost, the durable choice; ``0``: Celery's default early ack)
and ``BENCH_CELERY_VISIBILITY`` (seconds before Redis hands an unacknowledged message to another
worker; Celery's default is one hour, the runner uses 10 s, 3 s in quick runs, so a crash test
can finish; the restore sweep runs every second).

The task id is the message id: the receiver counts deliveries by ``webhook-id``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
from celery import Celery  # type: ignore[import-untyped]

from bench.common import signed_request

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/13")
ACKS_LATE = os.environ.get("BENCH_CELERY_ACKS_LATE", "1") == "1"
VISIBILITY = int(os.environ.get("BENCH_CELERY_VISIBILITY", "10"))
MAX_RETRIES = 8

app = Celery("bench", broker=BROKER)
app.conf.update(
    task_acks_late=ACKS_LATE,
    task_reject_on_worker_lost=ACKS_LATE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=4,
    # A short visibility timeout needs a frequent sweep, or kombu restores unacked messages only
    # every 100 s (interval 10 s x throttle 10).
    broker_transport_options={
        "visibility_timeout": VISIBILITY,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)

_local = threading.local()


def _client() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(timeout=30.0, trust_env=False, follow_redirects=False)
        _local.client = client
    return client


@app.task(bind=True, name="bench.deliver", max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def deliver(self: Any, url: str) -> int:
    """Sign and POST one webhook; retry with exponential backoff on errors and non-2xx."""
    msg_id = str(self.request.id)
    body, headers = signed_request(msg_id)
    try:
        response = _client().post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 60)) from exc
    if not 200 <= response.status_code < 300:
        raise self.retry(countdown=min(2**self.request.retries, 60))
    return response.status_code
