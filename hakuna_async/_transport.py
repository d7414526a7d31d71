"""One HTTP attempt over a lazily created aiohttp session.

The session belongs to the event loop and the process that created it. A client
may be constructed anywhere (at import time, before any loop runs); its session is
created on the first request, inside the running loop. Later use is checked:

- from the same loop: the session is reused;
- after that loop was closed (a second ``asyncio.run``): the old session is dropped
  and a new one is created on the current loop;
- from another loop while the first one is still open: ``ClientStateError``, because
  aiohttp sessions must not be shared between loops;
- in a child process after ``fork``: the inherited session is dropped without touching
  its sockets (they belong to the parent) and a new one is created.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass
from typing import Any

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

    ``connection_limit`` bounds the open connections of the pool; ``user_agent`` is
    sent on every request.
    """

    def __init__(self, *, connection_limit: int = 100) -> None:
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = _fork_generation
        self._closed = False
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
        session = self._session_for_running_loop()
        async with session.request(
            method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            payload = await response.read()
            return HTTPResponse(response.status, response.reason or "", response.headers, payload)

    async def close(self) -> None:
        """Close the session and its connections. Safe to call more than once."""
        self._closed = True
        session, self._session = self._session, None
        loop, self._loop = self._loop, None
        if session is None or session.closed:
            return
        if self._generation != _fork_generation:
            return
        if loop is not None and loop is not _running_loop_or_none():
            if loop.is_closed():
                _discard_session(session)
                return
            raise ClientStateError(
                "close() was called from another event loop than the one the client "
                "used; await client.close() in the loop that made the requests."
            )
        await session.close()

    def _session_for_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and self._generation == _fork_generation:
            return session

        if self._closed:
            raise ClientStateError(
                "The client is closed; create a new HakunaClient (or use `async with`)."
            )
        if session is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise ClientStateError(
                    "This client is in use by another event loop, which is still open. "
                    "aiohttp sessions cannot be shared between loops: create one client "
                    "per event loop (or per thread)."
                )
            _discard_session(session)

        self._session = self._new_session()
        self._loop = loop
        self._generation = _fork_generation
        return self._session

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
        session, self._session = self._session, None
        self._loop = None
        if session is not None:
            _discard_session(session)


def _running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _discard_session(session: aiohttp.ClientSession) -> None:
    """Let go of a session whose loop is gone (or which a forked child inherited).

    Its connections cannot be closed through the dead loop, and in a forked child
    they belong to the parent. The session is only marked as handled so that its
    finalizer does not warn about it; the sockets are released with the objects.
    """
    connector: Any = session.connector
    # NOTE: aiohttp has no public API to abandon a session bound to a closed loop;
    # detach() marks the session closed without touching the connector, and the
    # connector is marked closed so that its finalizer stays silent too.
    session.detach()
    if connector is not None:
        connector._closed = True
