"""Show where ``client.events.publish`` spends CPU time per request beyond raw aiohttp.

Runs the ``sdk-publish`` and ``aiohttp`` client variants one after the other against
a running benchmark server, attaches py-spy to each after its warm-up and samples
it for a few seconds. Each function's share of the samples, times the variant's own
measured CPU microseconds per request, gives its CPU microseconds per request::

    python -m benchmarks.profile_sdk --url URL --events FILE [--concurrency 64] [--out DIR]

Prints one JSON object: the figures of both runs, the SDK functions by inclusive
time, and the functions whose self time per request grew most from raw aiohttp to
the SDK. py-spy must be installed and allowed to read other processes' memory
(ptrace). When it is not, the JSON contains only the error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

# py-spy names a frame "function (path/to/file.py:LINE)"; the line is dropped to add up
# all lines of one function.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
SAMPLE_RATE = 250
TOP = 12


def frame_key(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    # The two variants' own loops differ in name only; compare them as one.
    if match["file"].startswith("benchmarks/"):
        return f"benchmark harness ({match['file']})"
    return f"{match['function']} ({match['file']})"


class Profile:
    """Sample counts of py-spy's raw output (one ``frame;frame;... count`` line per stack)."""

    def __init__(self, path: Path) -> None:
        self.total = 0
        self.self_samples: Counter[str] = Counter()
        self.inclusive_samples: Counter[str] = Counter()
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [frame_key(frame) for frame in stack.split(";")]
            self.total += count
            self.self_samples[frames[-1]] += count
            for key in set(frames):
                self.inclusive_samples[key] += count

    def per_request(self, samples: int, cpu_us_per_request: float) -> float:
        return samples / self.total * cpu_us_per_request if self.total else 0.0


def profile_variant(
    arguments: argparse.Namespace, variant: str, output: Path
) -> tuple[dict[str, Any], Profile]:
    warmup, sampled = 1.0, arguments.seconds
    command = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        "--variant",
        variant,
        "--loop",
        "asyncio",
        "--concurrency",
        str(arguments.concurrency),
        "--url",
        arguments.url,
        "--events",
        str(arguments.events),
        "--warmup",
        str(warmup),
        "--duration",
        str(sampled + 1.0),
    ]
    if arguments.cpu is not None:
        command += ["--cpu", str(arguments.cpu)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as client:
        time.sleep(warmup)
        spy = subprocess.run(
            [
                arguments.py_spy,
                "record",
                "--pid",
                str(client.pid),
                "--duration",
                str(sampled),
                "--rate",
                str(SAMPLE_RATE),
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            capture_output=True,
            text=True,
            timeout=sampled + 30,
            check=False,
        )
        stdout, _ = client.communicate(timeout=sampled + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed with exit status {spy.returncode}: {spy.stderr.strip()}")
    if client.returncode != 0:
        raise RuntimeError(f"client variant {variant} failed with exit status {client.returncode}")
    return json.loads(stdout), Profile(output)


def compare(sdk: Profile, sdk_cpu: float, raw: Profile, raw_cpu: float) -> dict[str, Any]:
    """Return the SDK's own functions and the self-time differences, in µs per request."""
    sdk_functions = [
        {"function": key, "inclusive_us": round(sdk.per_request(count, sdk_cpu), 1)}
        for key, count in sdk.inclusive_samples.most_common()
        if "hakuna_async/" in key
    ][:TOP]

    keys = set(sdk.self_samples) | set(raw.self_samples)
    growth = []
    for key in keys:
        sdk_us = sdk.per_request(sdk.self_samples[key], sdk_cpu)
        raw_us = raw.per_request(raw.self_samples[key], raw_cpu)
        growth.append((sdk_us - raw_us, key, sdk_us, raw_us))
    growth.sort(reverse=True)
    self_growth = [
        {
            "function": key,
            "sdk_self_us": round(sdk_us, 1),
            "raw_self_us": round(raw_us, 1),
            "difference_us": round(difference, 1),
        }
        for difference, key, sdk_us, raw_us in growth[:TOP]
    ]

    def aiohttp_request_us(profile: Profile, cpu: float) -> float:
        samples = profile.inclusive_samples.get("ClientSession._request (aiohttp/client.py)", 0)
        return round(profile.per_request(samples, cpu), 1)

    return {
        "sdk_functions": sdk_functions,
        "self_time_growth": self_growth,
        "aiohttp_request_us": {
            "sdk": aiohttp_request_us(sdk, sdk_cpu),
            "raw": aiohttp_request_us(raw, raw_cpu),
        },
        "samples": {"sdk": sdk.total, "raw": raw.total},
    }


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    if arguments.py_spy is None:
        return {"error": "py-spy is not installed; pip install py-spy"}
    arguments.out.mkdir(parents=True, exist_ok=True)
    try:
        sdk_figures, sdk_profile = profile_variant(
            arguments, "sdk-publish", arguments.out / "sdk-publish.pyspy.txt"
        )
        raw_figures, raw_profile = profile_variant(
            arguments, "aiohttp", arguments.out / "aiohttp.pyspy.txt"
        )
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return {"error": str(error)}
    result = compare(
        sdk_profile,
        sdk_figures["cpu_us_per_request"],
        raw_profile,
        raw_figures["cpu_us_per_request"],
    )
    result.update(
        concurrency=arguments.concurrency,
        sdk=sdk_figures,
        raw=raw_figures,
        sample_rate=SAMPLE_RATE,
        seconds=arguments.seconds,
    )
    return result


def find_py_spy() -> str | None:
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("py-spy", path=search_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="benchmark server URL on 127.0.0.1")
    parser.add_argument("--events", type=Path, required=True, help="JSON Lines file of events")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--seconds", type=int, default=6, help="whole seconds sampled per variant")
    parser.add_argument("--cpu", type=int, default=None, help="CPU number to pin the clients to")
    parser.add_argument(
        "--out", type=Path, default=Path("build/bench"), help="folder for py-spy's raw output"
    )
    parser.add_argument(
        "--py-spy",
        default=find_py_spy(),
        help="py-spy executable (default: beside this Python, then on PATH)",
    )
    arguments = parser.parse_args()
    json.dump(run(arguments), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
