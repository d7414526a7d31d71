"""The producer of a distributed run and the Redis state it shares with the workers.

Every key of a run starts with ``hakuna_async:run:<run id>:``:

- ``meta``: a hash with the job size and the input's path and size.
- ``done``: a bitmap with bit ``n`` set once job ``n`` has been recorded.
- ``retry``: a hash from job number to ``"published rejected failed"``. It lists the jobs
  whose latest attempt had failed lines, which a rerun of the producer enqueues again.
- ``counts``: a hash of the run's totals: ``published``, ``rejected``, ``failed``.
- ``results``: a list of per-line result records, one element of JSON Lines per job,
  which the producer removes as it writes them to its results file.
- ``producer``: the lock that keeps a second producer off the same run.

The keys expire ``RUN_TTL_SECONDS`` after the producer or a worker last wrote to them.
The jobs themselves are arq's: ``arq:job:hakuna_async:<run id>:<job number>``, listed in
the sorted set ``QUEUE_NAME`` until they finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import msgspec
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ._errors import HakunaError
from .batch import LineResult

__all__ = [
    "JOB_FUNCTION",
    "QUEUE_NAME",
    "RUN_TTL_SECONDS",
    "DistributedRunError",
    "DistributedSummary",
    "Producer",
    "RunKeys",
    "check_run_id",
    "decode_job",
    "encode_job",
]

logger = logging.getLogger("hakuna_async.distributed")

#: The arq queue of publishing jobs. Producer and workers must use the same one.
QUEUE_NAME = "hakuna_async:publish"
JOB_FUNCTION = "hakuna_publish_lines"
RUN_TTL_SECONDS = 7 * 24 * 3600

_POLL_SECONDS = 0.2
_LOCK_TTL_SECONDS = 10
# A job that disappears from arq without being recorded (its worker raised, or arq gave
# up on it) is enqueued again, at most this many times in one producer run.
_MAX_JOB_ATTEMPTS = 3
_RESULT_ELEMENTS_PER_READ = 64
_RESULT_READS_PER_POLL = 16
_MAX_RESULT_READS_AT_END = 1_000_000

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")

T = TypeVar("T")


class DistributedRunError(HakunaError):
    """The run cannot start or go on: Redis is unreachable, or the run's state conflicts."""


class DistributedSummary(msgspec.Struct, kw_only=True):
    """The figures of a distributed run, over all producer runs with the same run id.

    ``lines`` counts the event lines in the input. ``published``, ``rejected`` and
    ``failed`` mean what they mean in ``BatchSummary``, over every job recorded so far.
    ``unfinished`` counts the lines of jobs that no worker recorded before this producer
    stopped waiting. ``skipped`` counts the lines of jobs that an earlier producer run
    saw recorded, which were not enqueued again. So ``lines`` equals
    ``published + rejected + failed + unfinished`` once the producer has returned.
    ``requeued_jobs`` counts jobs enqueued again after they were lost, and ``stalled``
    is True when the producer stopped waiting because no job finished within its stall
    timeout. ``events_per_second`` counts the events published during this producer run.
    """

    run_id: str
    lines: int = 0
    jobs: int = 0
    published: int = 0
    rejected: int = 0
    failed: int = 0
    unfinished: int = 0
    skipped: int = 0
    requeued_jobs: int = 0
    stalled: bool = False
    elapsed_seconds: float = 0.0
    events_per_second: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every line was published."""
        return self.rejected == 0 and self.failed == 0 and self.unfinished == 0


ProgressCallback = Callable[[DistributedSummary], None]
ErrorCallback = Callable[[LineResult], None]


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` when it is usable in Redis keys, else raise ``ValueError``."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"Invalid run id {run_id!r}: use 1 to 100 letters, digits, '.', '_' or '-'."
        )
    return run_id


def arq_job_id(run_id: str, job_number: int) -> str:
    """Return the arq job id of one job: fixed, so that arq never queues a job twice."""
    return f"hakuna_async:{run_id}:{job_number}"


class RunTotals(msgspec.Struct, frozen=True):
    """A run's totals over every job recorded so far."""

    published: int = 0
    rejected: int = 0
    failed: int = 0


# Record one finished job atomically. A job already recorded without failed lines is
# not counted again, because arq runs a job twice when a worker dies after recording it.
# A job recorded with failed lines is replaced, and the totals change by the difference.
# Redis does not undo a script's writes when it fails midway, so every value is computed
# before the first write.
_RECORD_JOB = """
local job = tonumber(ARGV[1])
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if redis.call('GETBIT', KEYS[1], job) == 1 and not previous then
  return 0
end
local counts = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local old = {0, 0, 0}
if previous then
  local p, r, f = string.match(previous, '^(%d+) (%d+) (%d+)$')
  old = {tonumber(p), tonumber(r), tonumber(f)}
end
local fields = {'published', 'rejected', 'failed'}
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[3], fields[i], string.format('%d', counts[i] - old[i]))
end
redis.call('SETBIT', KEYS[1], job, 1)
if counts[3] > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
elseif previous then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[4], ARGV[5])
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, tonumber(ARGV[6]))
end
return 1
"""

# Keep the lock, or take it back if it expired while no other producer took it.
_REFRESH_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


async def _reply(value: Awaitable[T] | T) -> T:
    # redis-py types each command for its blocking and its asyncio client at once.
    if inspect.isawaitable(value):
        return cast(T, await value)
    return value


class RunKeys:
    """The Redis keys of one run, and the operations on them."""

    def __init__(self, redis: Redis, run_id: str) -> None:
        self.redis = redis
        self.run_id = check_run_id(run_id)
        prefix = f"hakuna_async:run:{run_id}:"
        self.meta = prefix + "meta"
        self.done = prefix + "done"
        self.retry = prefix + "retry"
        self.counts = prefix + "counts"
        self.results = prefix + "results"
        self.producer = prefix + "producer"

    async def is_recorded(self, job_number: int) -> bool:
        """True when the job is recorded and none of its lines failed."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.getbit(self.done, job_number)
            pipe.hexists(self.retry, str(job_number))
            done, has_failures = await pipe.execute()
        return bool(done) and not has_failures

    async def record_job(
        self, job_number: int, *, published: int, rejected: int, failed: int, records: bytes
    ) -> bool:
        """Add one job's figures and records. Return False if it was already recorded."""
        keys = [self.done, self.retry, self.counts, self.results]
        arguments: list[Any] = [job_number, published, rejected, failed, records]
        arguments.append(RUN_TTL_SECONDS)
        recorded = await _reply(self.redis.eval(_RECORD_JOB, len(keys), *keys, *arguments))
        return bool(recorded)

    async def totals(self) -> RunTotals:
        values = await _reply(self.redis.hmget(self.counts, ["published", "rejected", "failed"]))
        published, rejected, failed = (int(value or 0) for value in values)
        return RunTotals(published=published, rejected=rejected, failed=failed)

    async def done_bits(self) -> bytes:
        bits: bytes | None = await self.redis.get(self.done)
        return bits or b""

    async def jobs_to_retry(self) -> set[int]:
        return {int(job) for job in await _reply(self.redis.hkeys(self.retry))}

    async def meta_fields(self) -> dict[bytes, bytes]:
        return await _reply(self.redis.hgetall(self.meta))

    async def create_meta(self, fields: dict[str, str | int]) -> None:
        await _reply(self.redis.hset(self.meta, mapping=dict(fields)))
        await self.keep_alive()

    async def try_lock(self, token: str, ttl_seconds: int) -> bool:
        return bool(await self.redis.set(self.producer, token, nx=True, ex=ttl_seconds))

    async def refresh_lock(self, token: str, ttl_seconds: int) -> bool:
        arguments: list[Any] = [token, ttl_seconds]
        return bool(await _reply(self.redis.eval(_REFRESH_LOCK, 1, self.producer, *arguments)))

    async def release_lock(self, token: str) -> None:
        await _reply(self.redis.eval(_RELEASE_LOCK, 1, self.producer, token))

    async def keep_alive(self) -> None:
        """Push back the expiry of the run's keys by ``RUN_TTL_SECONDS``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (self.meta, self.done, self.retry, self.counts, self.results):
                pipe.expire(key, RUN_TTL_SECONDS)
            await pipe.execute()


# Jobs travel as MessagePack, not arq's default pickle, so that reading a job from
# Redis cannot run code. arq also serializes a failed job's exception, which becomes
# its repr.
def _encode_unsupported(value: Any) -> str:
    return repr(value)


_job_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_unsupported)
_job_decoder = msgspec.msgpack.Decoder()
_line_result_decoder = msgspec.json.Decoder(LineResult)


def encode_job(data: dict[str, Any]) -> bytes:
    return _job_encoder.encode(data)


def decode_job(data: bytes) -> dict[str, Any]:
    return cast(dict[str, Any], _job_decoder.decode(data))


@dataclass
class _Chunk:
    job_number: int
    offset: int
    line_numbers: list[int]
    lines: list[bytes]


@dataclass
class _InFlight:
    offset: int
    first_line: int
    lines: int
    attempts: int


class Producer:
    """Enqueue one input file as jobs, wait for them, and collect their results."""

    def __init__(
        self,
        pool: ArqRedis,
        run_id: str,
        *,
        path: Path,
        job_size: int,
        max_queued_jobs: int,
        job_options: dict[str, Any],
        stall_timeout: float,
        on_progress: ProgressCallback | None,
        on_error: ErrorCallback | None,
    ) -> None:
        self.pool = pool
        self.keys = RunKeys(pool, run_id)
        self.path = path
        self.size = path.stat().st_size
        self.job_size = job_size
        self.max_queued_jobs = max_queued_jobs
        self.job_options = job_options
        self.stall_timeout = stall_timeout
        self.on_progress = on_progress
        self.on_error = on_error

        self.summary = DistributedSummary(run_id=run_id)
        self.in_flight: dict[int, _InFlight] = {}
        self.results_file: IO[bytes] | None = None
        self.lock_token = secrets.token_hex(16)
        self.started = time.monotonic()
        self.last_change = self.started
        self.last_poll = 0.0
        self.totals = RunTotals()
        self.published_before = 0

    async def run(self, results: Path | None) -> DistributedSummary:
        """Publish the whole input through the workers and return the run's figures."""
        await self._lock()
        try:
            is_new_run = await self._load_or_create_meta()
            done_bits = await self.keys.done_bits()
            retry_jobs = await self.keys.jobs_to_retry()
            self.totals = await self.keys.totals()
            self.published_before = self.totals.published
            with contextlib.ExitStack() as stack:
                if results is not None:
                    self.results_file = stack.enter_context(
                        _open_results(results, append=not is_new_run)
                    )
                with self.path.open("rb") as input_file:
                    for chunk in _read_chunks(input_file, self.job_size):
                        await self._submit(chunk, done_bits, retry_jobs)
                await self._wait_for_jobs()
                # Every job is now recorded or given up on, so only records are left.
                await self._drain_results(max_reads=_MAX_RESULT_READS_AT_END)
        finally:
            with contextlib.suppress(RedisError):
                await self.keys.release_lock(self.lock_token)

        self.totals = await self.keys.totals()
        summary = self._snapshot()
        if self.on_progress is not None:
            self.on_progress(summary)
        return summary

    # Start.

    async def _lock(self) -> None:
        # A killed producer keeps the lock until it expires, so wait that long.
        deadline = time.monotonic() + _LOCK_TTL_SECONDS + 1
        while not await self.keys.try_lock(self.lock_token, _LOCK_TTL_SECONDS):
            if time.monotonic() > deadline:
                raise DistributedRunError(
                    f"Another producer is running run {self.keys.run_id}. Wait for it to "
                    "finish, or pass another --run-id to start a separate run."
                )
            await asyncio.sleep(0.5)

    async def _load_or_create_meta(self) -> bool:
        meta = await self.keys.meta_fields()
        if not meta:
            await self.keys.create_meta(
                {
                    "job_size": self.job_size,
                    "source": str(self.path.resolve()),
                    "size": self.size,
                    "created": int(time.time()),
                }
            )
            return True
        stored_job_size = int(meta.get(b"job_size", b"0"))
        if stored_job_size != self.job_size:
            raise DistributedRunError(
                f"Run {self.keys.run_id} was started with a job size of {stored_job_size}; "
                f"pass --job-size {stored_job_size}, or another --run-id to start anew."
            )
        stored_size = int(meta.get(b"size", b"-1"))
        if stored_size != self.size:
            raise DistributedRunError(
                f"Run {self.keys.run_id} was started for an input of {stored_size:,} bytes, "
                f"but {self.path} has {self.size:,}. Pass another --run-id for a new input."
            )
        return False

    # Enqueue.

    async def _submit(self, chunk: _Chunk, done_bits: bytes, retry_jobs: set[int]) -> None:
        if time.monotonic() - self.last_poll >= _POLL_SECONDS:
            await self._poll()
        self.summary.lines += len(chunk.lines)
        self.summary.jobs += 1
        number = chunk.job_number
        if _bit_is_set(done_bits, number) and number not in retry_jobs:
            self.summary.skipped += len(chunk.lines)
            return

        # Back-pressure: the queue contains at most max_queued_jobs jobs, running ones
        # included, because arq removes a job from its queue only when it finishes.
        while not self.summary.stalled and (
            await self.pool.zcard(QUEUE_NAME) >= self.max_queued_jobs
        ):
            await self._poll()
            if self._is_stalled():
                self._stop_waiting()
                break
            await asyncio.sleep(_POLL_SECONDS)
        if self.summary.stalled:
            self.summary.unfinished += len(chunk.lines)
            return

        if number in retry_jobs:
            # Let the done bit mean "recorded by this attempt" again.
            await self.pool.setbit(self.keys.done, number, 0)
        await self._enqueue(chunk)
        self.in_flight[number] = _InFlight(
            offset=chunk.offset,
            first_line=chunk.line_numbers[0],
            lines=len(chunk.lines),
            attempts=1,
        )

    async def _enqueue(self, chunk: _Chunk) -> None:
        # enqueue_job returns None when arq already has this job id, from an earlier
        # producer run: a worker will run that one, so it is waited for the same way.
        await self.pool.enqueue_job(
            JOB_FUNCTION,
            self.keys.run_id,
            chunk.job_number,
            self.job_options,
            chunk.line_numbers,
            chunk.lines,
            _job_id=arq_job_id(self.keys.run_id, chunk.job_number),
        )

    # Wait.

    async def _wait_for_jobs(self) -> None:
        while self.in_flight:
            await self._poll()
            if not self.in_flight:
                return
            if self._is_stalled():
                self._stop_waiting()
                return
            await asyncio.sleep(_POLL_SECONDS)

    def _is_stalled(self) -> bool:
        return time.monotonic() - self.last_change > self.stall_timeout

    def _stop_waiting(self) -> None:
        logger.warning(
            "No job of run %s finished in %.0f s, with %d jobs still waiting; stopped "
            "waiting. Check that workers are running, then run the producer again.",
            self.keys.run_id,
            self.stall_timeout,
            len(self.in_flight),
        )
        self.summary.stalled = True
        for job in self.in_flight.values():
            self.summary.unfinished += job.lines
        self.in_flight.clear()

    async def _poll(self) -> None:
        self.last_poll = time.monotonic()
        await self._drain_results(max_reads=_RESULT_READS_PER_POLL)
        await self._check_in_flight()
        totals = await self.keys.totals()
        if totals != self.totals:
            self.totals = totals
            self.last_change = time.monotonic()
        if not await self.keys.refresh_lock(self.lock_token, _LOCK_TTL_SECONDS):
            raise DistributedRunError(
                f"The producer lost its lock on run {self.keys.run_id}: it did not reach "
                f"Redis for {_LOCK_TTL_SECONDS} s, and another producer took over. Stopped."
            )
        if self.on_progress is not None:
            self.on_progress(self._snapshot())

    async def _check_in_flight(self) -> None:
        if not self.in_flight:
            return
        numbers = list(self.in_flight)
        # One transaction, so both results describe the same moment. A worker sets the
        # done bit before arq deletes the job, so "gone and not done" means lost.
        async with self.pool.pipeline(transaction=True) as pipe:
            for number in numbers:
                pipe.exists(job_key_prefix + arq_job_id(self.keys.run_id, number))
                pipe.getbit(self.keys.done, number)
            answers = await pipe.execute()
        for index, number in enumerate(numbers):
            queued, done = answers[2 * index], answers[2 * index + 1]
            if queued:
                continue
            job = self.in_flight.pop(number)
            self.last_change = time.monotonic()
            if not done:
                await self._enqueue_lost_job(number, job)

    async def _enqueue_lost_job(self, number: int, job: _InFlight) -> None:
        if job.attempts >= _MAX_JOB_ATTEMPTS:
            logger.warning(
                "Job %d of run %s (from line %d) was lost %d times; giving up on it. "
                "Run the producer again to retry it.",
                number,
                self.keys.run_id,
                job.first_line,
                job.attempts,
            )
            self.summary.unfinished += job.lines
            return
        logger.info(
            "Job %d of run %s was lost before it was recorded; enqueuing it again.",
            number,
            self.keys.run_id,
        )
        await self._enqueue(self._read_chunk_again(number, job))
        job.attempts += 1
        self.in_flight[number] = job
        self.summary.requeued_jobs += 1

    def _read_chunk_again(self, number: int, job: _InFlight) -> _Chunk:
        chunk = _Chunk(number, job.offset, [], [])
        with self.path.open("rb") as input_file:
            input_file.seek(job.offset)
            for line_number, raw in enumerate(input_file, start=job.first_line):
                if not raw.strip():
                    continue
                chunk.line_numbers.append(line_number)
                chunk.lines.append(raw)
                if len(chunk.lines) == job.lines:
                    break
        return chunk

    # Results.

    async def _drain_results(self, *, max_reads: int) -> None:
        # LRANGE then LTRIM removes exactly what was read, because workers only append.
        for _ in range(max_reads):
            elements = await _reply(
                self.pool.lrange(self.keys.results, 0, _RESULT_ELEMENTS_PER_READ - 1)
            )
            if not elements:
                return
            for element in elements:
                self._write_records(element)
            if self.results_file is not None:
                self.results_file.flush()
            await _reply(self.pool.ltrim(self.keys.results, len(elements), -1))

    def _write_records(self, element: bytes) -> None:
        if self.results_file is not None:
            self.results_file.write(element)
            self.results_file.write(b"\n")
        if self.on_error is None:
            return
        for raw in element.split(b"\n"):
            record = _line_result_decoder.decode(raw)
            if record.error is not None:
                self.on_error(record)

    def _snapshot(self) -> DistributedSummary:
        elapsed = time.monotonic() - self.started
        published_now = self.totals.published - self.published_before
        return msgspec.structs.replace(
            self.summary,
            published=self.totals.published,
            rejected=self.totals.rejected,
            failed=self.totals.failed,
            elapsed_seconds=elapsed,
            events_per_second=published_now / elapsed if elapsed > 0 else 0.0,
        )


def _read_chunks(input_file: IO[bytes], job_size: int) -> Iterator[_Chunk]:
    """Split the input into chunks of ``job_size`` non-blank lines, with byte offsets."""
    offset = 0
    chunk = _Chunk(0, 0, [], [])
    for line_number, raw in enumerate(input_file, start=1):
        if raw.strip():
            if not chunk.lines:
                chunk.offset = offset
            chunk.line_numbers.append(line_number)
            chunk.lines.append(raw)
            if len(chunk.lines) == job_size:
                yield chunk
                chunk = _Chunk(chunk.job_number + 1, 0, [], [])
        offset += len(raw)
    if chunk.lines:
        yield chunk


@contextlib.contextmanager
def _open_results(path: Path, *, append: bool) -> Iterator[IO[bytes]]:
    if append and path.exists():
        _cut_torn_last_line(path)
    with path.open("ab" if append else "wb") as handle:
        yield handle


def _cut_torn_last_line(path: Path) -> None:
    # A producer killed in the middle of a write leaves a line without its newline.
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        tail_start = max(0, size - 65536)
        handle.seek(tail_start)
        tail = handle.read()
        if tail.endswith(b"\n"):
            return
        handle.truncate(tail_start + tail.rfind(b"\n") + 1)


def _bit_is_set(bits: bytes, number: int) -> bool:
    # Redis numbers the bits of a string from the most significant bit of byte 0.
    byte, bit = divmod(number, 8)
    return byte < len(bits) and bool(bits[byte] & (0x80 >> bit))
