"""An arq worker that publishes order events to Hakuna, with one client per worker.

Needs ``pip install 'hakuna-async[distributed]'``. From the examples folder::

    HAKUNA_API_KEY=... REDIS_URL=redis://127.0.0.1:6379/0 arq arq_worker.WorkerSettings

A web handler or script enqueues an event (a dict of its JSON) with::

    redis = await arq.create_pool(REDIS_SETTINGS)
    await redis.enqueue_job("publish_order_event", event)
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from arq import Retry
from arq.connections import RedisSettings

from hakuna_async import APIConnectionError, HakunaClient, InternalServerError, RateLimitError

REDIS_SETTINGS = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


async def startup(ctx: dict[str, Any]) -> None:
    # One client for all the jobs of this worker, created in the worker's event loop.
    ctx["hakuna"] = HakunaClient()


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["hakuna"].close()


async def publish_order_event(ctx: dict[str, Any], event: dict[str, Any]) -> str:
    """Publish one event and return its Hakuna event id."""
    client: HakunaClient = ctx["hakuna"]
    # arq runs a job again after a retry or when its worker died mid-job. A key derived
    # from the job id is the same in every run, so Hakuna stores the event once.
    key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"arq-job:{ctx['job_id']}"))
    try:
        accepted = await client.events.publish(event, idempotency_key=key)
    except (APIConnectionError, RateLimitError, InternalServerError) as error:
        # The client has used up its own retries, so let arq try again later.
        raise Retry(defer=10 * ctx["job_try"]) from error
    return accepted.event_id


class WorkerSettings:
    functions = (publish_order_event,)
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = REDIS_SETTINGS
    max_tries = 5
