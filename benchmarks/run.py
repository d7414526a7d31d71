"""Run the benchmark suite and write RESULTS.md and events_per_second.png (``make bench``).

Usage::

    python -m benchmarks.run            # about 7 minutes: 5 rounds, batches of 100k and 1M
    python -m benchmarks.run --quick    # about 1 minute: 3 rounds, 2 concurrency levels
    python -m benchmarks.run --full     # the 1M batch even when it would pass the budget

Steps: write the event corpus, generate the openapi-python-client peer, start the
benchmark server pinned to one CPU, measure its capacity, run the client variants in
interleaved rounds pinned to the other CPU, then the codec and import
micro-benchmarks, a py-spy profile of the SDK against raw aiohttp, and the batch
memory runs. The results go to ``build/bench/results.json``; RESULTS.md and the chart
go to ``benchmarks/`` (``build/bench/quick/`` for ``--quick``, or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import report
from benchmarks.peer_client import generate as generate_peer_client
from benchmarks.server import pin_to_cpu, uvloop_available

BUILD = Path("build/bench")
EVENTS_FILE = BUILD / "events.jsonl"
RESULTS_JSON = BUILD / "results.json"
API_KEY = "sk_bench_local"
PACKAGES = (
    "hakuna-async",
    "aiohttp",
    "msgspec",
    "backoff",
    "uvloop",
    "httpx",
    "httpcore",
    "pydantic",
    "pydantic-core",
    "openapi-python-client",
    "py-spy",
)
# Seconds a client run may take beyond its warm-up and window before it counts as failed.
RUN_GRACE = 60.0
# The machine may be shared: a run during which other processes took more than this
# share of the client's CPU is repeated once, for at most MAX_REPEATED_SHARE of the runs.
OTHERS_BUSY_LIMIT = 0.2
MAX_REPEATED_SHARE = 0.25
# make bench must finish within ten minutes on a fresh clone, installs included (about
# half a minute here). A batch that would end later than this, estimated from the
# previous batch's rate, is skipped unless --full is given.
BUDGET_SECONDS = 540.0


@dataclasses.dataclass
class Settings:
    profile: str
    rounds: int
    concurrencies: list[int]
    warmup: float
    duration: float
    event_count: int
    batch_sizes: list[int]
    batch_concurrency: int
    import_repetitions: int
    codec_turns: int
    profile_seconds: int
    server_cpu: int | None
    client_cpu: int | None
    # Wall time that a batch may not be expected to run past; None runs every batch.
    budget_seconds: float | None = None


def settings_for(arguments: argparse.Namespace) -> Settings:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, client_cpu = (cpus[-1], cpus[0]) if len(cpus) >= 2 else (None, None)
    if arguments.quick:
        settings = Settings(
            profile="quick",
            rounds=3,
            concurrencies=[1, 64],
            warmup=0.2,
            duration=0.5,
            event_count=1000,
            batch_sizes=[20_000],
            batch_concurrency=64,
            import_repetitions=10,
            codec_turns=10,
            profile_seconds=3,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
        )
    else:
        settings = Settings(
            profile="full" if arguments.full else "default",
            rounds=5,
            concurrencies=[1, 16, 64, 256],
            warmup=0.3,
            duration=1.0,
            event_count=1000,
            batch_sizes=[100_000, 1_000_000],
            batch_concurrency=64,
            import_repetitions=30,
            codec_turns=25,
            profile_seconds=6,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            budget_seconds=None if arguments.full else BUDGET_SECONDS,
        )
    if arguments.rounds is not None:
        settings.rounds = arguments.rounds
    if arguments.duration is not None:
        settings.duration = arguments.duration
    return settings


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Inputs ----------------------------------------------------------------------------


def write_events(count: int) -> None:
    """Write the first ``count`` order_placed events of the seeded sample stream."""
    from hakuna_async.models import OrderPlaced
    from hakuna_async.testing.sample import generate_events

    encoder = msgspec.json.Encoder()
    # About 45% of the stream is order_placed; the rest are later events of those orders.
    orders = (event for event in generate_events(count * 4) if isinstance(event, OrderPlaced))
    EVENTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with EVENTS_FILE.open("wb") as file:
        for event in itertools.islice(orders, count):
            file.write(encoder.encode(event) + b"\n")


def machine_info(command: str, wall_seconds: float) -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "source": source_state(),
        "wall_seconds": wall_seconds,
    }


def source_state() -> str:
    """Describe the commit measured, and whether hakuna_async/ differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "hakuna_async"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"
    if changes:
        return f"commit {commit} with uncommitted changes in hakuna_async/"
    return f"commit {commit}"


def command_line(argv: list[str]) -> str:
    arguments = shlex.join(argv)
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f" BENCH_ARGS='{arguments}'" if arguments else "")
    return f"python -m benchmarks.run {arguments}".strip()


# Server ----------------------------------------------------------------------------


class BenchServer:
    """The benchmark server in its own process; stopped on exit, also on errors."""

    def __init__(self, cpu: int | None, max_seconds: float) -> None:
        command = [sys.executable, "-m", "benchmarks.server", "--max-seconds", str(max_seconds)]
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 4 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port, self.pid = int(line[1]), int(line[3])
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = "uvloop" if uvloop_available() else "asyncio"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def run_json(command: list[str], timeout: float) -> dict[str, Any]:
    """Run a benchmark process and return its JSON, or {"error": ...} when it failed."""
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s: {shlex.join(command)}"}
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit status {completed.returncode}: {last_line}"}
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        return {"error": f"no JSON in the output: {completed.stdout[-200:]!r}"}
    return result


def cpu_option(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["--cpu", str(cpu)]


# Phases ----------------------------------------------------------------------------


def variants(peer_generated: bool) -> list[dict[str, str]]:
    rows = [
        ("aiohttp", "asyncio", "raw aiohttp"),
        ("sdk-publish", "asyncio", "SDK publish"),
        ("sdk-publish-many", "asyncio", "SDK publish_many"),
        ("httpx-pydantic", "asyncio", "httpx + pydantic"),
    ]
    if peer_generated:
        rows.append(("openapi-python-client", "asyncio", "openapi-python-client"))
    if uvloop_available():
        rows += [
            ("aiohttp", "uvloop", "raw aiohttp, uvloop"),
            ("sdk-publish", "uvloop", "SDK publish, uvloop"),
        ]
    return [
        {
            "key": f"{variant}/{loop}",
            "variant": variant,
            "loop": loop,
            "label": label,
            "baseline": f"aiohttp/{loop}",
        }
        for variant, loop, label in rows
    ]


def disturbed(result: dict[str, Any]) -> bool:
    return "error" not in result and result.get("others_busy", 0.0) > OTHERS_BUSY_LIMIT


def run_load(
    settings: Settings, server: BenchServer, variant_rows: list[dict[str, str]]
) -> list[dict[str, Any]]:
    runs = []
    total = settings.rounds * len(settings.concurrencies) * len(variant_rows)
    retries_left = math.ceil(total * MAX_REPEATED_SHARE)
    done = 0
    for round_number in range(settings.rounds):
        for level, concurrency in enumerate(settings.concurrencies):
            shift = (round_number + level) % len(variant_rows)
            for order, variant in enumerate(variant_rows[shift:] + variant_rows[:shift]):
                command = [
                    sys.executable,
                    "-m",
                    "benchmarks.clients",
                    "--variant",
                    variant["variant"],
                    "--loop",
                    variant["loop"],
                    "--concurrency",
                    str(concurrency),
                    "--url",
                    server.url,
                    "--events",
                    str(EVENTS_FILE),
                    "--warmup",
                    str(settings.warmup),
                    "--duration",
                    str(settings.duration),
                    "--server-pid",
                    str(server.pid),
                    *cpu_option(settings.client_cpu),
                ]
                timeout = settings.warmup + settings.duration + RUN_GRACE
                result = run_json(command, timeout)
                run: dict[str, Any] = {
                    "round": round_number,
                    "concurrency": concurrency,
                    "key": variant["key"],
                    "order": order,
                }
                if disturbed(result) and retries_left > 0:
                    retries_left -= 1
                    run["repeated_after_others_busy"] = result["others_busy"]
                    log(
                        f"other processes took {result['others_busy']:.0%} of the client CPU "
                        f"during {variant['key']} at {concurrency}; running it again"
                    )
                    result = run_json(command, timeout)
                if disturbed(result):
                    run["disturbed"] = True
                if "error" in result:
                    run["error"] = result["error"]
                    log(f"run failed: {variant['key']} at {concurrency}: {result['error']}")
                else:
                    run["figures"] = result
                runs.append(run)
                done += 1
            log(
                f"round {round_number + 1}/{settings.rounds}, concurrency {concurrency}: "
                f"{done}/{total} runs done"
            )
    return runs


def run_batches(settings: Settings, server: BenchServer, started: float) -> list[dict[str, Any]]:
    """Run batch_memory.py for each batch size, skipping those that would pass the budget."""
    batches: list[dict[str, Any]] = []
    for events in settings.batch_sizes:
        previous = batches[-1] if batches else {}
        if settings.budget_seconds is not None and previous.get("events_per_second"):
            expected = events / previous["events_per_second"] * 1.1
            elapsed = time.perf_counter() - started
            if elapsed + expected > settings.budget_seconds:
                reason = (
                    f"skipped: it would take about {expected:.0f} s, and the run had used "
                    f"{elapsed:.0f} of its {settings.budget_seconds:.0f} s; run "
                    "`make bench BENCH_ARGS=--full` to include it"
                )
                log(f"batch of {events:,} events {reason}")
                batches.append({"events": events, "skipped": reason})
                continue
        log(f"batch of {events:,} events")
        command = [
            sys.executable,
            "benchmarks/batch_memory.py",
            "--events",
            str(events),
            "--checkpoint",
            "10000",
            "--concurrency",
            str(settings.batch_concurrency),
            "--base-url",
            server.url,
            "--api-key",
            API_KEY,
        ]
        result = run_json(command, timeout=max(120.0, events / 1000))
        result.setdefault("events", events)
        batches.append(result)
    return batches


def measure_capacity(settings: Settings, server: BenchServer) -> dict[str, Any]:
    log("measuring the server's capacity")
    return run_json(
        [
            sys.executable,
            "-m",
            "benchmarks.server_capacity",
            "--port",
            str(server.port),
            "--server-pid",
            str(server.pid),
            "--events",
            str(EVENTS_FILE),
            "--connections",
            "64",
            "--depth",
            "1",
            *cpu_option(settings.client_cpu),
        ],
        timeout=60,
    )


def best_capacity(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the measurement with the most responses per second, with all of them."""
    succeeded = [entry for entry in measurements if "responses_per_second" in entry]
    if not succeeded:
        return {"error": measurements[-1].get("error", "no measurement"), "all": measurements}
    best = max(succeeded, key=lambda entry: entry["responses_per_second"])
    return {**best, "all": measurements}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short run of about one minute")
    size.add_argument(
        "--full",
        action="store_true",
        help="run the batch of 1,000,000 events even when it would pass the time budget",
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--duration", type=float, default=None, help="measured window per run in seconds"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for RESULTS.md and the chart"
    )
    arguments = parser.parse_args()
    if arguments.rounds is not None and arguments.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {arguments.rounds}")
    out = arguments.out or (BUILD / "quick" if arguments.quick else Path("benchmarks"))
    settings = settings_for(arguments)
    started = time.perf_counter()
    phases: dict[str, float] = {}

    def phase_done(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = round(now - since, 1)
        return now

    log(f"{settings.profile} run; writing {EVENTS_FILE}")
    write_events(settings.event_count)
    mark = time.perf_counter()
    log("generating the openapi-python-client peer")
    peer = generate_peer_client(BUILD / "peer_client")
    if not peer.get("generated"):
        log("openapi-python-client did not generate POST /events; that variant is skipped")
    mark = phase_done("peer client", mark)

    server = BenchServer(settings.server_cpu, max_seconds=1800)
    results: dict[str, Any] = {
        "settings": {**dataclasses.asdict(settings), "others_busy_limit": OTHERS_BUSY_LIMIT},
        "peer_client": peer,
    }
    try:
        # Every process started from now on inherits the client CPU.
        pin_to_cpu(settings.client_cpu)
        results["server_loop"] = server.loop

        capacity = [measure_capacity(settings, server)]
        mark = phase_done("server capacity", mark)

        variant_rows = variants(bool(peer.get("generated")))
        results["variants"] = variant_rows
        results["runs"] = run_load(settings, server, variant_rows)
        capacity.append(measure_capacity(settings, server))
        mark = phase_done("load runs", mark)

        log("codec micro-benchmark")
        results["codec"] = run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.micro",
                *cpu_option(settings.client_cpu),
                "codec",
                "--events",
                str(EVENTS_FILE),
                "--turns",
                str(settings.codec_turns),
            ],
            timeout=300,
        )
        log("import times")
        results["imports"] = run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.micro",
                *cpu_option(settings.client_cpu),
                "imports",
                "--repetitions",
                str(settings.import_repetitions),
            ],
            timeout=300,
        )
        mark = phase_done("micro-benchmarks", mark)

        log("profiling the SDK and raw aiohttp with py-spy")
        results["profile"] = run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.profile_sdk",
                "--url",
                server.url,
                "--events",
                str(EVENTS_FILE),
                "--seconds",
                str(settings.profile_seconds),
                *cpu_option(settings.client_cpu),
            ],
            timeout=120,
        )
        capacity.append(measure_capacity(settings, server))
        results["server_capacity"] = best_capacity(capacity)
        mark = phase_done("profile", mark)

        results["batch"] = run_batches(settings, server, started)
        mark = phase_done("batch memory", mark)
    finally:
        server.stop()

    results["phases_seconds"] = phases
    results["meta"] = machine_info(command_line(sys.argv[1:]), time.perf_counter() - started)
    RESULTS_JSON.write_text(json.dumps(results, indent=1))

    out.mkdir(parents=True, exist_ok=True)
    chart = out / "events_per_second.png"
    report.render_chart(results, chart)
    markdown = out / "RESULTS.md"
    markdown.write_text(report.render_markdown(results, chart.name))
    log(f"wrote {markdown} and {chart} in {results['meta']['wall_seconds']:.0f} s")
    for goal, measured, target, verdict in report.goals(results):
        log(f"goal: {goal}: {measured} (target {target}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
