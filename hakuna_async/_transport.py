"""One HTTP attempt over a lazily created aiohttp session.

The session belongs to the event loop and the process that created it. A client
may be constructed anywhere (at import time, before any loop runs); its session is
created on the first request, inside the running loop. Later use is checked:

- from the same loop: the session is reused;
- when that loop shuts down (the end of ``asyncio.run``, or of a test's loop), the
  session is closed inside it, before the loop closes, and the next request on
  another loop creates a new one;
- from another loop while the first one is still open: ``ClientStateError``, because
  aiohttp sessions must not be shared between loops;
- in a child process after ``fork``: the inherited session is set aside without
  touching its sockets (they belong to the parent) and a new one is created.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

from ._errors import ClientStateError

__all__ = ["HTTPResponse", "Transport"]

# Bumped in every child process after fork; a session created under another value was
# inherited from the parent.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1
    for transport in list(_live_transports):
        transport._forget_session()


_live_transports: weakref.WeakSet[Transport] = weakref.WeakSet()
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

    def __init__(self, *, connection_limit: int = 100) -> None:
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = _fork_generation
        self._closed = False
        self._shutdown_guard: AsyncGenerator[None, None] | None = None
        _live_transports.add(self)

    @property
    def closed(self) -> bool:
        return self._closed

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,
    ) -> HTTPResponse:
        """Send one request and read the whole response.

        Raise ``aiohttp.ClientError`` subclasses for connection failures and
        ``TimeoutError`` when a limit of ``timeout`` is hit. The connection goes back
        to the pool, or is closed, before this returns or raises.
        """
        session = self._session
        if (
            session is None
            or self._loop is not asyncio.get_running_loop()
            or (self._generation != _fork_generation)
        ):
            session = await self._bind_to_running_loop()
        async with session.request(
            method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            payload = await response.read()
            return HTTPResponse(response.status, response.reason or "", response.headers, payload)

    async def close(self) -> None:
        """Close the session and its connections. Safe to call more than once.

        Raise ``ClientStateError`` when called from another event loop while the
        loop that owns the session is still open.
        """
        self._closed = True
        session, loop, guard = self._session, self._loop, self._shutdown_guard
        if session is None:
            return
        if self._generation != _fork_generation:
            self._forget_session()
            return
        if loop is not _running_loop_or_none():
            if loop is not None and not loop.is_closed():
                raise ClientStateError(
                    "close() was called from another event loop than the one the client "
                    "used; await client.close() in the loop that made the requests."
                )
            self._abandon_session()
            return

        self._session, self._loop, self._shutdown_guard = None, None, None
        await session.close()
        if guard is not None:
            await guard.aclose()

    async def _bind_to_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._generation != _fork_generation:
            self._forget_session()
        if self._closed:
            raise ClientStateError(
                "The client is closed; create a new HakunaClient (or use `async with`)."
            )
        if self._session is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise ClientStateError(
                    "This client is in use by another event loop, which is still open. "
                    "aiohttp sessions cannot be shared between loops: create one client "
                    "per event loop (or per thread)."
                )
            self._abandon_session()

        session = self._new_session()
        self._session, self._loop, self._generation = session, loop, _fork_generation

        # The loop closes its async generators before it closes itself (asyncio.run
        # and asyncio.Runner do), which gives this one a chance to close the session
        # while its connections can still be closed properly.
        guard = _close_at_loop_shutdown(weakref.ref(self), session)
        await anext(guard)
        self._shutdown_guard = guard
        return session

    async def _close_session_at_shutdown(self, session: aiohttp.ClientSession) -> None:
        if self._session is session:
            self._session, self._loop, self._shutdown_guard = None, None, None
        if not session.closed:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._connection_limit, ttl_dns_cache=300)
        return aiohttp.ClientSession(
            connector=connector,
            # Callers pass a ClientTimeout per request; this default only guards
            # against a request sent without one.
            timeout=aiohttp.ClientTimeout(total=300),
            auto_decompress=True,
            raise_for_status=False,
            skip_auto_headers=("User-Agent",),
        )

    def _forget_session(self) -> None:
        """Set aside a session inherited through fork: its sockets belong to the parent."""
        self._set_aside(mark_closed=False)

    def _abandon_session(self) -> None:
        """Set aside a session whose loop closed without shutting down its generators."""
        self._set_aside(mark_closed=True)

    def _set_aside(self, *, mark_closed: bool) -> None:
        session, guard = self._session, self._shutdown_guard
        self._session, self._loop, self._shutdown_guard = None, None, None
        if session is None:
            return
        if mark_closed:
            _mark_closed(session)
        # Kept referenced, so that no finalizer runs for them: a finalizer would try to
        # schedule work on a loop that is gone, or close sockets the parent still uses.
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


def _running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _mark_closed(session: aiohttp.ClientSession) -> None:
    # NOTE: aiohttp has no public API to abandon a session whose loop is closed.
    # detach() marks the session closed without touching the connector; the pooled
    # sockets are released only when the process exits.
    session.detach()
