"""The ``hakuna-async`` command: publish a JSON Lines file of events, or serve the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from . import __version__
from ._client import HakunaClient
from ._config import DEFAULT_TIMEOUT, ENVIRONMENTS, Timeout
from ._errors import HakunaError
from .batch import BatchSummary, LineResult, publish_jsonl

if TYPE_CHECKING:
    from .distributed import DistributedSummary

__all__ = ["main"]

# Lines shown on stderr for rejected or failed events; the rest go to --results only.
_MAX_SHOWN_ERRORS = 20


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "publish":
        publish = _publish
        if arguments.redis is not None:
            conflict = _distributed_conflict(arguments)
            if conflict:
                parser.error(conflict)
            publish = _publish_distributed
        elif any(getattr(arguments, name) is not None for name in _DISTRIBUTED_OPTIONS):
            parser.error("--run-id, --job-size, --max-queued-jobs and --stall-timeout need --redis")
        try:
            return asyncio.run(publish(arguments))
        except _MissingExtraError as error:
            print(f"hakuna-async: {error}", file=sys.stderr)
            return 2
        except HakunaError as error:
            print(f"hakuna-async: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("hakuna-async: interrupted.", file=sys.stderr)
            return 130
    if arguments.command == "sandbox":
        return _serve_sandbox(arguments)
    parser.print_help()
    return 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hakuna-async",
        description="Publish order events to Hakuna, or run a local Hakuna sandbox.",
    )
    parser.add_argument("--version", action="version", version=f"hakuna-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    publish = commands.add_parser(
        "publish",
        help="publish a JSON Lines file of events",
        description=(
            "Publish events from a JSON Lines file (one event per line; blank lines are "
            "skipped). Each line is validated locally first: an invalid line is reported "
            "with its line number and field and is not sent, and the other lines go on. "
            "A 429 or 503 pauses the whole batch for the server's wait and lowers the "
            "concurrency for a while. The exit status is 0 when every line was published "
            "(or, with --dry-run, valid), 1 otherwise, and 2 for a usage error."
        ),
    )
    publish.add_argument("file", help="JSON Lines file of events, or - for standard input")
    publish.add_argument(
        "--results",
        metavar="FILE",
        help="write one JSON line per event line (its line number, idempotency key and "
        "event_id or error), flushed as results arrive; it is also the journal for --resume",
    )
    publish.add_argument(
        "--resume",
        action="store_true",
        help="skip the lines that --results FILE already confirms and append to it; "
        "safe after a crash or kill, because idempotency keys are derived from the events",
    )
    publish.add_argument(
        "--dry-run", action="store_true", help="only validate the lines; send nothing"
    )
    publish.add_argument(
        "--summary-json",
        metavar="FILE",
        help="also write the summary as one JSON object to FILE, for machines",
    )
    publish.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        help="requests in flight at once (default: 16)",
    )
    publish.add_argument(
        "--api-key", help="Hakuna API key (default: the HAKUNA_API_KEY environment variable)"
    )
    publish.add_argument(
        "--environment",
        choices=sorted(ENVIRONMENTS),
        help="Hakuna environment (default: HAKUNA_ENVIRONMENT, else production)",
    )
    publish.add_argument(
        "--base-url",
        help="API base URL, overriding --environment (default: HAKUNA_BASE_URL), "
        "for example the URL printed by `hakuna-async sandbox`",
    )
    publish.add_argument(
        "--timeout",
        type=_positive_float,
        default=Timeout().total,
        metavar="SECONDS",
        help="deadline of one event's call, retries included, in seconds (default: %(default)s)",
    )
    publish.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=2,
        help="retries per event after the first attempt (default: 2)",
    )
    publish.add_argument(
        "--rate-limit",
        type=_positive_float,
        metavar="EVENTS_PER_SECOND",
        help="start at most this many events per second (default: no limit)",
    )
    publish.add_argument(
        "--idempotency",
        choices=("derived", "random"),
        default="derived",
        help="derived (default): each key is derived from the event's content, so a rerun "
        "publishes nothing twice; random: a new random key per event",
    )
    publish.add_argument(
        "--key-namespace",
        help="namespace of derived keys (default: a fingerprint of the API key and the base "
        "URL); set it to keep keys stable across API key rotation",
    )
    publish.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    _add_distributed_options(publish)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local Hakuna sandbox for tests and demos",
        description="Serve a local, in-memory emulation of the Hakuna API until interrupted.",
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    sandbox.add_argument(
        "--port",
        type=_non_negative_int,
        default=8787,
        help="TCP port, 0 for any free port (default: 8787)",
    )
    sandbox.add_argument(
        "--api-key", help="the API key the sandbox accepts (default: the sandbox's built-in key)"
    )
    return parser


async def _publish(arguments: argparse.Namespace) -> int:
    client = None
    if not arguments.dry_run:
        if not (arguments.api_key or os.environ.get("HAKUNA_API_KEY")):
            raise _InputError(
                "No API key: pass --api-key KEY or set HAKUNA_API_KEY. Keys are managed in "
                "Hakuna's Merchant Console; sandbox and production keys differ."
            )
        timeout = Timeout(
            connect=min(DEFAULT_TIMEOUT.connect, arguments.timeout),
            read=min(DEFAULT_TIMEOUT.read, arguments.timeout),
            total=arguments.timeout,
        )
        client = HakunaClient(
            arguments.api_key,
            environment=arguments.environment,
            base_url=arguments.base_url,
            timeout=timeout,
            max_retries=arguments.max_retries,
            connection_limit=arguments.concurrency,
        )
    total = None if arguments.file == "-" else _count_event_lines(Path(arguments.file))
    show_error = _ErrorPrinter(has_results_file=arguments.results is not None)

    def show(result: LineResult, summary: BatchSummary) -> None:
        progress.update(summary)
        show_error(result)

    # NOTE: input and results are read and written with buffered blocking calls on the
    # loop's thread. That is fast for files; a slow pipe on stdin stalls the requests in
    # flight while it waits for the next line.
    label = "validating" if arguments.dry_run else "publishing"
    with _Progress(total, enabled=not arguments.no_progress, label=label) as progress:
        async with contextlib.AsyncExitStack() as stack:
            if client is not None:
                await stack.enter_async_context(client)
            try:
                summary = await publish_jsonl(
                    client,
                    arguments.file,
                    results=arguments.results,
                    resume=arguments.resume,
                    concurrency=arguments.concurrency,
                    idempotency=arguments.idempotency,
                    key_namespace=arguments.key_namespace,
                    rate_limit=arguments.rate_limit,
                    dry_run=arguments.dry_run,
                    on_result=show,
                )
            except OSError as error:
                raise _InputError(
                    f"Cannot read or write {error.filename}: {error.strerror}."
                ) from None

    _print_summary(summary)
    if summary.stopped:
        print(f"hakuna-async: {summary.stopped}", file=sys.stderr)
    if arguments.summary_json:
        _write_summary_json(Path(arguments.summary_json), summary)
    return 0 if summary.ok else 1


def _write_summary_json(path: Path, summary: BatchSummary | DistributedSummary) -> None:
    figures = {**msgspec.structs.asdict(summary), "ok": summary.ok}
    path.write_bytes(msgspec.json.encode(figures) + b"\n")


class _InputError(HakunaError):
    """The input or results file cannot be used."""


class _ErrorPrinter:
    """Print the first rejected or failed lines to stderr, then a note that there are more."""

    def __init__(self, *, has_results_file: bool) -> None:
        self.count = 0
        self._has_results_file = has_results_file

    def __call__(self, result: LineResult) -> None:
        if result.error is None:
            return
        self.count += 1
        if self.count <= _MAX_SHOWN_ERRORS:
            kind = "rejected" if result.error["type"] == "RequestValidationError" else "failed"
            print(f"line {result.line}: {kind}: {result.error['message']}", file=sys.stderr)
        elif self.count == _MAX_SHOWN_ERRORS + 1:
            if self._has_results_file:
                print("(further errors are written to the --results file only)", file=sys.stderr)
            else:
                print(
                    "(further errors are not shown; pass --results FILE to keep every one)",
                    file=sys.stderr,
                )


def _count_event_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as error:
        raise _InputError(f"Cannot read {path}: {error.strerror}.") from None


def _print_summary(summary: BatchSummary) -> None:
    if summary.dry_run:
        print("Summary (dry run: nothing was sent)")
        rows = [
            ("valid", f"{summary.valid:,}"),
            ("rejected locally", f"{summary.rejected:,}"),
            ("skipped (resumed)", f"{summary.skipped:,}"),
            ("elapsed", f"{summary.elapsed_seconds:.2f} s"),
        ]
    else:
        print("Summary")
        rows = [
            ("published", f"{summary.published:,}"),
            ("rejected locally", f"{summary.rejected:,}"),
            ("failed remotely", f"{summary.failed:,}"),
            ("skipped (resumed)", f"{summary.skipped:,}"),
            ("retries", f"{summary.retries:,}"),
            ("throttled", f"{summary.throttled_seconds:.2f} s"),
            ("elapsed", f"{summary.elapsed_seconds:.2f} s"),
            ("events per second", f"{summary.events_per_second:,.0f}"),
        ]
    for name, value in rows:
        print(f"  {name:<18} {value:>10}")


class _Progress:
    """A rich progress bar on stderr, unless disabled; rich draws it only on a terminal.

    It fits an 80-column terminal: done and total, percentage, rate, errors (rejected
    plus failed), retries and the estimated time left. The summary has the rest.
    """

    def __init__(self, total: int | None, *, enabled: bool, label: str = "publishing") -> None:
        self._total = total
        self._enabled = enabled
        self._label = label
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if not self._enabled:
            return self
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            print(
                "hakuna-async: no progress bar, because rich is not installed: "
                "pip install 'hakuna-async[cli]'",
                file=sys.stderr,
            )
            self._enabled = False
            return self
        self._progress = Progress(
            TextColumn(self._label),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>6.0f}/s"),
            TextColumn("errors {task.fields[errors]} retries {task.fields[retries]}"),
            TextColumn("left"),
            TimeRemainingColumn(compact=True),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self._label, total=self._total, rate=0.0, errors=0, retries=0
        )
        return self

    def update(self, summary: BatchSummary) -> None:
        if self._progress is None:
            return
        elapsed = summary.elapsed_seconds
        self._progress.update(
            self._task,
            completed=summary.processed,
            rate=summary.processed / elapsed if elapsed > 0 else 0.0,
            errors=summary.rejected + summary.failed,
            retries=summary.retries,
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# Distributed mode: the producer of hakuna_async.distributed, for arq workers.

_DISTRIBUTED_OPTIONS = ("run_id", "job_size", "max_queued_jobs", "stall_timeout")


class _MissingExtraError(Exception):
    """An optional dependency of the requested mode is not installed."""


def _add_distributed_options(publish: argparse.ArgumentParser) -> None:
    group = publish.add_argument_group(
        "distributed mode",
        "Publish through arq workers on any number of machines instead of from this "
        "process: this command enqueues jobs of --job-size lines in Redis and waits for "
        "the workers (arq hakuna_async.distributed.WorkerSettings), which read the API key "
        "and base URL from their own environment. Running it again on the same file "
        "enqueues only the jobs that are not finished or had failed lines.",
    )
    group.add_argument(
        "--redis",
        nargs="?",
        const="",
        metavar="URL",
        help="enqueue jobs in the Redis at URL (without URL: HAKUNA_REDIS_URL, else "
        "redis://127.0.0.1:6379/0)",
    )
    group.add_argument(
        "--run-id",
        help="name of the run, which keeps its progress in Redis (default: derived from the "
        "file's path, size and modification time)",
    )
    group.add_argument(
        "--job-size",
        type=_positive_int,
        metavar="LINES",
        help="event lines per job (default: 500)",
    )
    group.add_argument(
        "--max-queued-jobs",
        type=_positive_int,
        metavar="JOBS",
        help="wait while this many jobs are queued or running, which bounds the memory "
        "Redis uses; keep it at least twice the jobs all workers run at once (default: 40)",
    )
    group.add_argument(
        "--stall-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop waiting when no job finishes for this long (default: 900)",
    )


def _distributed_conflict(arguments: argparse.Namespace) -> str | None:
    if arguments.file == "-":
        return "--redis needs a file, not standard input: a lost job is read from it again"
    conflicts = [
        ("--resume", arguments.resume, "a rerun of the same command resumes by itself"),
        ("--dry-run", arguments.dry_run, "validate without --redis"),
        ("--rate-limit", arguments.rate_limit is not None, "it limits one process only"),
        (
            "--idempotency random",
            arguments.idempotency == "random",
            "a job that runs twice would publish its events twice",
        ),
        ("--api-key", arguments.api_key is not None, _WORKERS_CONFIGURE_THE_CLIENT),
        ("--base-url", arguments.base_url is not None, _WORKERS_CONFIGURE_THE_CLIENT),
        ("--environment", arguments.environment is not None, _WORKERS_CONFIGURE_THE_CLIENT),
    ]
    for option, used, reason in conflicts:
        if used:
            return f"{option} cannot be used with --redis: {reason}"
    return None


_WORKERS_CONFIGURE_THE_CLIENT = (
    "the workers read HAKUNA_API_KEY and HAKUNA_BASE_URL or HAKUNA_ENVIRONMENT "
    "from their own environment"
)


async def _publish_distributed(arguments: argparse.Namespace) -> int:
    try:
        from .distributed import (
            DEFAULT_JOB_SIZE,
            DEFAULT_MAX_QUEUED_JOBS,
            DEFAULT_REDIS_URL,
            DEFAULT_STALL_TIMEOUT,
            publish_distributed,
        )
    except ImportError as error:
        raise _MissingExtraError(
            f"--redis needs the distributed extra ({error}): "
            "pip install 'hakuna-async[distributed]'"
        ) from None

    redis_url = arguments.redis or os.environ.get("HAKUNA_REDIS_URL") or DEFAULT_REDIS_URL
    stall_timeout = arguments.stall_timeout or DEFAULT_STALL_TIMEOUT
    total = _count_event_lines(Path(arguments.file))

    def show(summary: DistributedSummary) -> None:
        progress.update(
            BatchSummary(
                published=summary.published,
                rejected=summary.rejected,
                failed=summary.failed,
                elapsed_seconds=summary.elapsed_seconds,
            )
        )

    with _Progress(total, enabled=not arguments.no_progress) as progress:
        try:
            summary = await publish_distributed(
                arguments.file,
                redis_url=redis_url,
                run_id=arguments.run_id,
                results=arguments.results,
                job_size=arguments.job_size or DEFAULT_JOB_SIZE,
                max_queued_jobs=arguments.max_queued_jobs or DEFAULT_MAX_QUEUED_JOBS,
                concurrency=arguments.concurrency,
                key_namespace=arguments.key_namespace,
                timeout=arguments.timeout,
                max_retries=arguments.max_retries,
                stall_timeout=stall_timeout,
                on_progress=show,
                on_error=_ErrorPrinter(has_results_file=arguments.results is not None),
            )
        except OSError as error:
            raise _InputError(f"Cannot read or write {error.filename}: {error.strerror}.") from None
        except ValueError as error:
            raise _InputError(str(error)) from None

    _print_distributed_summary(summary)
    if summary.stalled:
        print(
            f"hakuna-async: no job finished for {stall_timeout:g} s, so the command stopped "
            "waiting. Check that workers are running "
            "(arq hakuna_async.distributed.WorkerSettings), then run it again.",
            file=sys.stderr,
        )
    if arguments.summary_json:
        _write_summary_json(Path(arguments.summary_json), summary)
    return 0 if summary.ok else 1


def _print_distributed_summary(summary: DistributedSummary) -> None:
    rows = [
        ("event lines", f"{summary.lines:,}"),
        ("published", f"{summary.published:,}"),
        ("rejected locally", f"{summary.rejected:,}"),
        ("failed remotely", f"{summary.failed:,}"),
        ("unfinished", f"{summary.unfinished:,}"),
        ("skipped (done before)", f"{summary.skipped:,}"),
        ("jobs", f"{summary.jobs:,}"),
        ("jobs enqueued again", f"{summary.requeued_jobs:,}"),
        ("elapsed", f"{summary.elapsed_seconds:.2f} s"),
        ("events per second", f"{summary.events_per_second:,.0f}"),
    ]
    print(f"Summary of run {summary.run_id}")
    for label, value in rows:
        print(f"  {label:<21} {value:>10}")


def _serve_sandbox(arguments: argparse.Namespace) -> int:
    from .testing import SandboxServer

    async def serve() -> None:
        options: dict[str, Any] = {"host": arguments.host, "port": arguments.port}
        if arguments.api_key:
            options["api_key"] = arguments.api_key
        async with SandboxServer(**options) as sandbox:
            print(f"Hakuna sandbox serving at {sandbox.url}", flush=True)
            print(f"API key: {sandbox.api_key}", flush=True)
            print("Stop with Ctrl-C.", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signal_number, stop.set)
            await stop.wait()
        print("Sandbox stopped.", flush=True)

    try:
        asyncio.run(serve())
    except OSError as error:
        print(
            f"hakuna-async: cannot serve on {arguments.host}:{arguments.port}: {error}",
            file=sys.stderr,
        )
        return 1
    return 0


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
