"""Publish one JSON Lines file from many machines: a producer, arq workers and one Redis.

Needs the ``distributed`` extra (``pip install 'hakuna-async[distributed]'``). Start any
number of workers, on any machines that reach Redis and Hakuna::

    HAKUNA_REDIS_URL=redis://redis.internal:6379/0 HAKUNA_API_KEY=... \\
        arq hakuna_async.distributed.WorkerSettings

then one producer: ``hakuna-async publish FILE --redis URL``, or
``publish_distributed()`` below. The producer streams the file into jobs of
``job_size`` event lines (the raw lines and their line numbers) and waits while
``max_queued_jobs`` or more jobs are in the queue, so Redis stores at most that many
jobs of the input whatever its size. A worker publishes each job with ``publish_many`` and records
its figures and per-line results in Redis, and the producer writes those results to
its results file as they arrive.

Idempotency keys are derived from each event's content, so a job that runs twice (its
worker died, or the producer was rerun) publishes nothing twice. A job whose worker
died is run again by another worker once arq's lock on it expires: the worker's job
timeout (``HAKUNA_JOB_TIMEOUT``) plus 10 seconds. Rerunning the producer on the same
input (the same path, size and modification time, or the same ``run_id``) enqueues
only the jobs that are not recorded yet and the jobs that had failed lines.

Workers read their settings from the environment: ``HAKUNA_API_KEY`` and
``HAKUNA_BASE_URL`` or ``HAKUNA_ENVIRONMENT`` for the client, ``HAKUNA_REDIS_URL``
(default ``redis://127.0.0.1:6379/0``), ``HAKUNA_WORKER_JOBS`` (jobs one worker runs
at once, default 4) and ``HAKUNA_JOB_TIMEOUT`` (seconds per job, default 300).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from arq.connections import RedisSettings, create_pool
from arq.worker import func
from redis.exceptions import RedisError

from ._client import HakunaClient
from ._distributed import (
    JOB_FUNCTION,
    QUEUE_NAME,
    DistributedRunError,
    DistributedSummary,
    ErrorCallback,
    Producer,
    ProgressCallback,
    RunKeys,
    check_run_id,
    decode_job,
    encode_job,
)
from ._errors import RequestValidationError
from .batch import LineResult, describe_error

__all__ = [
    "DEFAULT_JOB_SIZE",
    "DEFAULT_MAX_QUEUED_JOBS",
    "DEFAULT_REDIS_URL",
    "DEFAULT_STALL_TIMEOUT",
    "QUEUE_NAME",
    "DistributedRunError",
    "DistributedSummary",
    "WorkerSettings",
    "derive_run_id",
    "publish_distributed",
    "publish_lines",
]

logger = logging.getLogger("hakuna_async.distributed")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_JOB_SIZE = 500
DEFAULT_MAX_QUEUED_JOBS = 40
DEFAULT_STALL_TIMEOUT = 900.0


def derive_run_id(path: str | os.PathLike[str]) -> str:
    """Return the run id of an input file: its name and a digest of its path, size and mtime."""
    resolved = Path(path).resolve()
    status = resolved.stat()
    identity = f"{resolved}\0{status.st_size}\0{status.st_mtime_ns}".encode()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.stem)[:40] or "input"
    return f"{stem}-{hashlib.sha256(identity).hexdigest()[:16]}"


async def publish_distributed(
    source: str | os.PathLike[str],
    *,
    redis_url: str = DEFAULT_REDIS_URL,
    run_id: str | None = None,
    results: str | os.PathLike[str] | None = None,
    job_size: int = DEFAULT_JOB_SIZE,
    max_queued_jobs: int = DEFAULT_MAX_QUEUED_JOBS,
    concurrency: int = 16,
    key_namespace: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    on_progress: ProgressCallback | None = None,
    on_error: ErrorCallback | None = None,
) -> DistributedSummary:
    """Enqueue the event lines of ``source`` as arq jobs, wait for the workers, summarize.

    ``source`` is a file path, not a pipe, because a lost job is read from it again.
    ``run_id`` defaults to ``derive_run_id(source)``. ``results`` receives each line's
    ``LineResult`` as JSON Lines, as in ``publish_jsonl``: the file is created anew
    for a new run and appended to for a rerun, where a line number may appear more than
    once and its last record counts. ``concurrency``, ``key_namespace``, ``timeout``
    and ``max_retries`` go to each job's ``publish_many``. The producer stops waiting
    when no job finishes for ``stall_timeout`` seconds and counts the lines of the jobs
    still queued as unfinished. ``on_progress`` gets a summary after each poll of
    Redis (about five times a second), and ``on_error`` each rejected or failed line.

    Raise ``DistributedRunError`` when Redis cannot be used or another producer is
    running the same run, ``ValueError`` for an invalid argument and ``OSError`` for a
    file error.
    """
    path = Path(source)
    for name, value in (
        ("job_size", job_size),
        ("max_queued_jobs", max_queued_jobs),
        ("concurrency", concurrency),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be a positive number, got {stall_timeout!r}.")
    run_id = check_run_id(derive_run_id(path) if run_id is None else run_id)

    # Workers send back the records of published lines only when a results file takes
    # them, and the records of failed lines only when someone reads them.
    records = "none"
    if results is not None:
        records = "all"
    elif on_error is not None:
        records = "errors"
    job_options: dict[str, Any] = {
        "concurrency": concurrency,
        "key_namespace": key_namespace,
        "timeout": timeout,
        "max_retries": max_retries,
        "records": records,
    }
    shown_url = _hide_password(redis_url)
    try:
        settings = RedisSettings.from_dsn(redis_url)
    except (RuntimeError, ValueError):
        raise DistributedRunError(
            f"Invalid Redis URL {shown_url}: expected redis://HOST:PORT/DB, rediss:// or unix://."
        ) from None
    try:
        pool = await create_pool(
            settings,
            job_serializer=encode_job,
            job_deserializer=decode_job,
            default_queue_name=QUEUE_NAME,
        )
    except (RedisError, OSError) as error:
        reason = str(error).rstrip(".")
        raise DistributedRunError(
            f"Cannot connect to Redis at {shown_url}: {reason}. Check the URL and that Redis "
            "is running."
        ) from None
    try:
        producer = Producer(
            pool,
            run_id,
            path=path,
            job_size=job_size,
            max_queued_jobs=max_queued_jobs,
            job_options=job_options,
            stall_timeout=stall_timeout,
            on_progress=on_progress,
            on_error=on_error,
        )
        return await producer.run(None if results is None else Path(results))
    except RedisError as error:
        raise DistributedRunError(
            f"Redis at {shown_url} failed during run {run_id}: {str(error).rstrip('.')}. "
            "Run the same command again to go on where it stopped."
        ) from None
    finally:
        await pool.aclose(close_connection_pool=True)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


# The worker side.

_CLIENT = "hakuna_client"
_record_encoder = msgspec.json.Encoder()


async def publish_lines(
    ctx: dict[Any, Any],
    run_id: str,
    job_number: int,
    options: dict[str, Any],
    line_numbers: list[int],
    lines: list[bytes],
) -> dict[str, int]:
    """Publish one job's event lines and record the outcome in Redis (the arq job).

    Return the job's figures. A job that is already recorded without failed lines is
    not published again.
    """
    keys = RunKeys(ctx["redis"], run_id)
    if await keys.is_recorded(job_number):
        logger.info("Job %d of run %s is already recorded, so it is skipped.", job_number, run_id)
        return {"skipped": len(lines)}

    client: HakunaClient = ctx[_CLIENT]
    record_mode = options.get("records")
    published = rejected = failed = 0
    records: list[bytes] = []
    batch = client.events.publish_many(
        lines,
        concurrency=options.get("concurrency", 16),
        key_namespace=options.get("key_namespace"),
        timeout=options.get("timeout"),
        max_retries=options.get("max_retries"),
    )
    async for result in batch:
        line_result = LineResult(
            line=line_numbers[result.index],
            event_id=result.event_id,
            idempotency_key=result.idempotency_key,
        )
        if result.error is None:
            published += 1
        else:
            if isinstance(result.error, RequestValidationError):
                rejected += 1
            else:
                failed += 1
            line_result.error = describe_error(result.error)
        if record_mode == "all" or (record_mode == "errors" and result.error is not None):
            records.append(_record_encoder.encode(line_result))

    recorded = await keys.record_job(
        job_number,
        published=published,
        rejected=rejected,
        failed=failed,
        records=b"\n".join(records),
    )
    logger.info(
        "Job %d of run %s: %d published, %d rejected, %d failed%s.",
        job_number,
        run_id,
        published,
        rejected,
        failed,
        "" if recorded else " (already recorded by another worker)",
    )
    return {"published": published, "rejected": rejected, "failed": failed}


async def _start_worker(ctx: dict[Any, Any]) -> None:
    # One client per worker process, shared by all its jobs. It reads HAKUNA_API_KEY
    # and HAKUNA_BASE_URL or HAKUNA_ENVIRONMENT, and raises here when they are missing.
    client = HakunaClient()
    ctx[_CLIENT] = client
    logger.info("Publishing worker started for %s", client.base_url)


async def _stop_worker(ctx: dict[Any, Any]) -> None:
    client: HakunaClient | None = ctx.pop(_CLIENT, None)
    if client is not None:
        await client.close()


def _positive_setting(name: str, default: float, *, integer: bool) -> Any:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = 0
    if not value > 0:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ValueError(f"{name} must be {kind}, got {text!r}.")
    return value


class WorkerSettings:
    """The arq worker settings: ``arq hakuna_async.distributed.WorkerSettings``.

    Read from the environment when this module is imported.
    """

    functions = (func(publish_lines, name=JOB_FUNCTION),)
    queue_name = QUEUE_NAME
    redis_settings = RedisSettings.from_dsn(os.environ.get("HAKUNA_REDIS_URL", DEFAULT_REDIS_URL))
    on_startup = _start_worker
    on_shutdown = _stop_worker
    max_jobs = _positive_setting("HAKUNA_WORKER_JOBS", 4, integer=True)
    job_timeout = _positive_setting("HAKUNA_JOB_TIMEOUT", 300.0, integer=False)
    # The run's state in Redis records each job, so arq keeps no results, and a job id
    # can be enqueued again as soon as arq has deleted the job.
    keep_result = 0
    # arq's default of 0.5 s would leave a worker idle that long between two jobs.
    poll_delay = 0.05
    job_serializer = encode_job
    job_deserializer = decode_job
