"""Publish a JSON Lines file of events: resumable, replay-safe, with a results journal.

This is what ``hakuna-async publish`` runs, for use from Python::

    from hakuna_async import HakunaClient
    from hakuna_async.batch import publish_jsonl

    async with HakunaClient() as client:
        summary = await publish_jsonl(client, "orders.jsonl", results="results.jsonl")

Run it again with ``resume=True`` after a crash or a kill. Lines that the results
file confirms are skipped. The rest are published with the same derived idempotency
keys, so events that were in flight when the first run died are not stored twice.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from ._batch import PublishResult
from ._client import HakunaClient
from ._errors import APIError, APIStatusError, BatchStoppedError, RequestValidationError
from ._journal import ConfirmedLines, Journal
from ._validation import prepare_event

__all__ = ["BatchSummary", "LineResult", "publish_jsonl"]


class BatchSummary(msgspec.Struct, kw_only=True):
    """The figures of one run over a file.

    ``published``: accepted by Hakuna; ``rejected``: invalid, never sent;
    ``failed``: sent but not accepted (an error status, or no response after the
    retries); ``skipped``: already confirmed by the results file of an earlier run;
    ``valid``: lines that passed validation in a dry run. ``stopped`` is the reason the
    run stopped before the end of the input (a rejected API key, or the API out of
    reach), else ``None``.
    ``requests`` and ``retries`` count HTTP requests, ``throttled_seconds`` the time
    the batch was paused by 429 or 503 responses.
    """

    published: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    valid: int = 0
    requests: int = 0
    retries: int = 0
    throttled_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    events_per_second: float = 0.0
    dry_run: bool = False
    stopped: str | None = None

    @property
    def processed(self) -> int:
        """Lines handled in this run (published, rejected, failed, or valid in a dry run)."""
        return self.published + self.rejected + self.failed + self.valid

    @property
    def ok(self) -> bool:
        """True when no line was rejected or failed and the run was not stopped early."""
        return self.rejected == 0 and self.failed == 0 and self.stopped is None


class LineResult(msgspec.Struct, kw_only=True):
    """The outcome of one input line, as written to the results file."""

    line: int
    event_id: str | None = None
    idempotency_key: str | None = None
    error: dict[str, Any] | None = None
    valid: bool | None = None


ResultCallback = Callable[[LineResult, BatchSummary], None]


async def publish_jsonl(
    client: HakunaClient | None,
    source: str | os.PathLike[str] | IO[bytes],
    *,
    results: str | os.PathLike[str] | None = None,
    resume: bool = False,
    concurrency: int = 16,
    idempotency: Literal["derived", "random"] = "derived",
    key_namespace: str | None = None,
    rate_limit: float | None = None,
    dry_run: bool = False,
    on_result: ResultCallback | None = None,
) -> BatchSummary:
    """Publish every event line of ``source`` and return the run's figures.

    ``source`` is a path, ``"-"`` for standard input, or a binary file object with
    one JSON event per line (blank lines are skipped). ``results`` receives one
    ``LineResult`` per event line as it arrives, flushed at once. With ``resume`` it
    is also read first, and the lines it confirms are skipped. ``dry_run`` only
    validates (``client`` may then be ``None``). ``on_result`` is called after each
    line, for progress displays. The other options are those of
    ``client.events.publish_many``.

    Raise ``ValueError`` for ``resume`` without ``results`` and ``OSError`` when a
    file cannot be read or written.
    """
    if resume and results is None:
        raise ValueError("resume=True needs the results file of the earlier run (results=...).")
    if client is None and not dry_run:
        raise ValueError("A client is needed unless dry_run=True.")

    summary = BatchSummary(dry_run=dry_run)
    started = time.monotonic()
    requests_before = client.stats.requests if client else 0
    retries_before = client.stats.retries if client else 0

    with contextlib.ExitStack() as stack:
        journal = None
        if results is not None:
            journal = Journal(results, resume=resume)
            stack.callback(journal.close)
        confirmed = journal.confirmed if journal else ConfirmedLines()
        input_file = stack.enter_context(_open_source(source))

        def record(result: LineResult) -> None:
            if journal is not None:
                journal.write(msgspec.to_builtins(result))
            if on_result is not None:
                summary.elapsed_seconds = time.monotonic() - started
                on_result(result, summary)

        line_numbers: dict[int, int] = {}
        lines = _pending_lines(input_file, confirmed, line_numbers, summary)

        if dry_run:
            for index, line in enumerate(lines):
                record(_validate_line(line_numbers.pop(index), line, summary))
        else:
            assert client is not None
            batch = client.events.publish_many(
                lines,
                concurrency=concurrency,
                idempotency=idempotency,
                key_namespace=key_namespace,
                rate_limit=rate_limit,
            )
            try:
                async for result in batch:
                    summary.throttled_seconds = batch.throttled_seconds
                    summary.retries = client.stats.retries - retries_before
                    record(_line_result(result, line_numbers, summary))
            except BatchStoppedError as error:
                summary.stopped = str(error)
            summary.throttled_seconds = batch.throttled_seconds

    summary.elapsed_seconds = time.monotonic() - started
    if summary.elapsed_seconds > 0:
        summary.events_per_second = summary.published / summary.elapsed_seconds
    if client is not None:
        summary.requests = client.stats.requests - requests_before
        summary.retries = client.stats.retries - retries_before
    return summary


def _line_result(
    result: PublishResult, line_numbers: dict[int, int], summary: BatchSummary
) -> LineResult:
    """Turn a batch result into the results-file record, counting it in ``summary``."""
    line_result = LineResult(
        line=line_numbers.pop(result.index),
        event_id=result.event_id,
        idempotency_key=result.idempotency_key,
    )
    if result.error is None:
        summary.published += 1
    else:
        if isinstance(result.error, RequestValidationError):
            summary.rejected += 1
        else:
            summary.failed += 1
        line_result.error = describe_error(result.error)
    return line_result


def describe_error(error: Exception) -> dict[str, Any]:
    """Describe an error as plain data for the results file."""
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, RequestValidationError):
        described["field"] = error.field
    if isinstance(error, APIStatusError):
        described["status"] = error.status
        described["error_code"] = error.error_code
        described["validation_errors"] = error.validation_errors
    if isinstance(error, APIError):
        described["attempts"] = error.attempts
    return described


def _pending_lines(
    source: IO[bytes],
    confirmed: ConfirmedLines,
    line_numbers: dict[int, int],
    summary: BatchSummary,
) -> Iterator[bytes]:
    # publish_many numbers the events it reads; line_numbers maps that index back to
    # the file's line number. An entry is removed when its result arrives, so the
    # map holds only the events in flight.
    index = 0
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        if number in confirmed:
            summary.skipped += 1
            continue
        line_numbers[index] = number
        index += 1
        yield line


def _validate_line(number: int, line: bytes, summary: BatchSummary) -> LineResult:
    try:
        prepare_event(line)
    except RequestValidationError as error:
        summary.rejected += 1
        return LineResult(line=number, valid=False, error=describe_error(error))
    summary.valid += 1
    return LineResult(line=number, valid=True)


@contextlib.contextmanager
def _open_source(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            yield sys.stdin.buffer
            return
        with Path(source).open("rb") as handle:
            yield handle
        return
    yield source
