"""One HTTP attempt over a lazily created aiohttp session.

The session belongs to the event loop and the process that created it. A client
may be constructed anywhere (at import time, before any loop runs); its session is
created on the first request, inside the running loop. Later use is checked:

- from the same loop: the session is reused;
- when that loop shuts down (the end of ``asyncio.run``, or of a test's loop), the
  session is closed inside it, before the loop closes, and the next request on
  another loop creates a new one;
- from another loop or thread while the first loop is still open:
  ``ClientStateError``, because aiohttp sessions must not be shared between loops;
- after the first loop was closed without shutting down its async generators (a
  manual ``loop.close()``): the next request or ``close()`` releases the old pool and
  the request creates a new session. NOTE: no public asyncio API can close a socket
  whose loop is closed, so each pooled socket of the old loop is closed by the
  garbage collector, and asyncio reports it with an "unclosed transport"
  ``ResourceWarning`` (shown only with ``-X dev`` or ``-W default``);
- in a child process after ``fork``: the inherited session is set aside without
  touching its sockets or the parent's event loop (both belong to the parent) and a
  new one is created.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from ._errors import ClientStateError
from ._logging import logger

__all__ = ["HTTPResponse", "Transport"]

IDEMPOTENCY_HEADER = "Hakuna-Idempotency-Key"

# Bumped in every child process after fork; a session created under another value was
# inherited from the parent.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1
    for transport in list(_live_transports):
        # A thread of the parent may have held the lock during the fork. That thread
        # does not exist in the child, so the lock would never be released.
        transport._binding = threading.Lock()
        transport._forget_session()


_live_transports: weakref.WeakSet[Transport] = weakref.WeakSet()
# Sessions inherited through fork. They stay referenced for the life of the child
# process, so that no finalizer closes their sockets. Closing one would unregister it
# from the epoll instance that the child shares with the parent, and the parent would
# stop receiving data on that connection.
_sessions_set_aside: list[tuple[aiohttp.ClientSession, AsyncGenerator[None, None] | None]] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(slots=True)
class HTTPResponse:
    """A complete response: status, reason, headers and the whole body."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes


class Transport:
    """Send single HTTP requests; retries and error mapping live in the client.

    ``connection_limit`` bounds the open connections of the pool.
    """

    def __init__(
        self, *, connection_limit: int = 100, default_headers: Mapping[str, str] | None = None
    ) -> None:
        self._connection_limit = connection_limit
        # Sent with every request; set once on the session, so that each request only
        # adds its own headers.
        self._default_headers = dict(default_headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = _fork_generation
        self._closed = False
        self._shutdown_guard: AsyncGenerator[None, None] | None = None
        # Serializes binding and closing when threads with their own loops share
        # this transport by mistake, so that exactly one of them owns the session.
        self._binding = threading.Lock()
        _live_transports.add(self)

    @property
    def closed(self) -> bool:
        return self._closed

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: dict[str, str] | None,
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,
        attempt: int | None = None,
    ) -> HTTPResponse:
        """Send one request and read the whole response.

        ``headers`` are added to the transport's default headers. The caller makes
        sure that ``url`` has no ``.`` or ``..`` path segment, which URL normalization
        would remove. Raise ``ClientStateError`` when this transport is closed or
        owned by another open event loop. Connection failures raise
        ``aiohttp.ClientError`` subclasses, and a limit of ``timeout`` raises
        ``TimeoutError``. The connection goes back to the pool, or is closed, before
        this returns or raises. ``attempt`` (1-based) only labels the DEBUG log record.
        """
        session = self._session
        loop = asyncio.get_running_loop()
        if session is None or self._loop is not loop or self._generation != _fork_generation:
            session = await self._bind_to_running_loop()

        started = loop.time()
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s failed after %.1f ms%s: %s",
                    method,
                    _path_of(url),
                    (loop.time() - started) * 1000,
                    _attempt_label(attempt, headers),
                    "timed out" if isinstance(exc, TimeoutError) else _describe(exc),
                )
            raise

        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> HTTP %d in %.1f ms%s",
                method,
                _path_of(url),
                response.status,
                (loop.time() - started) * 1000,
                _attempt_label(attempt, headers),
            )
        return HTTPResponse(response.status, response.reason or "", response.headers, payload)

    async def close(self) -> None:
        """Close the session and its connections. Safe to call more than once.

        Raise ``ClientStateError`` when called from another event loop while the
        loop that owns the session is still open; the transport stays usable then.
        """
        running = asyncio.get_running_loop()
        with self._binding:
            if self._generation != _fork_generation:
                self._forget_session()
            session, loop, guard = self._session, self._loop, self._shutdown_guard
            if session is not None and loop is not running and not _is_closed(loop):
                raise ClientStateError(
                    "close() was called from another event loop than the one the client "
                    "used; await client.close() in the loop that made the requests."
                )
            self._closed = True
            self._session, self._loop, self._shutdown_guard = None, None, None

        if session is not None:
            await _close_session(session, guard)

    async def _bind_to_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        with self._binding:
            if self._generation != _fork_generation:
                self._forget_session()
            if self._closed:
                raise ClientStateError(
                    "The client is closed; create a new HakunaClient (or use `async with`)."
                )
            if self._session is not None and self._loop is loop:
                # Another coroutine of this loop bound it in the meantime.
                return self._session

            stale_session, stale_guard = self._session, self._shutdown_guard
            if stale_session is not None and not _is_closed(self._loop):
                raise ClientStateError(
                    "This client is in use by another event loop, which is still open. "
                    "aiohttp sessions cannot be shared between loops: create one client "
                    "per event loop (or per thread)."
                )

            session = self._new_session()
            self._session, self._loop, self._generation = session, loop, _fork_generation
            self._shutdown_guard = None

        # The loop closes its async generators before it closes itself (asyncio.run
        # and asyncio.Runner do), which gives this one a chance to close the session
        # while its connections can still be closed properly. Starting the generator
        # does not suspend, so no other coroutine of this loop runs in between.
        guard = _close_at_loop_shutdown(weakref.ref(self), session)
        await anext(guard)
        if self._session is session:
            self._shutdown_guard = guard

        if stale_session is not None:
            # The old loop was closed without shutting down its async generators.
            await _close_session(stale_session, stale_guard)
        return session

    async def _close_session_at_shutdown(self, session: aiohttp.ClientSession) -> None:
        with self._binding:
            if self._session is session:
                self._session, self._loop, self._shutdown_guard = None, None, None
        if not session.closed:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        # TLS certificates and host names are verified: the connector keeps aiohttp's
        # default ssl setting, and nothing in this package turns it off.
        connector = aiohttp.TCPConnector(
            limit=self._connection_limit,
            ttl_dns_cache=300,
            # aiohttp rounds read timeouts above this threshold up to a whole second.
            timeout_ceil_threshold=math.inf,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # Callers pass a ClientTimeout per request; this default only guards
            # against a request sent without one.
            timeout=aiohttp.ClientTimeout(total=300),
            auto_decompress=True,
            raise_for_status=False,
            skip_auto_headers=("User-Agent",),
            headers=self._default_headers,
            # The API authenticates with a bearer token; a cookie jar would only keep
            # state between requests and cost a lookup per request and per response.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    def _forget_session(self) -> None:
        """Set aside a session inherited through fork: its sockets belong to the parent."""
        session, guard = self._session, self._shutdown_guard
        self._session, self._loop, self._shutdown_guard = None, None, None
        self._generation = _fork_generation
        if session is not None:
            _sessions_set_aside.append((session, guard))


async def _close_at_loop_shutdown(
    transport_ref: weakref.ref[Transport], session: aiohttp.ClientSession
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        transport = transport_ref()
        if transport is not None:
            await transport._close_session_at_shutdown(session)
        elif not session.closed:
            await session.close()


async def _close_session(
    session: aiohttp.ClientSession, guard: AsyncGenerator[None, None] | None
) -> None:
    """Close ``session`` in the running loop, or release it if its own loop is closed.

    For a session of a closed loop, aiohttp marks the connector closed and empties
    its pool without calling into that loop.
    """
    try:
        if guard is not None:
            # The guard's cleanup closes the session, and the guard itself is done.
            await guard.aclose()
        if not session.closed:
            await session.close()
    except RuntimeError as error:
        # A DNS lookup was still pending when the old loop closed, and aiohttp cannot
        # schedule the wait for its cancellation there ("Event loop is closed"). Keep
        # the session referenced so that no finalizer calls into the closed loop.
        # NOTE: Python may also warn that aiohttp's coroutine _wait_for_close was never
        # awaited. That RuntimeWarning comes from inside aiohttp (seen with 3.14).
        logger.debug("Could not release the connection pool of a closed event loop: %s", error)
        _sessions_set_aside.append((session, None))


def _is_closed(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is None or loop.is_closed()


def _path_of(url: str | URL) -> str:
    return urlsplit(str(url)).path


def _attempt_label(attempt: int | None, headers: dict[str, str] | None) -> str:
    """Return " (attempt 2, idempotency key ...)" with the parts that are known."""
    parts = [] if attempt is None else [f"attempt {attempt}"]
    key = None if headers is None else headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        parts.append(f"idempotency key {key}")
    return f" ({', '.join(parts)})" if parts else ""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
