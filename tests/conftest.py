"""Fixtures shared by the test modules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "openapi" / "hakuna-v2.0.yaml"


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The OpenAPI document as plain data."""
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def redoc_order(spec: dict[str, Any]) -> dict[str, Any]:
    """Hakuna's published order_placed example, as a fresh dict per test."""
    return copy.deepcopy(spec["components"]["examples"]["OrderPlacedEvent"]["value"])


def _teach_aioresponses_stream_writer() -> None:
    """Let aioresponses build responses on aiohttp 3.14 and newer.

    NOTE: aiohttp 3.14 added a required ``stream_writer`` argument to
    ``ClientResponse``, and aioresponses 0.7.9 (the latest release) does not pass it.
    Its mocked responses stand for requests that were already sent, so a writer with
    nothing left to upload is all they need. Drop this once aioresponses passes it.
    """
    import inspect

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class SentRequestWriter:
        output_size = 0

    class MockedResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SentRequestWriter())
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = MockedResponse  # type: ignore[misc]


_teach_aioresponses_stream_writer()
