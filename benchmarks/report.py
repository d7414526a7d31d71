"""Turn the results of ``benchmarks.run`` into RESULTS.md and the events-per-second chart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Goal thresholds, all ratios measured in the same run.
GOAL_CONCURRENCY = 64
GOAL_SDK_THROUGHPUT = 0.9
GOAL_SDK_CPU = 1.15
GOAL_PEER_SPEEDUP = 10.0
GOAL_CODEC_SPEEDUP = 5.0
GOAL_IMPORT_RATIO = 1.25

METRICS = ("events_per_second", "cpu_us_per_request", "p50_ms", "p99_ms", "peak_rss_mib")


# Statistics ------------------------------------------------------------------------


class Spread:
    """The median, minimum and maximum of a list of numbers."""

    def __init__(self, values: Iterable[float]) -> None:
        self.values = [value for value in values if value is not None and not math.isnan(value)]
        self.count = len(self.values)
        self.median = statistics.median(self.values) if self.values else math.nan
        self.low = min(self.values) if self.values else math.nan
        self.high = max(self.values) if self.values else math.nan

    def format(self, digits: int = 0, unit: str = "") -> str:
        if not self.values:
            return "n/a"
        if self.count == 1:
            return f"{self.median:,.{digits}f}{unit}"
        return f"{self.median:,.{digits}f}{unit} ({self.low:,.{digits}f}-{self.high:,.{digits}f})"


def successful_runs(results: dict[str, Any], key: str, concurrency: int) -> dict[int, Any]:
    """Return the figures of the successful runs of one cell, by round."""
    return {
        run["round"]: run["figures"]
        for run in results["runs"]
        if run["key"] == key and run["concurrency"] == concurrency and "figures" in run
    }


def cell(results: dict[str, Any], key: str, concurrency: int) -> dict[str, Spread]:
    runs = successful_runs(results, key, concurrency).values()
    spreads = {metric: Spread(run.get(metric) for run in runs) for metric in METRICS}
    spreads["server_busy"] = Spread(run.get("server_busy") for run in runs)
    spreads["requests"] = Spread(run.get("requests") for run in runs)
    return spreads


def ratio(
    results: dict[str, Any], key: str, baseline: str, concurrency: int, metric: str
) -> Spread:
    """Return the spread of ``key``'s metric over ``baseline``'s, round by round."""
    runs = successful_runs(results, key, concurrency)
    baseline_runs = successful_runs(results, baseline, concurrency)
    values = []
    for round_number, figures in runs.items():
        reference = baseline_runs.get(round_number)
        if reference and figures.get(metric) and reference.get(metric):
            values.append(figures[metric] / reference[metric])
    return Spread(values)


# Goals -----------------------------------------------------------------------------


def _verdict(value: float, target: float, *, at_least: bool) -> str:
    if math.isnan(value):
        return "not measured"
    met = value >= target if at_least else value <= target
    if met:
        return "met"
    if at_least:
        return f"missed by {(target - value) / target:.0%} (needs {target / value:.2f}x more)"
    return f"missed by {(value - target) / target:.0%}"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Return (goal, measured, target, verdict) rows."""
    c = GOAL_CONCURRENCY
    keys = {variant["key"] for variant in results["variants"]}
    rows = []

    throughput = ratio(results, "sdk-publish/asyncio", "aiohttp/asyncio", c, "events_per_second")
    rows.append(
        (
            f"SDK `publish` events/s at concurrency {c}, vs raw aiohttp",
            throughput.format(2, "x"),
            f">= {GOAL_SDK_THROUGHPUT}x",
            _verdict(throughput.median, GOAL_SDK_THROUGHPUT, at_least=True),
        )
    )
    cpu = ratio(results, "sdk-publish/asyncio", "aiohttp/asyncio", c, "cpu_us_per_request")
    rows.append(
        (
            f"SDK `publish` CPU per request at concurrency {c}, vs raw aiohttp",
            cpu.format(2, "x"),
            f"<= {GOAL_SDK_CPU}x",
            _verdict(cpu.median, GOAL_SDK_CPU, at_least=False),
        )
    )
    if "sdk-publish/uvloop" in keys:
        uvloop = ratio(results, "sdk-publish/uvloop", "aiohttp/uvloop", c, "events_per_second")
        rows.append(
            (
                f"SDK `publish` on uvloop events/s at concurrency {c}, vs raw aiohttp on uvloop",
                uvloop.format(2, "x"),
                f">= {GOAL_SDK_THROUGHPUT}x",
                _verdict(uvloop.median, GOAL_SDK_THROUGHPUT, at_least=True),
            )
        )
    else:
        rows.append(
            (
                "SDK `publish` on uvloop vs raw aiohttp on uvloop",
                "n/a",
                ">= 0.9x",
                "not measured: uvloop is not installed",
            )
        )

    for peer, name in (
        ("httpx-pydantic/asyncio", "httpx + pydantic"),
        ("openapi-python-client/asyncio", "openapi-python-client"),
    ):
        goal = f"SDK `publish` events/s at concurrency {c}, vs {name}"
        if peer not in keys:
            rows.append((goal, "n/a", f">= {GOAL_PEER_SPEEDUP:g}x", "not measured: see below"))
            continue
        speedup = ratio(results, "sdk-publish/asyncio", peer, c, "events_per_second")
        rows.append(
            (
                goal,
                speedup.format(1, "x"),
                f">= {GOAL_PEER_SPEEDUP:g}x",
                _verdict(speedup.median, GOAL_PEER_SPEEDUP, at_least=True),
            )
        )

    codec = results.get("codec") or {}
    codec_speedup = codec.get("encode_decode_speedup", math.nan)
    rows.append(
        (
            "Encode + decode of an `order_placed` event, msgspec vs pydantic v2 (speedup)",
            _range(codec, "encode_decode_speedup", 2, "x"),
            f">= {GOAL_CODEC_SPEEDUP:g}x",
            _verdict(codec_speedup, GOAL_CODEC_SPEEDUP, at_least=True),
        )
    )
    imports = results.get("imports") or {}
    import_ratio = imports.get("ratio", math.nan)
    rows.append(
        (
            "`import hakuna_async` time vs `import aiohttp`",
            _range(imports, "ratio", 2, "x"),
            f"<= {GOAL_IMPORT_RATIO}x",
            _verdict(import_ratio, GOAL_IMPORT_RATIO, at_least=False),
        )
    )
    return rows


def _range(figures: dict[str, Any], name: str, digits: int, unit: str) -> str:
    if name not in figures:
        return "n/a"
    return (
        f"{figures[name]:.{digits}f}{unit} "
        f"({figures[name + '_min']:.{digits}f}-{figures[name + '_max']:.{digits}f})"
    )


# Markdown --------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def load_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for concurrency in results["settings"]["concurrencies"]:
        rows = []
        for variant in results["variants"]:
            key, baseline = variant["key"], variant["baseline"]
            spreads = cell(results, key, concurrency)
            if not spreads["events_per_second"].count:
                continue
            throughput = ratio(results, key, baseline, concurrency, "events_per_second")
            cpu = ratio(results, key, baseline, concurrency, "cpu_us_per_request")
            rows.append(
                [
                    variant["label"],
                    spreads["events_per_second"].format(0),
                    throughput.format(2, "x"),
                    spreads["cpu_us_per_request"].format(0),
                    cpu.format(2, "x"),
                    spreads["p50_ms"].format(2),
                    spreads["p99_ms"].format(2),
                    spreads["peak_rss_mib"].format(1),
                    spreads["server_busy"].format(2),
                    f"{spreads['requests'].median:,.0f}",
                ]
            )
        lines += [f"### Concurrency {concurrency}", ""]
        lines += _table(
            [
                "Variant",
                "Events/s",
                "vs raw",
                "CPU µs/request",
                "vs raw",
                "p50 ms",
                "p99 ms",
                "Peak RSS MiB",
                "Server busy",
                "Requests/window",
            ],
            rows,
        )
        lines.append("")
    return lines


def pinning_sentence(results: dict[str, Any]) -> str:
    settings = results["settings"]
    loop = results.get("server_loop", "asyncio")
    if settings["server_cpu"] is None:
        return (
            f"The server ran on {loop}. This machine has fewer than two CPUs to pin to, so "
            "the server and the clients shared them."
        )
    return (
        f"The server ran on {loop}, pinned to CPU {settings['server_cpu']}. Every client, "
        f"the load generator and the micro-benchmarks ran pinned to CPU "
        f"{settings['client_cpu']}."
    )


def server_section(results: dict[str, Any]) -> list[str]:
    capacity = results.get("server_capacity") or {}
    lines = ["## Server headroom", ""]
    if "responses_per_second" not in capacity:
        return [*lines, f"Not measured: {capacity.get('error', 'unknown error')}", ""]

    fastest_key, fastest_variant, fastest_rate, fastest_at = "no client", "", math.nan, 0
    for variant in results["variants"]:
        for concurrency in results["settings"]["concurrencies"]:
            rate = cell(results, variant["key"], concurrency)["events_per_second"].median
            if not math.isnan(rate) and (math.isnan(fastest_rate) or rate > fastest_rate):
                fastest_key, fastest_variant = variant["label"], variant["key"]
                fastest_rate, fastest_at = rate, concurrency
    busy = [
        run["figures"]["server_busy"]
        for run in results["runs"]
        if "figures" in run and "server_busy" in run["figures"]
    ]
    capacity_rate = capacity["responses_per_second"]
    others = ", ".join(
        f"{entry['responses_per_second']:,.0f}" if "responses_per_second" in entry else "failed"
        for entry in capacity.get("all", [capacity])
    )
    lines += [
        pinning_sentence(results),
        "",
        f"- Capacity: a raw-socket load generator in another process kept "
        f"{capacity['connections']} keep-alive connections with one request in flight each "
        f"(the shape of the clients' traffic, no pipelining). Measured before the load runs, "
        f"after them and after the profile ({others} responses/s), the best was "
        f"**{capacity_rate:,.0f} responses/s**, with the server at "
        f"{capacity.get('server_busy', math.nan):.0%} of its core and the generator at "
        f"{capacity['generator_busy']:.0%} of its own.",
        f"- The fastest client ({fastest_key}, concurrency {fastest_at}) sent "
        f"{fastest_rate:,.0f} events/s: the server has "
        f"**{capacity_rate / fastest_rate:.1f}x headroom** (goal: at least 3x).",
        f"- During the client runs the server's core was at most "
        f"{max(busy, default=math.nan):.0%} busy (the `Server busy` column, read from /proc "
        "in the client's window), so the clients were never waiting for the server.",
    ]
    server_cpu = Spread(
        run["figures"].get("server_cpu_us_per_request")
        for run in results["runs"]
        if "figures" in run and run["key"] == fastest_variant and run["concurrency"] == fastest_at
    )
    if server_cpu.count:
        lines.append(
            f"- In the fastest client's runs the server spent {server_cpu.median:.1f} µs of "
            f"CPU per request, so one core serves about {1e6 / server_cpu.median:,.0f} "
            f"requests/s of that traffic: {1e6 / server_cpu.median / fastest_rate:.1f}x the "
            "client's rate, a second estimate of the headroom."
        )
    lines.append("")
    return lines


def codec_section(results: dict[str, Any]) -> list[str]:
    codec = results.get("codec")
    if not codec:
        return []
    per_event = codec["us_per_event"]
    low, high = codec["us_per_event_min"], codec["us_per_event_max"]

    def row(name: str, label: str) -> list[str]:
        return [label, f"{per_event[name]:.2f} ({low[name]:.2f}-{high[name]:.2f})"]

    lines = [
        "## Encoding and decoding one event",
        "",
        f"{codec['events']} distinct `order_placed` events of {codec['mean_event_bytes']:.0f} "
        f"bytes on average, {codec['turns']} turns of every case in rotating order; µs per "
        "event, median (min-max) over the turns. Both libraries encode every event into the "
        "same bytes (checked before timing). The pydantic models are in "
        "`benchmarks/pydantic_models.py`, with the same fields and constraints and "
        "`strict=True`.",
        "",
    ]
    lines += _table(
        ["Case", "µs per event"],
        [
            row("msgspec_encode", "msgspec encode (`Encoder().encode(struct)`)"),
            row("msgspec_decode", "msgspec decode (`Decoder(Event).decode(bytes)`)"),
            row("pydantic_encode", "pydantic encode (`TypeAdapter.dump_json`)"),
            row("pydantic_decode", "pydantic decode (`TypeAdapter.validate_json`)"),
            row("sdk_prepare_event", "SDK `prepare_event` (encode, decode, protection rules)"),
            row(
                "pydantic_prepare_event",
                "pydantic `validate_python` of a dict, protection rules, `dump_json`",
            ),
        ],
    )
    lines += [
        "",
        f"Encode + decode: msgspec is **{codec['encode_decode_speedup']:.2f}x** faster "
        f"(per-turn ratios {codec['encode_decode_speedup_min']:.2f}-"
        f"{codec['encode_decode_speedup_max']:.2f}).",
        "",
    ]
    return lines


def imports_section(results: dict[str, Any]) -> list[str]:
    imports = results.get("imports")
    if not imports:
        return []
    ms, low, high = imports["ms"], imports["ms_min"], imports["ms_max"]
    lines = [
        "## Import time",
        "",
        f"Each import ran {imports['repetitions']} times in a fresh interpreter, the two "
        "modules in alternating order, timed inside the interpreter around the `import` "
        "statement (bytecode caches warm); median (min-max) in ms.",
        "",
    ]
    lines += _table(
        ["Import", "ms"],
        [
            [f"`import {module}`", f"{ms[module]:.1f} ({low[module]:.1f}-{high[module]:.1f})"]
            for module in ("aiohttp", "hakuna_async")
        ],
    )
    added = imports["importtime_added_self_ms"]
    totals = imports["importtime_total_self_ms"]
    lines += [
        "",
        f"Ratio: **{imports['ratio']:.2f}x** (per-pair ratios {imports['ratio_min']:.2f}-"
        f"{imports['ratio_max']:.2f}). Under `python -X importtime` the self times add up to "
        f"{totals['hakuna_async']:.0f} ms for `import hakuna_async` and "
        f"{totals['aiohttp']:.0f} ms for `import aiohttp`; the largest additions "
        "(median of 5 runs, ms):",
        "",
    ]
    lines += _table(
        ["Module or package", "Added self time ms"],
        [[f"`{name}`", f"{value:.1f}"] for name, value in added.items()],
    )
    lines.append("")
    return lines


def counting_error(figure_us: float, cpu_us_per_request: float, samples: int) -> float:
    """Return the Poisson counting error, in µs, of a figure resting on sampled stacks."""
    return math.sqrt(figure_us * cpu_us_per_request / samples) if samples else math.nan


def profile_section(results: dict[str, Any]) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    lines = ["## Where the SDK spends its time per request", ""]
    if "error" in profile:
        return [*lines, f"Not measured: {profile['error']}", ""]
    sdk, raw = profile["sdk"], profile["raw"]
    lines += [
        f"py-spy sampled `sdk-publish` and raw aiohttp (asyncio, concurrency "
        f"{profile['concurrency']}) for {profile['seconds']} s each at "
        f"{profile['sample_rate']} Hz after a 1 s warm-up ({profile['samples']['sdk']} and "
        f"{profile['samples']['raw']} samples). A function's share of the samples times the "
        f"run's own CPU per request ({sdk['cpu_us_per_request']:.0f} µs for the SDK, "
        f"{raw['cpu_us_per_request']:.0f} µs raw) gives µs per request. Sample counting "
        "makes a figure of f µs uncertain by about √(f x CPU per request / samples): "
        f"±{counting_error(5.0, sdk['cpu_us_per_request'], profile['samples']['sdk']):.1f} µs "
        "for a 5 µs figure here. py-spy's pauses add a few percent of CPU to both runs. The "
        "raw stacks are in `build/bench/*.pyspy.txt`.",
        "",
        f"aiohttp's `ClientSession._request` itself takes "
        f"{profile['aiohttp_request_us']['sdk']:.1f} µs per request under the SDK and "
        f"{profile['aiohttp_request_us']['raw']:.1f} µs raw.",
        "",
        "SDK functions, inclusive time (callees included):",
        "",
    ]
    lines += _table(
        ["Function", "µs/request"],
        [
            [f"`{row['function']}`", f"{row['inclusive_us']:.1f}"]
            for row in profile["sdk_functions"]
        ],
    )
    lines += [
        "",
        "Functions whose self time per request grew most from raw aiohttp to the SDK:",
        "",
    ]
    lines += _table(
        ["Function", "SDK µs", "raw µs", "added µs"],
        [
            [
                f"`{row['function']}`",
                f"{row['sdk_self_us']:.1f}",
                f"{row['raw_self_us']:.1f}",
                f"{row['difference_us']:+.1f}",
            ]
            for row in profile["self_time_growth"]
        ],
    )
    lines.append("")
    return lines


def batch_section(results: dict[str, Any]) -> list[str]:
    batches = results.get("batch") or []
    if not batches:
        return []
    lines = [
        "## Batch memory (`publish_many`)",
        "",
        "`benchmarks/batch_memory.py` publishes `generate_events(N)` (all five event types, "
        "generated lazily in the same process) with `publish_many(concurrency="
        f"{results['settings']['batch_concurrency']})` to the benchmark server, which "
        "stores nothing. Peak RSS is `VmHWM` after the first 10,000 events and at the end.",
        "",
    ]
    rows = []
    for batch in batches:
        if "skipped" in batch or "error" in batch:
            note = batch.get("skipped") or f"failed: {batch['error']}"
            rows.append([f"{batch['events']:,}", note, "", "", ""])
            continue
        rows.append(
            [
                f"{batch['events']:,}",
                f"{batch['events_per_second']:,}",
                f"{batch['seconds']:.1f}",
                f"{batch['rss_at_checkpoint_mib']:.1f}",
                f"{batch['rss_at_end_mib']:.1f}",
            ]
        )
    lines += _table(
        ["Events", "Events/s", "Seconds", "Peak RSS at 10k MiB", "Peak RSS at end MiB"], rows
    )
    lines.append("")
    return lines


def peer_section(results: dict[str, Any]) -> list[str]:
    peer = results.get("peer_client") or {}
    if peer.get("generated"):
        return []
    lines = ["## openapi-python-client: not measured", ""]
    if "attempts" not in peer:
        return [*lines, peer.get("error", "unknown error"), ""]
    lines.append(
        f"openapi-python-client {peer['version']} generated models but not the `POST /events` "
        "operation from `openapi/hakuna-v2.0.yaml`, with any of the settings tried:"
    )
    lines.append("")
    for attempt in peer["attempts"]:
        settings = attempt["settings"] or "defaults"
        lines.append(f"- settings {settings}: `{attempt['error']}`")
    lines += [
        "",
        "The `Hakuna-Version` header parameter has `const: v2.0`; the generator reads it as "
        "a `Literal` type, which it accepts only in query, path and cookie parameters. The "
        "benchmark runs the variant whenever a later generator or document lets it generate "
        "the operation (`benchmarks/clients.py`, `run_openapi_python_client`).",
        "",
    ]
    return lines


def interference_sentence(results: dict[str, Any]) -> str:
    runs = results["runs"]
    repeated = sum("repeated_after_others_busy" in run for run in runs)
    still = sum(bool(run.get("disturbed")) for run in runs)
    limit = results["settings"].get("others_busy_limit", 0.2)
    return (
        f"- Other processes may share the machine. Each run also reads its CPU's busy time "
        f"from /proc/stat; {repeated} of {len(runs)} runs, during which other processes took "
        f"more than {limit:.0%} of the client's CPU, were run again at once, and {still} "
        "were still disturbed the second time (they count in the figures all the same)."
    )


def failures_section(results: dict[str, Any]) -> list[str]:
    failed = [run for run in results["runs"] if "error" in run]
    if not failed:
        return []
    lines = ["## Failed runs", ""]
    for run in failed:
        lines.append(
            f"- round {run['round']}, {run['key']}, concurrency {run['concurrency']}: "
            f"`{run['error']}`"
        )
    lines.append("")
    return lines


def header_section(results: dict[str, Any]) -> list[str]:
    meta, settings = results["meta"], results["settings"]
    packages = ", ".join(f"{name} {version}" for name, version in meta["packages"].items())
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{meta['command']}` on {meta['date']} in {meta['wall_seconds'] / 60:.1f} "
        f"minutes ({settings['profile']} run). Every number below comes from this one run.",
        "",
        f"- Machine: {meta['cpu_model']}, {meta['cpus']} CPUs, {meta['platform']}",
        f"- Python {meta['python']}; {packages}",
        f"- Source: {meta['source']}",
        "",
        "## Goals",
        "",
        "Ratios of the same round, median (min-max) over "
        f"{settings['rounds']} interleaved rounds, at concurrency {GOAL_CONCURRENCY}.",
        "",
    ]
    lines += _table(
        ["Goal", "Measured", "Target", "Verdict"], [list(row) for row in goals(results)]
    )
    lines += ["", *peer_context(results), ""]
    return lines


def peer_context(results: dict[str, Any]) -> list[str]:
    """Return the SDK's speedup over httpx + pydantic at every concurrency level."""
    keys = {variant["key"] for variant in results["variants"]}
    if "httpx-pydantic/asyncio" not in keys:
        return []
    speedups = ", ".join(
        f"{concurrency}: "
        + ratio(
            results,
            "sdk-publish/asyncio",
            "httpx-pydantic/asyncio",
            concurrency,
            "events_per_second",
        ).format(1, "x")
        for concurrency in results["settings"]["concurrencies"]
    )
    return [
        f"SDK `publish` over httpx + pydantic by concurrency: {speedups}. The gap widens "
        "with concurrency because the httpx client's CPU per request grows with the number "
        "of pooled connections: a separate py-spy profile of it at concurrency 64 (httpcore "
        "1.0.9) showed most of its time in `AsyncConnectionPool."
        "_assign_requests_to_connections`, which checks every pooled connection "
        "(`has_expired`, `getpeername`, `is_socket_readable`) for each request.",
    ]


def method_section(results: dict[str, Any], chart_name: str) -> list[str]:
    settings = results["settings"]
    if settings["client_cpu"] is None:
        pinned = "not pinned (fewer than two CPUs)"
    else:
        pinned = f"pinned to CPU {settings['client_cpu']}"
    return [
        "## How the load runs work",
        "",
        f"- Each cell is one fresh client process per round, {pinned}, sending "
        f"`POST /events` with realistic `order_placed` events ({settings['event_count']} "
        "distinct events from `hakuna_async.testing.sample.generate_events`, cycled) to the "
        "benchmark server (`benchmarks/server.py`) on 127.0.0.1.",
        f"- A run warms up for {settings['warmup']} s, then measures a window of "
        f"{settings['duration']} s: requests completed in the window, the client's own CPU "
        "time (`getrusage(RUSAGE_SELF)`, user + system) over the window, and the latency of "
        "every request completed in it. Peak RSS is the process's `VmHWM` at the end "
        "(`ru_maxrss` would include the parent's peak, because Linux keeps it across fork "
        "and exec).",
        f"- Rounds: {settings['rounds']}. Within a round, each concurrency level runs every "
        "variant back to back, in an order rotated by one place per round and level, so "
        "that drift of the machine hits every variant alike. `vs raw` is the ratio to raw "
        "aiohttp on the same event loop in the same round and level, and its median is "
        "taken over the rounds.",
        "- Figures are median (min-max) over the rounds. CPU µs/request is client CPU "
        "time over the window divided by the requests in it. Latency runs from the call to "
        "its return (for `publish_many`: from the batch taking the event from its source to "
        "the batch yielding its result).",
        "- Variants: raw aiohttp (pre-encoded bodies, one `ClientSession`, response bytes "
        "read, no model work; the ceiling for an aiohttp-based SDK), SDK `publish` from N "
        "tasks (validation, encoding, idempotency key, retry loop, decoding), SDK "
        "`publish_many(concurrency=N)` (keys derived from the content by default), and a "
        "hand-written httpx + pydantic v2 client doing the SDK's work (pydantic validation "
        "from a dict and the protection rules, JSON encoding, an idempotency key, a retry "
        "loop, the response decoded into a pydantic model; one `httpx.AsyncClient` with "
        "100 connections kept alive). Every client uses at most 100 connections, the "
        "default of aiohttp, httpx and the SDK.",
        interference_sentence(results),
        "",
        f"![Events per second by concurrency]({chart_name})",
        "",
    ]


def render_markdown(results: dict[str, Any], chart_name: str) -> str:
    lines = header_section(results)
    lines += method_section(results, chart_name)
    lines += server_section(results)
    lines += ["## Load runs", ""]
    lines += load_tables(results)
    lines += profile_section(results)
    lines += codec_section(results)
    lines += imports_section(results)
    lines += batch_section(results)
    lines += peer_section(results)
    lines += failures_section(results)
    return "\n".join(lines).rstrip() + "\n"


# Chart -----------------------------------------------------------------------------


def render_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    concurrencies = results["settings"]["concurrencies"]
    figure, axes = pyplot.subplots(figsize=(9, 5.5), dpi=120)
    for variant in results["variants"]:
        points = []
        for concurrency in concurrencies:
            spread = cell(results, variant["key"], concurrency)["events_per_second"]
            if spread.count:
                points.append((concurrency, spread.median, spread.low, spread.high))
        if not points:
            continue
        xs = [point[0] for point in points]
        ys = [point[1] for point in points]
        errors = [
            [point[1] - point[2] for point in points],
            [point[3] - point[1] for point in points],
        ]
        axes.errorbar(
            xs,
            ys,
            yerr=errors,
            marker="o",
            capsize=3,
            linestyle="--" if variant["loop"] == "uvloop" else "-",
            label=variant["label"],
        )

    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(concurrencies, [str(value) for value in concurrencies])
    axes.set_xlabel("Concurrency (requests in flight)")
    axes.set_ylabel("Events per second (log scale)")
    rounds = results["settings"]["rounds"]
    axes.set_title(f"POST /events to a local server, median and min-max of {rounds} rounds")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
