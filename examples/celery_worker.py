"""A Celery worker that publishes order events to Hakuna through ``HakunaSyncClient``.

Needs ``pip install 'hakuna-async[recipes]'``. From the examples folder::

    HAKUNA_API_KEY=... REDIS_URL=redis://127.0.0.1:6379/0 \\
        celery -A celery_worker worker --pool prefork --concurrency 2

and send an event (a dict of its JSON) with ``publish_order_event.delay(event)``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown

from hakuna_async import APIConnectionError, InternalServerError, RateLimitError
from hakuna_async.sync import HakunaSyncClient

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("hakuna_recipes", broker=REDIS_URL, backend=REDIS_URL)
app.conf.broker_connection_retry_on_startup = True

client: HakunaSyncClient | None = None


@worker_process_init.connect
def open_client(**_: Any) -> None:
    # Runs in each pool process after the fork, so that every process has its own
    # client, event-loop thread and connections.
    global client
    client = HakunaSyncClient()


@worker_process_shutdown.connect
def close_client(**_: Any) -> None:
    if client is not None:
        client.close()


@app.task(name="hakuna.publish_order_event", bind=True, max_retries=3)
def publish_order_event(self: Task, event: dict[str, Any]) -> str:
    """Publish one event and return its Hakuna event id."""
    assert client is not None, "the client is created when the pool process starts"
    # A retry of a task keeps its id, so a key derived from it makes Hakuna store the
    # event once however often the task runs.
    key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"celery-task:{self.request.id}"))
    try:
        return client.events.publish(event, idempotency_key=key).event_id
    except (APIConnectionError, RateLimitError, InternalServerError) as error:
        # The client has used up its own retries, so let Celery try again later.
        raise self.retry(exc=error, countdown=10) from error
