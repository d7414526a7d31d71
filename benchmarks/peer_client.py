"""Generate the openapi-python-client peer from ``openapi/hakuna-v2.0.yaml``.

The client is generated at benchmark time into ``build/bench/peer_client`` and never
committed. The generator runs with its defaults first and then with the options that
could matter for this document (``literal_enums``). The first run that produces the
``POST /events`` operation is used::

    python -m benchmarks.peer_client [--out build/bench/peer_client]

Prints one JSON object: whether the operation was generated, the generator version,
and for each failed attempt the generator's own warning about ``POST /events``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SPEC = Path("openapi/hakuna-v2.0.yaml")
PACKAGE = "hakuna_api_client"
# The module that openapi-python-client writes for operationId publishEvent.
OPERATION_MODULE = Path(PACKAGE, "api", "events", "publish_event.py")
# Generator settings to try, in order: {} is the defaults.
ATTEMPTS: list[dict[str, Any]] = [{}, {"literal_enums": True}]


def generator_command() -> list[str] | None:
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    executable = shutil.which("openapi-python-client", path=search_path)
    return None if executable is None else [executable]


def events_warning(output: str) -> str:
    """Return the generator's warning about POST /events with its reason, or all output."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "POST /events" in line:
            reason = next((text for text in lines[index + 1 :] if text.strip()), "")
            return f"{line.strip()} {reason.strip()}".strip()
    return output.strip()[-2000:]


def generate(out: Path) -> dict[str, Any]:
    command = generator_command()
    if command is None:
        return {"generated": False, "error": "openapi-python-client is not installed"}
    result: dict[str, Any] = {
        "generated": False,
        "version": metadata.version("openapi-python-client"),
        "attempts": [],
    }
    # The generator formats its output with ruff, which it looks up on PATH.
    environment = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }

    for settings in ATTEMPTS:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        config = out / "config.json"
        config.write_text(json.dumps(settings))
        completed = subprocess.run(
            [
                *command,
                "generate",
                "--path",
                str(SPEC),
                "--meta",
                "none",
                "--config",
                str(config),
                "--output-path",
                str(out / PACKAGE),
            ],
            capture_output=True,
            text=True,
            env=environment,
            timeout=180,
            check=False,
        )
        output = completed.stdout + completed.stderr
        (out / "generator.log").write_text(output)
        generated = (out / OPERATION_MODULE).is_file()
        attempt: dict[str, Any] = {"settings": settings, "exit_status": completed.returncode}
        if not generated:
            attempt["error"] = events_warning(output)
        result["attempts"].append(attempt)
        if generated:
            result["generated"] = True
            break
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("build/bench/peer_client"), help="folder to generate into"
    )
    arguments = parser.parse_args()
    json.dump(generate(arguments.out), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
