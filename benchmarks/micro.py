"""Micro-benchmarks: event encoding and decoding, and import time.

``codec``: encode and decode realistic ``order_placed`` events with the SDK's msgspec
Structs (``msgspec.json.Encoder().encode`` and ``msgspec.json.Decoder(Event)``) and
with equivalent pydantic v2 models (``benchmarks.pydantic_models``). Both libraries
must produce the same bytes, which is checked first. The cases run in turns, so that
machine drift hits each alike, and the median time per event over the turns counts.
Two more rows time each client's whole validation step before sending: the SDK's
``prepare_event`` (encode, decode into the Structs, protection rules) and the
pydantic path of the httpx client (validate a dict, protection rules, encode).

``imports``: the time of ``import hakuna_async`` and of ``import aiohttp`` alone, each
in a fresh interpreter and in turns, measured inside the interpreter around the import
statement. It also reports the ``-X importtime`` self times that ``import
hakuna_async`` adds to those of ``import aiohttp``, by package::

    python -m benchmarks.micro codec --events FILE [--turns 25]
    python -m benchmarks.micro imports [--repetitions 30]

Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.server import pin_to_cpu

# Events per case and turn: a few hundred distinct events, so no single one stays in cache.
CODEC_EVENTS = 200
IMPORT_MODULES = ("aiohttp", "hakuna_async")
_IMPORT_TIMER = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def codec_cases(lines: list[bytes]) -> dict[str, Callable[[], None]]:
    from benchmarks.pydantic_models import EVENT_ADAPTER, rule_errors
    from hakuna_async._validation import prepare_event
    from hakuna_async.models import Event

    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(Event)
    structs = [decoder.decode(line) for line in lines]
    models = [EVENT_ADAPTER.validate_json(line) for line in lines]
    records = [msgspec.json.decode(line) for line in lines]
    for record in records:
        payload = record["payload"]
        payload["placed_at"] = datetime.datetime.fromisoformat(payload["placed_at"])

    for struct, model, line in zip(structs, models, lines, strict=True):
        if encoder.encode(struct) != line:
            raise AssertionError("msgspec does not encode the event back to its own bytes")
        if EVENT_ADAPTER.dump_json(model, exclude_none=True) != line:
            raise AssertionError(f"pydantic encodes the event differently from msgspec: {line!r}")

    def msgspec_encode() -> None:
        for struct in structs:
            encoder.encode(struct)

    def msgspec_decode() -> None:
        for line in lines:
            decoder.decode(line)

    def pydantic_encode() -> None:
        for model in models:
            EVENT_ADAPTER.dump_json(model, exclude_none=True)

    def pydantic_decode() -> None:
        for line in lines:
            EVENT_ADAPTER.validate_json(line)

    def sdk_prepare_event() -> None:
        for struct in structs:
            prepare_event(struct)

    def pydantic_prepare_event() -> None:
        for record in records:
            event = EVENT_ADAPTER.validate_python(record)
            rule_errors(event)
            EVENT_ADAPTER.dump_json(event, exclude_none=True)

    return {
        "msgspec_encode": msgspec_encode,
        "msgspec_decode": msgspec_decode,
        "pydantic_encode": pydantic_encode,
        "pydantic_decode": pydantic_decode,
        "sdk_prepare_event": sdk_prepare_event,
        "pydantic_prepare_event": pydantic_prepare_event,
    }


def measure_codec(events: Path, turns: int) -> dict[str, Any]:
    lines = [line for line in events.read_bytes().splitlines() if line][:CODEC_EVENTS]
    cases = codec_cases(lines)
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}

    for case in cases.values():  # warm-up
        case()
    for turn in range(turns):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            started = time.perf_counter()
            cases[name]()
            samples[name].append((time.perf_counter() - started) / len(lines) * 1e6)

    per_event = {name: statistics.median(values) for name, values in samples.items()}
    msgspec_total = [
        encode + decode
        for encode, decode in zip(samples["msgspec_encode"], samples["msgspec_decode"], strict=True)
    ]
    pydantic_total = [
        encode + decode
        for encode, decode in zip(
            samples["pydantic_encode"], samples["pydantic_decode"], strict=True
        )
    ]
    # Ratios of the same turn, so that drift between turns cancels out.
    speedups = [p / m for p, m in zip(pydantic_total, msgspec_total, strict=True)]
    return {
        "events": len(lines),
        "mean_event_bytes": sum(map(len, lines)) / len(lines),
        "turns": turns,
        "us_per_event": per_event,
        "us_per_event_min": {name: min(values) for name, values in samples.items()},
        "us_per_event_max": {name: max(values) for name, values in samples.items()},
        "encode_decode_speedup": statistics.median(speedups),
        "encode_decode_speedup_min": min(speedups),
        "encode_decode_speedup_max": max(speedups),
    }


def time_import(module: str) -> float:
    output = subprocess.run(
        [sys.executable, "-c", _IMPORT_TIMER.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return float(output)


def import_self_times(module: str, runs: int) -> dict[str, float]:
    """Return median ``-X importtime`` self times in ms by package.

    Modules of ``hakuna_async`` count one by one; every other module counts toward
    its top-level package.
    """
    totals: dict[str, list[float]] = {}
    for _ in range(runs):
        report = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stderr
        by_package: Counter[str] = Counter()
        for line in report.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _, name = line.removeprefix("import time:").split("|")
            name = name.strip()
            if not name.startswith("hakuna_async"):
                name = name.split(".")[0]
            by_package[name] += int(self_us)
        for package, microseconds in by_package.items():
            totals.setdefault(package, []).append(microseconds / 1000)
    return {
        package: statistics.median(values + [0.0] * (runs - len(values)))
        for package, values in totals.items()
    }


def measure_imports(repetitions: int) -> dict[str, Any]:
    for module in IMPORT_MODULES:  # write the bytecode caches first
        time_import(module)
    samples: dict[str, list[float]] = {module: [] for module in IMPORT_MODULES}
    for repetition in range(repetitions):
        order = IMPORT_MODULES if repetition % 2 == 0 else IMPORT_MODULES[::-1]
        for module in order:
            samples[module].append(time_import(module) * 1e3)

    ratios = [
        sdk / aiohttp
        for sdk, aiohttp in zip(samples["hakuna_async"], samples["aiohttp"], strict=True)
    ]
    # What import hakuna_async adds to import aiohttp, by package.
    sdk_self = import_self_times("hakuna_async", runs=5)
    aiohttp_self = import_self_times("aiohttp", runs=5)
    added = {
        package: sdk_self.get(package, 0.0) - aiohttp_self.get(package, 0.0)
        for package in set(sdk_self) | set(aiohttp_self)
    }
    top_added = sorted(added.items(), key=lambda item: item[1], reverse=True)[:10]
    return {
        "repetitions": repetitions,
        "ms": {module: statistics.median(values) for module, values in samples.items()},
        "ms_min": {module: min(values) for module, values in samples.items()},
        "ms_max": {module: max(values) for module, values in samples.items()},
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "importtime_total_self_ms": {
            "hakuna_async": sum(sdk_self.values()),
            "aiohttp": sum(aiohttp_self.values()),
        },
        "importtime_added_self_ms": dict(top_added),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=None, help="CPU number to pin this process to")
    commands = parser.add_subparsers(dest="command", required=True)
    codec = commands.add_parser("codec", help="encode and decode events")
    codec.add_argument("--events", type=Path, required=True, help="JSON Lines file of events")
    codec.add_argument("--turns", type=int, default=25, help="turns of every case")
    imports = commands.add_parser("imports", help="time imports in fresh interpreters")
    imports.add_argument("--repetitions", type=int, default=30, help="imports of each module")
    arguments = parser.parse_args()

    pin_to_cpu(arguments.cpu)
    if arguments.command == "codec":
        result = measure_codec(arguments.events, arguments.turns)
    else:
        result = measure_imports(arguments.repetitions)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
