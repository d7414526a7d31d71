"""The API key stays secret, header values cannot add headers, ids stay one path segment.

Every failure here happens against a server on 127.0.0.1: the sandbox, or a small
recording server that stores each raw request head and returns one fixed response.
Checks on base URLs of other hosts only construct a client, which does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakuna_async import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    ClientStateError,
    ConfigurationError,
    HakunaClient,
    HakunaError,
    InternalServerError,
    RequestValidationError,
    RetryPolicy,
    Timeout,
)
from hakuna_async.testing import Delay, Drop, Respond, SandboxServer, StallBody

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hakuna_async"

# Distinctive, so that a match anywhere can only be a leak. The tail is checked on its
# own too, in case something prints a shortened key.
SECRET_KEY = f"sk_live_{uuid.uuid4().hex}"
SECRET_TAIL = SECRET_KEY[-16:]
FAST_RETRIES = RetryPolicy(max_retries=1, initial_wait=0.01, max_wait=0.02)
SHORT_TIMEOUT = Timeout(connect=2, read=0.2, total=3)
PLAN_CONNECTIONS_BODY = b'{"order_id": "ord-1", "plan_connections": []}'


class RecordingServer:
    """An HTTP/1.1 server on 127.0.0.1 that records raw request heads.

    Each connection gets ``response`` (raw bytes, sent as given) after one request,
    then is closed. ``connections`` counts accepted connections; with TLS, only those
    whose handshake succeeded.
    """

    def __init__(self, response: bytes, *, tls: ssl.SSLContext | None = None) -> None:
        self.response = response
        self.tls = tls
        self.connections = 0
        self.heads: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{port}"

    @property
    def request_targets(self) -> list[str]:
        """The request target (the raw path and query) of every request line."""
        return [head.split(b"\r\n", 1)[0].split(b" ")[1].decode("ascii") for head in self.heads]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            self.heads.append(head)
            length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            if length:
                await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout=5)
            writer.write(self.response)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def http_response(status_line: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status_line + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(api_key=SECRET_KEY) as server:
        yield server


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingServer]:
    async with RecordingServer(http_response(b"200 OK", PLAN_CONNECTIONS_BODY)) as server:
        yield server


def free_loopback_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """Yield ``error`` and every exception reachable through causes and contexts."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(
            linked for linked in (current.__cause__, current.__context__) if linked is not None
        )


def texts_of(error: BaseException) -> list[str]:
    """Return every text a user could see of ``error``: message, repr, traceback, attributes."""
    texts = ["".join(traceback.format_exception(error))]
    for linked in exception_chain(error):
        texts += [str(linked), repr(linked), repr(linked.args), repr(vars(linked))]
    return texts


# The API key in logs, messages, reprs and tracebacks.


async def refused_connection(sandbox: SandboxServer) -> None:
    base_url = f"http://127.0.0.1:{free_loopback_port()}"
    async with HakunaClient(SECRET_KEY, base_url=base_url, retry_policy=FAST_RETRIES) as client:
        await client.orders.plan_connections("ord-1")


async def timed_out(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Delay(2), path="/events", times=None)
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())


async def stalled_body(sandbox: SandboxServer) -> None:
    sandbox.faults.add(StallBody(2), path="/events", times=None)
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())


async def dropped_connection(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Drop(), path="/events", times=None)
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())


async def unauthorized(sandbox: SandboxServer) -> None:
    async with SandboxServer(api_key="sk_other_key") as other, client_of(other) as client:
        await client.events.publish(order_event())


async def server_error(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Respond(500), path="/events", times=None)
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())


async def malformed_response(sandbox: SandboxServer) -> None:
    # aiohttp raises ClientResponseError here, whose repr includes the request headers.
    async with (
        RecordingServer(b"HTTP/1.1 abc Garbage\r\n\r\n") as garbage,
        HakunaClient(SECRET_KEY, base_url=garbage.url, retry_policy=FAST_RETRIES) as client,
    ):
        await client.orders.plan_connections("ord-1")


async def invalid_response_body(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Respond(202, body={"unexpected": True}), path="/events")
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())


async def invalid_event(sandbox: SandboxServer) -> None:
    async with client_of(sandbox) as client:
        await client.events.publish({"type": "order_placed", "payload": {"order_id": 7}})


async def injected_idempotency_key(sandbox: SandboxServer) -> None:
    async with client_of(sandbox) as client:
        await client.events.publish(order_event(), idempotency_key="k\r\nAuthorization: x")


async def dot_segment_id(sandbox: SandboxServer) -> None:
    async with client_of(sandbox) as client:
        await client.orders.plan_connections("..")


async def used_after_close(sandbox: SandboxServer) -> None:
    client = client_of(sandbox)
    await client.close()
    await client.orders.plan_connections("ord-1")


async def used_from_other_thread(sandbox: SandboxServer) -> None:
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())
        errors: list[BaseException] = []

        def call_in_own_loop() -> None:
            try:
                asyncio.run(client.orders.plan_connections("ord-1"))
            except BaseException as error:
                errors.append(error)

        await asyncio.wait_for(asyncio.to_thread(call_in_own_loop), timeout=10)
        raise errors[0]


async def key_with_line_break(sandbox: SandboxServer) -> None:
    HakunaClient(SECRET_KEY + "\r\nX-Injected: 1", base_url=sandbox.url)


def client_of(sandbox: SandboxServer) -> HakunaClient:
    return HakunaClient(
        SECRET_KEY, base_url=sandbox.url, retry_policy=FAST_RETRIES, timeout=SHORT_TIMEOUT
    )


@functools.cache
def spec_order_example() -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "openapi" / "hakuna-v2.0.yaml").read_text(encoding="utf-8"))
    example: dict[str, Any] = spec["components"]["examples"]["OrderPlacedEvent"]["value"]
    return example


def order_event(order_id: str = "ord-1") -> dict[str, Any]:
    event = copy.deepcopy(spec_order_example())
    event["payload"]["order_id"] = order_id
    return event


# Each failure, the error it raises, and whether a request reaches a server first.
FAILURES: list[tuple[Callable[[SandboxServer], Awaitable[None]], type[HakunaError], bool]] = [
    (refused_connection, APIConnectionError, False),
    (timed_out, APITimeoutError, True),
    (stalled_body, APITimeoutError, True),
    (dropped_connection, APIConnectionError, True),
    (unauthorized, AuthenticationError, True),
    (server_error, InternalServerError, True),
    (malformed_response, APIConnectionError, True),
    (invalid_response_body, APIResponseValidationError, True),
    (invalid_event, RequestValidationError, False),
    (injected_idempotency_key, RequestValidationError, False),
    (dot_segment_id, RequestValidationError, False),
    (used_after_close, ClientStateError, False),
    (used_from_other_thread, ClientStateError, True),
    (key_with_line_break, ConfigurationError, False),
]


@pytest.mark.parametrize(
    ("failure", "error_type", "sends"),
    FAILURES,
    ids=[failure.__name__ for failure, _, _ in FAILURES],
)
async def test_key_absent_from_failure_output(
    sandbox: SandboxServer,
    failure: Callable[[SandboxServer], Awaitable[None]],
    error_type: type[HakunaError],
    sends: bool,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "asyncio", "hakuna_async"):
        caplog.set_level(logging.DEBUG, logger=name)
    asyncio.get_running_loop().set_debug(True)

    with pytest.raises(error_type) as raised:
        await failure(sandbox)

    if sends:
        assert any(record.name == "hakuna_async" for record in caplog.records)
    output = capfd.readouterr()
    texts = [
        *texts_of(raised.value),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
        *(repr(record.args) for record in caplog.records),
        output.out,
        output.err,
    ]
    for text in texts:
        assert SECRET_KEY not in text
        assert SECRET_TAIL not in text


async def test_key_absent_from_public_reprs(sandbox: SandboxServer) -> None:
    async with client_of(sandbox) as client:
        await client.events.publish(order_event())
        await client.orders.plan_connections("ord-1")
        objects: list[Any] = [
            client,
            client.events,
            client.orders,
            client.plans,
            client.carts,
            client.checkouts,
            client.stats,
            client.timeout,
            client.retry_policy,
            client._transport,
        ]
        for item in objects:
            assert SECRET_TAIL not in repr(item), type(item).__name__
            assert SECRET_TAIL not in str(item), type(item).__name__
    assert repr(client) == f"HakunaClient(base_url={sandbox.url!r})"


# Header values and path parameters.

INJECTED_KEYS = ["k\r\nX-Injected: 1", "k\nX-Injected: 1", "k\r", "\r\n", "k\x00", "k\x7f", "kü"]


@pytest.mark.parametrize("idempotency_key", INJECTED_KEYS)
async def test_injected_idempotency_key_never_sent(
    recorder: RecordingServer, idempotency_key: str
) -> None:
    async with HakunaClient(SECRET_KEY, base_url=recorder.url) as client:
        with pytest.raises(RequestValidationError, match="Hakuna-Idempotency-Key"):
            await client.events.publish(order_event(), idempotency_key=idempotency_key)

    assert recorder.connections == 0


@pytest.mark.parametrize("idempotency_key", [" k", "k ", "\tk"])
async def test_padded_idempotency_key_rejected(
    recorder: RecordingServer, idempotency_key: str
) -> None:
    async with HakunaClient(SECRET_KEY, base_url=recorder.url) as client:
        with pytest.raises(RequestValidationError, match="whitespace at either end"):
            await client.events.publish(order_event(), idempotency_key=idempotency_key)

    assert recorder.connections == 0


@pytest.mark.parametrize(
    "api_key", [SECRET_KEY + "\r\nX-Injected: 1", SECRET_KEY + "\n", "\r\n" + SECRET_KEY]
)
def test_api_key_with_newline_rejected(api_key: str) -> None:
    with pytest.raises(ConfigurationError, match="control character") as raised:
        HakunaClient(api_key, base_url="http://127.0.0.1:9")

    assert SECRET_TAIL not in "".join(texts_of(raised.value))


@pytest.mark.parametrize(
    ("order_id", "target"),
    [
        ("a/b?c#d%2F..", "/orders/a%2Fb%3Fc%23d%252F../plan-connections"),
        ("x y", "/orders/x%20y/plan-connections"),
        ("\u00fc", "/orders/%C3%BC/plan-connections"),
        ("%2E%2E", "/orders/%252E%252E/plan-connections"),
        ("...", "/orders/.../plan-connections"),
        ("a..b", "/orders/a..b/plan-connections"),
        # yarl sends ":" unencoded, which RFC 3986 allows inside a path segment.
        ("k\r\nX-Injected: 1", "/orders/k%0D%0AX-Injected:%201/plan-connections"),
    ],
)
async def test_order_id_sent_as_one_segment(
    recorder: RecordingServer, order_id: str, target: str
) -> None:
    async with HakunaClient(SECRET_KEY, base_url=recorder.url) as client:
        await client.orders.plan_connections(order_id)

    assert recorder.request_targets == [target]


async def test_cart_id_sent_as_one_segment(recorder: RecordingServer) -> None:
    recorder.response = http_response(b"200 OK", b'{"cart_id": "c", "plan_connections": []}')
    async with HakunaClient(SECRET_KEY, base_url=recorder.url) as client:
        await client.carts.plan_connections("c/../../events")

    assert recorder.request_targets == ["/carts/c%2F..%2F..%2Fevents/plan-connections"]


async def test_query_value_stays_one_value(recorder: RecordingServer) -> None:
    recorder.response = http_response(b"404 Not Found", b"{}")
    async with HakunaClient(SECRET_KEY, base_url=recorder.url, max_retries=0) as client:
        with pytest.raises(HakunaError):
            await client.checkouts.retrieve(order_id="a&checkout_type=x#y", checkout_type="assist")

    assert recorder.request_targets == [
        "/checkouts?order_id=a%26checkout_type%3Dx%23y&checkout_type=assist"
    ]


@pytest.mark.parametrize("order_id", [".", ".."])
async def test_dot_segment_id_never_sent(recorder: RecordingServer, order_id: str) -> None:
    async with HakunaClient(SECRET_KEY, base_url=recorder.url) as client:
        with pytest.raises(RequestValidationError, match="segment"):
            await client.orders.plan_connections(order_id)

    assert recorder.connections == 0


async def test_sandbox_receives_id_as_one_segment(sandbox: SandboxServer) -> None:
    order_id = "a/b?c#d%2F.."
    async with client_of(sandbox) as client:
        await client.events.publish(order_event(order_id))
        connections = await client.orders.plan_connections(order_id)

    assert connections.order_id == order_id
    assert len(connections.plan_connections) == 2
    assert sandbox.requests[-1].path == f"/orders/{order_id}/plan-connections"


# Base URLs and TLS.

REMOTE_HTTP_URLS = [
    "http://api.example.com",
    "http://192.0.2.10:8080",
    "http://[2001:db8::1]/",
    "http://127.0.0.1.example.com",
    "http://localhost.example.com",
    "http://[::ffff:127.0.0.1]/",
]


@pytest.mark.parametrize("base_url", REMOTE_HTTP_URLS)
def test_plain_http_remote_rejected(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="unencrypted"):
        HakunaClient(SECRET_KEY, base_url=base_url)


def test_plain_http_remote_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAKUNA_BASE_URL", "http://api.example.com")

    with pytest.raises(ConfigurationError, match="allow_insecure_http=True"):
        HakunaClient(SECRET_KEY)


def test_plain_http_remote_allowed_explicitly() -> None:
    client = HakunaClient(SECRET_KEY, base_url="http://192.0.2.10:8080/", allow_insecure_http=True)

    assert client.base_url == "http://192.0.2.10:8080"


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8787", "http://127.0.0.2", "http://[::1]:8787", "http://localhost:8787"],
)
def test_plain_http_loopback_allowed(base_url: str) -> None:
    assert HakunaClient(SECRET_KEY, base_url=base_url).base_url == base_url


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://user:secret-password@127.0.0.1:8787", "user name and password"),
        ("http://api.example.com\\@127.0.0.1/", "user name and password"),
        ("http://127.0.0.1:8787/\r\nX-Injected: 1", "control character"),
        (" http://127.0.0.1:8787", "whitespace"),
        ("http://127.0.0.1:8787/a/../b", "'.' and '..' segments"),
        ("http://127.0.0.1:8787/?debug=1", "query or fragment"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("ftp://127.0.0.1", "expected http"),
    ],
)
def test_unsafe_base_url_rejected(base_url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as raised:
        HakunaClient(SECRET_KEY, base_url=base_url)

    assert "secret-password" not in str(raised.value)


def self_signed_tls_context(directory: Path) -> ssl.SSLContext:
    """Return a server context with a new self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to create a certificate")
    key, certificate = directory / "key.pem", directory / "certificate.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    return context


async def test_untrusted_certificate_rejected(tmp_path: Path) -> None:
    tls = self_signed_tls_context(tmp_path)
    response = http_response(b"200 OK", PLAN_CONNECTIONS_BODY)
    async with (
        RecordingServer(response, tls=tls) as server,
        HakunaClient(SECRET_KEY, base_url=server.url, max_retries=0, timeout=5) as client,
    ):
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.orders.plan_connections("ord-1")

    assert server.heads == []


TLS_OFF_PATTERNS = [
    r"ssl\s*=\s*False",
    r"verify_ssl",
    r"CERT_NONE",
    r"check_hostname\s*=\s*False",
    r"_create_unverified_context",
    r"trust_env\s*=\s*True",
]


def test_source_never_turns_tls_off() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert sources
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for pattern in TLS_OFF_PATTERNS:
            assert not re.search(pattern, text), f"{source.relative_to(ROOT)}: {pattern}"


# HAKUNA_LOG, in a fresh interpreter.

LOG_SCRIPT = """
import asyncio
import json
import sys

from hakuna_async import HakunaClient, RetryPolicy

BASE_URL, API_KEY, EVENT = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


async def main():
    retries = RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
    async with HakunaClient(API_KEY, base_url=BASE_URL, retry_policy=retries) as client:
        await client.events.publish(EVENT, idempotency_key="idem-log-1")
        await client.orders.plan_connections("ord-1")


asyncio.run(main())
print("done")
"""


async def run_logged(sandbox: SandboxServer, hakuna_log: str | None) -> tuple[str, str]:
    sandbox.faults.add(Respond(503), path="/events")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("HAKUNA_")
    }
    if hakuna_log is not None:
        environment["HAKUNA_LOG"] = hakuna_log
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOG_SCRIPT,
        sandbox.url,
        sandbox.api_key,
        json.dumps(order_event()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == "done\n"
    return stderr.decode(), stdout.decode()


async def test_hakuna_log_debug_shows_attempts(sandbox: SandboxServer) -> None:
    stderr, _ = await run_logged(sandbox, "debug")

    lines = stderr.splitlines()
    assert any(
        "DEBUG hakuna_async: POST /events -> HTTP 503 in " in line
        and "idempotency key idem-log-1" in line
        for line in lines
    ), stderr
    assert any(
        "INFO hakuna_async: Retrying POST /events in " in line
        and "(attempt 1 of 3 failed: HTTP 503); idempotency key idem-log-1" in line
        for line in lines
    ), stderr
    assert any(
        "DEBUG hakuna_async: POST /events -> HTTP 202 in " in line
        and "idempotency key idem-log-1" in line
        for line in lines
    ), stderr
    assert any(
        "DEBUG hakuna_async: GET /orders/ord-1/plan-connections -> HTTP 200 in " in line
        for line in lines
    ), stderr
    assert SECRET_TAIL not in stderr


async def test_hakuna_log_info_shows_retries(sandbox: SandboxServer) -> None:
    stderr, _ = await run_logged(sandbox, "INFO")

    assert "INFO hakuna_async: Retrying POST /events in " in stderr
    assert "idempotency key idem-log-1" in stderr
    assert "DEBUG" not in stderr
    assert SECRET_TAIL not in stderr


async def test_hakuna_log_unset_is_silent(sandbox: SandboxServer) -> None:
    stderr, _ = await run_logged(sandbox, None)

    assert stderr == ""


async def test_hakuna_log_unknown_value_warns(sandbox: SandboxServer) -> None:
    stderr, _ = await run_logged(sandbox, "verbose")

    assert "Ignoring HAKUNA_LOG='verbose': expected debug, info or warning." in stderr
    assert "Retrying" not in stderr
