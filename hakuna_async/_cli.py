"""The ``hakuna-async`` command: publish a JSON Lines file of events, or serve the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from . import __version__
from ._client import HakunaClient
from ._config import ENVIRONMENTS, Timeout
from ._errors import APIError, APIStatusError, HakunaError, RequestValidationError

__all__ = ["main"]

# Lines shown on stderr for rejected or failed events; the rest go to --results only.
_MAX_SHOWN_ERRORS = 20


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "publish":
        try:
            return asyncio.run(_publish(arguments))
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
            "The exit status is 0 when every event was published, 1 otherwise."
        ),
    )
    publish.add_argument("file", help="JSON Lines file of events, or - for standard input")
    publish.add_argument(
        "--results",
        metavar="FILE",
        help="write one JSON line per event line: its line number and event_id or error",
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
    publish.add_argument("--no-progress", action="store_true", help="do not show the progress bar")

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


@dataclass
class _Tally:
    """Counters of a publish run; nothing here grows with the input."""

    published: int = 0
    rejected: int = 0
    failed: int = 0
    shown_errors: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.published + self.rejected + self.failed


async def _publish(arguments: argparse.Namespace) -> int:
    timeout = Timeout(
        connect=min(Timeout().connect, arguments.timeout),
        read=min(Timeout().read, arguments.timeout),
        total=arguments.timeout,
    )
    client = HakunaClient(
        arguments.api_key,
        environment=arguments.environment,
        base_url=arguments.base_url,
        timeout=timeout,
        max_retries=arguments.max_retries,
        connection_limit=max(arguments.concurrency, 1),
    )
    total = None if arguments.file == "-" else _count_event_lines(Path(arguments.file))
    tally = _Tally()
    line_numbers: dict[int, int] = {}
    results_file: IO[bytes] | None = None

    # NOTE: input and results are read and written with buffered blocking calls on the
    # loop's thread. That is fast for files; a slow pipe on stdin stalls the requests in
    # flight while it waits for the next line.
    async with client:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(_open_input(arguments.file))
            if arguments.results:
                results_file = stack.enter_context(open(arguments.results, "wb"))  # noqa: ASYNC230
            progress = stack.enter_context(_Progress(total, enabled=not arguments.no_progress))

            lines = _event_lines(source, line_numbers)
            batch = client.events.publish_many(lines, concurrency=arguments.concurrency)
            async for result in batch:
                line = line_numbers.pop(result.index)
                record: dict[str, Any] = {"line": line}
                if result.error is None:
                    tally.published += 1
                    record["event_id"] = result.event_id
                else:
                    if isinstance(result.error, RequestValidationError):
                        tally.rejected += 1
                    else:
                        tally.failed += 1
                    record["error"] = _describe_error(result.error)
                    _show_error(tally, line, result.error)
                if results_file is not None:
                    results_file.write(msgspec.json.encode(record) + b"\n")
                progress.update(tally)

    _print_summary(tally, client.stats.retries)
    return 0 if tally.published == tally.done else 1


def _event_lines(source: IO[bytes], line_numbers: dict[int, int]) -> Iterator[bytes]:
    # publish_many numbers the events it reads; this maps its index back to the file's
    # line number. An entry is removed when its result arrives, so the map holds only
    # the events in flight.
    index = 0
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        line_numbers[index] = number
        index += 1
        yield line


@contextlib.contextmanager
def _open_input(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(name, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as error:
        raise _InputError(f"Cannot read {name}: {error.strerror}.") from None
    with handle:
        yield handle


class _InputError(HakunaError):
    """The input file cannot be read."""


def _count_event_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as error:
        raise _InputError(f"Cannot read {path}: {error.strerror}.") from None


def _describe_error(error: Exception) -> dict[str, Any]:
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, RequestValidationError):
        described["field"] = error.field
    if isinstance(error, APIStatusError):
        described["status"] = error.status
        described["error_code"] = error.error_code
        described["validation_errors"] = error.validation_errors
    if isinstance(error, APIError):
        described["attempts"] = error.attempts
        described["idempotency_key"] = error.idempotency_key
    return described


def _show_error(tally: _Tally, line: int, error: Exception) -> None:
    tally.shown_errors += 1
    if tally.shown_errors <= _MAX_SHOWN_ERRORS:
        kind = "rejected" if isinstance(error, RequestValidationError) else "failed"
        print(f"line {line}: {kind}: {error}", file=sys.stderr)
    elif tally.shown_errors == _MAX_SHOWN_ERRORS + 1:
        print("(further errors are only written to --results)", file=sys.stderr)


def _print_summary(tally: _Tally, retries: int) -> None:
    elapsed = time.monotonic() - tally.started
    rate = tally.published / elapsed if elapsed > 0 else 0.0
    print(
        "\n".join(
            [
                "Summary",
                f"  published          {tally.published:>10,}",
                f"  rejected locally   {tally.rejected:>10,}",
                f"  failed remotely    {tally.failed:>10,}",
                f"  retries            {retries:>10,}",
                f"  elapsed            {elapsed:>10.2f} s",
                f"  events per second  {rate:>10,.0f}",
            ]
        )
    )


class _Progress:
    """A rich progress bar on stderr, or nothing when disabled or not a terminal-less run."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self._total = total
        self._enabled = enabled
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
                TimeElapsedColumn,
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
            TextColumn("publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>7.0f} events/s"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._progress.start()
        self._task = self._progress.add_task("publish", total=self._total, rate=0.0, failed=0)
        return self

    def update(self, tally: _Tally) -> None:
        if self._progress is None:
            return
        elapsed = time.monotonic() - tally.started
        self._progress.update(
            self._task,
            completed=tally.done,
            rate=tally.done / elapsed if elapsed > 0 else 0.0,
            failed=tally.rejected + tally.failed,
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


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
