"""The client's connection lifecycle against the sandbox on loopback.

The session is bound to the event loop and the process that created it. Scenarios
that need a fresh interpreter (import-time clients, several ``asyncio.run`` calls,
manually closed loops, ``os.fork``) run as subprocesses with ``-X dev -W
error::ResourceWarning``, while the sandbox keeps serving in the test's own loop.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import textwrap
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hakuna_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ClientStateError,
    HakunaClient,
    InternalServerError,
    RetryPolicy,
    Timeout,
)
from hakuna_async.testing import Delay, Drop, Respond, SandboxServer, StallBody

ROOT = Path(__file__).resolve().parent.parent
ORDER_PATH = "/orders/ord-123/plan-connections"
FAST_RETRIES = RetryPolicy(max_retries=1, initial_wait=0.01, max_wait=0.02)

# Output that means a session, connector or socket was leaked or closed on a dead loop.
LEAK_MARKERS = (
    "Unclosed client session",
    "Unclosed connector",
    "unclosed transport",
    "unclosed <socket",
    "Event loop is closed",
    "Exception ignored",
    "Traceback",
)

# Imported by every subprocess script: a client created at import time, before any
# event loop exists, and one call that reads the sandbox's order.
SCRIPT_PRELUDE = """
import asyncio
import os
import sys

from hakuna_async import ClientStateError, HakunaClient, Timeout

BASE_URL, API_KEY = sys.argv[1], sys.argv[2]
client = HakunaClient(
    API_KEY, base_url=BASE_URL, timeout=Timeout(connect=5, read=5, total=10), max_retries=0
)


async def call():
    connections = await client.orders.plan_connections("ord-123")
    return f"ok {len(connections.plan_connections)}"


def describe(warning):
    words = str(warning.message).split(" ")[:2]
    return f"{warning.category.__name__}: {' '.join(words)}"


def pooled_connections():
    connector = client._transport._session.connector
    return [protocol for entries in connector._conns.values() for protocol, _ in entries]
"""


class ScriptResult:
    """The exit status and the output of a finished subprocess script."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.lines = stdout.splitlines()

    def leaks(self) -> list[str]:
        return [marker for marker in LEAK_MARKERS if marker in self.stderr]


async def run_script(
    body: str, sandbox: SandboxServer, *, warnings_as_errors: bool = True
) -> ScriptResult:
    """Run ``SCRIPT_PRELUDE`` plus ``body`` in a fresh interpreter in dev mode."""
    source = SCRIPT_PRELUDE + textwrap.dedent(body)
    options = ["-X", "dev"]
    if warnings_as_errors:
        options += ["-W", "error::ResourceWarning"]
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("HAKUNA_")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *options,
        "-c",
        source,
        sandbox.url,
        sandbox.api_key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=environment,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("The script did not finish within 60 s.") from None
    assert process.returncode is not None
    return ScriptResult(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
async def sandbox(redoc_order: Any) -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        async with HakunaClient(server.api_key, base_url=server.url) as setup:
            await setup.events.publish(redoc_order)
        server.requests.clear()
        yield server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[HakunaClient]:
    async with HakunaClient(
        sandbox.api_key,
        base_url=sandbox.url,
        retry_policy=FAST_RETRIES,
        timeout=Timeout(connect=2, read=0.3, total=3),
    ) as hakuna:
        yield hakuna


def pool_counts(client: HakunaClient) -> tuple[int, int]:
    """Return the connections checked out of the client's pool and the idle ones in it."""
    session = client._transport._session
    assert session is not None, "the client has no session"
    connector: Any = session.connector
    idle = sum(len(entries) for entries in connector._conns.values())
    return len(connector._acquired), idle


async def wait_for_applied_fault(sandbox: SandboxServer) -> None:
    """Wait (at most 5 s) until the sandbox has applied a fault to a request."""
    for _ in range(500):
        if sandbox.faults.applied:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("The sandbox applied no fault within 5 s.")


# Event loops and processes.


async def test_import_time_client_serves_three_runs(sandbox: SandboxServer) -> None:
    result = await run_script(
        """
        async def main():
            results = await asyncio.gather(call(), call(), call())
            return ",".join(results)

        for run in range(3):
            print(asyncio.run(main()))
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines == ["ok 2,ok 2,ok 2"] * 3
    assert result.leaks() == [], result.stderr
    assert len(sandbox.requests) == 9


async def test_client_reused_after_asyncio_run_ends(sandbox: SandboxServer) -> None:
    result = await run_script(
        """
        print(asyncio.run(call()))
        print("session after run", client._transport._session)
        print(asyncio.run(call()))
        asyncio.run(client.close())
        print("closed")
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines == ["ok 2", "session after run None", "ok 2", "closed"]
    assert result.leaks() == [], result.stderr


async def test_open_owner_loop_blocks_other_loops(sandbox: SandboxServer) -> None:
    result = await run_script(
        """
        import threading
        import time

        owner = asyncio.new_event_loop()
        print("owner", owner.run_until_complete(call()))

        def attempt_elsewhere():
            started = time.monotonic()
            try:
                asyncio.run(call())
            except Exception as error:
                elapsed = time.monotonic() - started
                print(type(error).__name__, "fast" if elapsed < 2 else "slow", error)
            else:
                print("no error")

        attempt_elsewhere()
        thread = threading.Thread(target=attempt_elsewhere)
        thread.start()
        thread.join(10)

        owner.run_until_complete(owner.shutdown_asyncgens())
        owner.close()
        print("rebound", asyncio.run(call()))
        asyncio.run(client.close())
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines[0] == "owner ok 2"
    for line in result.lines[1:3]:
        assert line.startswith("ClientStateError fast "), line
        assert "another event loop, which is still open" in line
        assert "one client per event loop" in line
    assert result.lines[3] == "rebound ok 2"
    assert result.leaks() == [], result.stderr
    assert len(sandbox.requests) == 2


async def test_other_thread_raises_client_state_error(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    await client.orders.plan_connections("ord-123")
    errors: list[BaseException] = []

    def call_from_thread() -> None:
        try:
            asyncio.run(client.orders.plan_connections("ord-123"))
        except BaseException as error:
            errors.append(error)

    await asyncio.wait_for(asyncio.to_thread(call_from_thread), timeout=10)

    assert len(errors) == 1
    assert type(errors[0]) is ClientStateError
    assert "still open" in str(errors[0])
    assert len(sandbox.requests) == 1
    await client.orders.plan_connections("ord-123")
    assert len(sandbox.requests) == 2


async def test_close_from_other_loop_keeps_client(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    await client.orders.plan_connections("ord-123")
    errors: list[BaseException] = []

    def close_from_thread() -> None:
        try:
            asyncio.run(client.close())
        except BaseException as error:
            errors.append(error)

    await asyncio.wait_for(asyncio.to_thread(close_from_thread), timeout=10)

    assert len(errors) == 1
    assert type(errors[0]) is ClientStateError
    assert "await client.close() in the loop that made the requests" in str(errors[0])
    assert not client._transport.closed
    await client.orders.plan_connections("ord-123")
    assert len(sandbox.requests) == 2


async def test_concurrent_threads_bind_one_owner(sandbox: SandboxServer) -> None:
    client = HakunaClient(sandbox.api_key, base_url=sandbox.url, max_retries=0, timeout=5)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def call_in_own_loop() -> None:
        async def call_then_close() -> None:
            await client.orders.plan_connections("ord-123")
            await client.close()

        barrier.wait(timeout=10)
        try:
            asyncio.run(call_then_close())
        except ClientStateError:
            outcomes.append("ClientStateError")
        else:
            outcomes.append("ok")

    threads = [threading.Thread(target=call_in_own_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(
        asyncio.to_thread(lambda: [thread.join(20) for thread in threads]), timeout=30
    )

    assert sorted(outcomes) == ["ClientStateError"] * 3 + ["ok"]
    assert client._transport._session is None


async def test_manual_loop_close_rebinds(sandbox: SandboxServer) -> None:
    # The garbage collector is off, so that the old loop's sockets are freed inside
    # the block that records warnings and nowhere else.
    result = await run_script(
        """
        import gc
        import warnings

        gc.disable()
        old = asyncio.new_event_loop()
        print(old.run_until_complete(call()))
        old.close()

        print(asyncio.run(call()))
        print(asyncio.run(call()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        print("warnings", sorted({describe(warning) for warning in caught}))
        asyncio.run(client.close())
        print("closed")
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines[:3] == ["ok 2"] * 3
    # The socket pooled by the closed loop is closed by the garbage collector, which
    # reports it through the transport or the socket object, whichever it frees first.
    # No other warning remains, at runtime or at exit.
    assert result.lines[3] in (
        "warnings ['ResourceWarning: unclosed transport']",
        "warnings ['ResourceWarning: unclosed <socket.socket']",
        "warnings ['ResourceWarning: unclosed <socket.socket', "
        "'ResourceWarning: unclosed transport']",
    )
    assert result.lines[4:] == ["closed"]
    assert result.leaks() == [], result.stderr
    assert len(sandbox.requests) == 3


async def test_close_after_manual_loop_close(sandbox: SandboxServer) -> None:
    result = await run_script(
        """
        import gc
        import warnings

        gc.disable()
        old = asyncio.new_event_loop()
        print(old.run_until_complete(call()))
        old.close()
        asyncio.run(client.close())
        print("closed", client._transport._session)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        print("warnings", sorted({describe(warning) for warning in caught}))
        try:
            asyncio.run(call())
        except ClientStateError as error:
            print("ClientStateError", error)
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines[:2] == ["ok 2", "closed None"]
    assert result.lines[2].startswith("warnings ['ResourceWarning: unclosed ")
    assert "RuntimeWarning" not in result.lines[2]
    assert result.lines[3].startswith("ClientStateError The client is closed")
    assert result.leaks() == [], result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_fork_child_leaves_parent_pool(sandbox: SandboxServer) -> None:
    result = await run_script(
        """
        import time

        loop = asyncio.new_event_loop()
        print("parent", loop.run_until_complete(call()))
        pooled_before = pooled_connections()
        print("parent pooled", len(pooled_before), flush=True)

        pid = os.fork()
        if pid == 0:
            print("child inherited session", client._transport._session, flush=True)
            print("child", asyncio.run(call()), flush=True)
            print("child", asyncio.run(call()), flush=True)
            asyncio.run(client.close())
            print("child closed", flush=True)
            sys.exit(0)

        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        started = time.monotonic()
        print("parent", loop.run_until_complete(call()))
        print("parent fast", time.monotonic() - started < 2)
        print("parent same connection", pooled_connections() == pooled_before)
        loop.run_until_complete(client.close())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        """,
        sandbox,
    )

    assert result.returncode == 0, result.stderr
    assert result.lines == [
        "parent ok 2",
        "parent pooled 1",
        "child inherited session None",
        "child ok 2",
        "child ok 2",
        "child closed",
        "child exit 0",
        "parent ok 2",
        "parent fast True",
        "parent same connection True",
    ]
    assert result.leaks() == [], result.stderr
    assert len(sandbox.requests) == 4


# Closing, and the finalizer.


async def test_close_twice_then_use_raises(client: HakunaClient, sandbox: SandboxServer) -> None:
    await client.orders.plan_connections("ord-123")

    await client.close()
    await client.close()

    with pytest.raises(ClientStateError, match="The client is closed"):
        await client.orders.plan_connections("ord-123")
    assert client._transport._session is None
    assert len(sandbox.requests) == 1


async def test_close_unused_client_then_use_raises(sandbox: SandboxServer) -> None:
    client = HakunaClient(sandbox.api_key, base_url=sandbox.url)

    await client.close()

    with pytest.raises(ClientStateError, match="create a new HakunaClient"):
        await client.orders.plan_connections("ord-123")
    assert len(sandbox.requests) == 0


def collect_resource_warnings(drop: Callable[[], None]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drop()
        gc.collect()
    return [str(warning.message) for warning in caught if warning.category is ResourceWarning]


async def test_unused_client_is_dropped_silently(sandbox: SandboxServer) -> None:
    holder = [HakunaClient(sandbox.api_key, base_url=sandbox.url)]

    assert collect_resource_warnings(holder.clear) == []


async def test_client_of_finished_loop_dropped_silently(sandbox: SandboxServer) -> None:
    holder = [HakunaClient(sandbox.api_key, base_url=sandbox.url, timeout=5)]

    def use_in_own_loop() -> None:
        asyncio.run(holder[0].orders.plan_connections("ord-123"))

    await asyncio.wait_for(asyncio.to_thread(use_in_own_loop), timeout=10)

    assert holder[0]._transport._session is None
    assert collect_resource_warnings(holder.clear) == []


async def test_unclosed_client_warns_without_io(sandbox: SandboxServer) -> None:
    holder = [HakunaClient(sandbox.api_key, base_url=sandbox.url, timeout=5)]
    await holder[0].orders.plan_connections("ord-123")
    session = holder[0]._transport._session
    assert session is not None

    messages = collect_resource_warnings(holder.clear)

    assert len(messages) == 1
    assert "was not closed" in messages[0]
    assert sandbox.api_key not in messages[0]
    # The finalizer only warned. The loop closes the session afterwards, through the
    # shutdown guard that the garbage collector handed back to it.
    assert not session.closed
    for _ in range(100):
        if session.closed:
            break
        await asyncio.sleep(0.01)
    assert session.closed


# The pool after failed, timed-out and cancelled attempts.

FAULTS = [
    pytest.param(Delay(5), APITimeoutError, id="no-response-headers"),
    pytest.param(StallBody(5), APITimeoutError, id="stalled-body"),
    pytest.param(Drop(), APIConnectionError, id="dropped"),
    pytest.param(Drop(after_handling=True), APIConnectionError, id="dropped-after-handling"),
    pytest.param(Respond(500), InternalServerError, id="status-500"),
    pytest.param(Respond(404), APIStatusError, id="status-404"),
]


@pytest.mark.parametrize(("fault", "error_type"), FAULTS)
async def test_failed_attempts_return_connections(
    client: HakunaClient, sandbox: SandboxServer, fault: Any, error_type: type[APIError]
) -> None:
    await client.orders.plan_connections("ord-123")
    sandbox.faults.add(fault, path=ORDER_PATH, times=None)

    with pytest.raises(error_type):
        await client.orders.plan_connections("ord-123")

    acquired, _ = pool_counts(client)
    assert acquired == 0
    sandbox.faults.clear()
    connections = await client.orders.plan_connections("ord-123")
    assert len(connections.plan_connections) == 2
    assert pool_counts(client) == (0, 1)


@pytest.mark.parametrize("fault", [Delay(5), StallBody(5)], ids=["waiting-headers", "mid-body"])
async def test_cancelled_call_returns_connection(sandbox: SandboxServer, fault: Any) -> None:
    sandbox.faults.add(fault, path=ORDER_PATH)
    async with HakunaClient(sandbox.api_key, base_url=sandbox.url, timeout=10) as client:
        task = asyncio.create_task(client.orders.plan_connections("ord-123"))
        await wait_for_applied_fault(sandbox)
        await asyncio.sleep(0.05)

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert pool_counts(client) == (0, 0)
        connections = await client.orders.plan_connections("ord-123")
        assert len(connections.plan_connections) == 2


async def test_cancel_during_backoff_holds_nothing(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Respond(503), path=ORDER_PATH)
    slow_retries = RetryPolicy(max_retries=1, initial_wait=5, max_wait=5)
    async with HakunaClient(
        sandbox.api_key, base_url=sandbox.url, retry_policy=slow_retries, timeout=30
    ) as client:
        task = asyncio.create_task(client.orders.plan_connections("ord-123"))
        await wait_for_applied_fault(sandbox)
        await asyncio.sleep(0.05)

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert pool_counts(client) == (0, 1)
    assert len(sandbox.requests) == 1


async def test_refused_connection_holds_nothing(sandbox: SandboxServer) -> None:
    base_url = sandbox.url
    await sandbox.stop()
    async with HakunaClient(
        "sk_lifecycle", base_url=base_url, retry_policy=FAST_RETRIES, timeout=5
    ) as client:
        with pytest.raises(APIConnectionError, match="Cannot connect"):
            await client.orders.plan_connections("ord-123")

        assert pool_counts(client) == (0, 0)
