"""``SandboxServer``: a local, stateful emulator of the Hakuna API v2.0 on aiohttp.web.

Every request passes through one pipeline. It takes the planned fault that matches, if
any, and reads the body, unless that fault resets the connection first. Then it applies
the fault, checks the API key and ``Hakuna-Version``, replays or rejects a reused
idempotency key, runs the operation's handler and records the request. Routes come
from ``hakuna_async.models.OPERATIONS``, so every path is written once, in the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import re
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Final, Self, TypeAlias

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import FieldError
from ..models import OPERATIONS, Operation
from ._catalogue import DEFAULT_PLANS, CatalogPlan
from ._faults import Delay, Drop, Fault, FaultInjector, Reset, Respond, StallBody
from ._operations import OperationHandler, SandboxAPI
from ._replies import ENCODER, APIError, Reply, error_body
from ._state import (
    CartRecord,
    OrderState,
    ReceivedEvent,
    RecordedRequest,
    RequestLog,
    SandboxState,
    StoredResponse,
)

__all__ = ["DEFAULT_API_KEY", "SandboxServer"]

logger = logging.getLogger("hakuna_async.testing")

#: The API key a sandbox accepts unless another is given. It is not a secret.
DEFAULT_API_KEY: Final = "sk_sandbox_local"

API_VERSION: Final = "v2.0"
VERSION_HEADER: Final = "Hakuna-Version"
IDEMPOTENCY_HEADER: Final = "Hakuna-Idempotency-Key"
REPLAYED_HEADER: Final = "Hakuna-Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255

# How long stop() waits for requests in progress before cancelling them. Faults end
# their waits as soon as stop() begins, so only ordinary handling remains by then.
_SHUTDOWN_TIMEOUT_SECONDS: Final = 2.0

_UNAUTHORIZED_BODY: Final = error_body(
    "unauthorized",
    "Missing or invalid API key. Send the header `Authorization: Bearer <API key>` "
    "with the sandbox's key (SandboxServer.api_key).",
)
_MISSING_VERSION_BODY: Final = error_body(
    "missing_version",
    f"Missing {VERSION_HEADER} header. Send `{VERSION_HEADER}: {API_VERSION}` on every request: "
    "without it Hakuna silently falls back to v1.1, whose bodies differ, so the sandbox "
    "rejects the request instead.",
)


def _operation_pattern(path: str) -> re.Pattern[str]:
    """Compile an OpenAPI path template such as ``/carts/{cart_id}/plan-connections``."""
    parts = re.split(r"\{[^}]+\}", path)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$")


# Used only to return 405 rather than 404 for a known path with another method.
_OPERATION_PATTERNS: Final = tuple(
    (_operation_pattern(operation.path), operation.method) for operation in OPERATIONS.values()
)
_OPERATION_LIST: Final = ", ".join(
    f"{operation.method} {operation.path}" for operation in OPERATIONS.values()
)

_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()

# A step of the pipeline: the request, its body and the body's SHA-256 to the reply.
_Handle: TypeAlias = Callable[[web.Request, bytes, str], Reply]


class SandboxServer:
    """A local Hakuna API v2.0 for tests and demos, on ``127.0.0.1`` and a free port by default.

    Use it as ``async with SandboxServer() as sandbox:`` and point a client at
    ``sandbox.url`` with ``sandbox.api_key``. It serves every operation of the spec
    and keeps its state in memory: received events (``events``), orders, carts,
    idempotency keys for the server's life, and the latest ``max_recorded_requests``
    requests (``requests``). ``faults`` plans errors, delays, dropped and reset
    connections and stalled bodies for the next matching requests. ``reset()`` clears all of it.

    The plan catalogue (``plans``) decides what ``/plans/match`` and ``/checkouts``
    offer. ``api_key`` is the one key accepted, as ``Authorization: Bearer <api_key>``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        plans: Sequence[CatalogPlan] = DEFAULT_PLANS,
        max_recorded_requests: int = 100_000,
    ) -> None:
        if not api_key or api_key != api_key.strip() or " " in api_key:
            raise ValueError("api_key must be a non-empty string without spaces.")
        if max_recorded_requests < 0:
            raise ValueError(
                f"max_recorded_requests must be 0 or more, got {max_recorded_requests}."
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 (a free port) to 65535, got {port}.")

        self._host = host
        self._requested_port = port
        self._api_key = api_key
        self._expected_authorization = f"Bearer {api_key}"
        self._plans = tuple(plans)
        self._record_requests = max_recorded_requests > 0

        self._state = SandboxState()
        self._requests = RequestLog(max_recorded_requests)
        self._faults = FaultInjector()

        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None

        self._api = SandboxAPI(self._state, self._plans)

    # Lifecycle.

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the port and start serving. Raise ``RuntimeError`` if already running."""
        if self._runner is not None:
            raise RuntimeError(f"The sandbox is already running at {self._url}.")
        if not _is_loopback(self._host):
            logger.warning(
                "The sandbox binds %s, which is not a loopback address: other machines can "
                "reach it, and its API key is not secret.",
                self._host,
            )

        runner = web.AppRunner(
            self._build_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise

        # The URL names the bound address itself: "localhost" could resolve to an
        # address family that got a different free port.
        bound_host, bound_port = runner.addresses[0][:2]
        self._port = bound_port
        self._url = (
            f"http://[{bound_host}]:{bound_port}"
            if ":" in bound_host
            else f"http://{bound_host}:{bound_port}"
        )
        self._api.base_url = self._url
        self._stopping = asyncio.Event()
        self._runner = runner
        logger.info("Hakuna sandbox listening on %s", self._url)

    async def stop(self) -> None:
        """Stop serving and close every connection. Calling it again does nothing."""
        runner = self._runner
        if runner is None:
            return

        self._runner = None
        if self._stopping is not None:
            self._stopping.set()
        await runner.cleanup()
        logger.info("Hakuna sandbox at %s stopped", self._url)

    async def serve_forever(self) -> None:
        """Serve until the task is cancelled or ``stop()`` is called, then stop."""
        if self._runner is None:
            await self.start()
        stopping = self._stopping
        assert stopping is not None

        try:
            await stopping.wait()
        finally:
            await self.stop()

    # Public state.

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``, without a trailing slash."""
        if self._runner is None or self._url is None:
            raise RuntimeError(
                "The sandbox is not running: use `async with SandboxServer()` or await start()."
            )
        return self._url

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._runner is None or self._port is None:
            raise RuntimeError(
                "The sandbox is not running: use `async with SandboxServer()` or await start()."
            )
        return self._port

    @property
    def host(self) -> str:
        """The host the sandbox binds, as given to the constructor."""
        return self._host

    @property
    def api_key(self) -> str:
        """The API key the sandbox accepts."""
        return self._api_key

    @property
    def plans(self) -> tuple[CatalogPlan, ...]:
        """The plan catalogue behind ``/plans/match`` and ``/checkouts``."""
        return self._plans

    @property
    def faults(self) -> FaultInjector:
        """The fault rules for the next requests, and the faults applied so far."""
        return self._faults

    @property
    def requests(self) -> RequestLog:
        """The recorded requests, oldest first, bounded by ``max_recorded_requests``."""
        return self._requests

    @property
    def events(self) -> Sequence[ReceivedEvent]:
        """Every accepted event, in arrival order (idempotent replays are not repeated)."""
        return self._state.events

    @property
    def orders(self) -> Mapping[str, OrderState]:
        """The state of each order that some event named, by order id."""
        return MappingProxyType(self._state.orders)

    @property
    def carts(self) -> Mapping[str, CartRecord]:
        """The latest update of each cart, by cart id."""
        return MappingProxyType(self._state.carts)

    @property
    def cart_checkouts(self) -> Mapping[str, str]:
        """The order id of each cart's latest checkout notification, by cart id."""
        return MappingProxyType(self._state.cart_checkouts)

    def event_count_by_type(self) -> dict[str, int]:
        """Count the accepted events by type, for example ``{"order_placed": 3}``."""
        return dict(self._state.event_counts)

    def events_for_order(self, order_id: str) -> list[ReceivedEvent]:
        """Return the accepted events of one order, in arrival order."""
        return [received for received in self._state.events if received.order_id == order_id]

    def reset(self) -> None:
        """Forget every event, order, cart, idempotency key, recorded request and fault."""
        self._state.clear()
        self._requests.clear()
        self._faults.reset()

    # Routing.

    def _build_app(self) -> web.Application:
        app = web.Application()
        handlers = self._api.handlers()

        for operation_id, operation in OPERATIONS.items():
            handler = handlers.get(operation_id, self._api.not_implemented)
            handle = functools.partial(self._handle_api, operation, handler)
            app.router.add_route(
                operation.method, operation.path, functools.partial(self._serve, handle)
            )

        app.router.add_get(
            "/checkout-links/{checkout_type}/{order_id}",
            functools.partial(self._serve, self._checkout_link_page),
            allow_head=False,
        )
        app.router.add_route("*", "/{tail:.*}", functools.partial(self._serve, self._unknown_route))
        return app

    # The request pipeline.

    async def _serve(self, handle: _Handle, request: web.Request) -> web.StreamResponse:
        received_at = datetime.now(UTC)
        # Taken before the body is read, because a Reset fault must act before that.
        fault = self._faults.take(request.method, request.path)
        if isinstance(fault, Reset) and not fault.after_handling:
            self._record(request, b"", _EMPTY_SHA256, None, fault, received_at)
            return _reset_connection(request)

        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as error:
            # aiohttp's default limit is 1 MiB (client_max_size). Hakuna does not publish one.
            # The fault taken for this request is used up but not applied.
            reply = APIError(
                413, "payload_too_large", f"The request body is too large: {error.text}."
            ).reply
            self._record(request, b"", _EMPTY_SHA256, reply.status, None, received_at)
            return reply.to_response()

        digest = hashlib.sha256(body).hexdigest()
        if isinstance(fault, Respond):
            reply = fault_reply(fault)
        elif isinstance(fault, Drop) and not fault.after_handling:
            self._record(request, body, digest, None, fault, received_at)
            return _drop_connection(request)
        else:
            if isinstance(fault, Delay):
                await self._pause(fault.seconds)
            reply = self._handle_safely(handle, request, body, digest)

        if isinstance(fault, Drop):
            self._record(request, body, digest, None, fault, received_at)
            return _drop_connection(request)
        if isinstance(fault, Reset):
            self._record(request, body, digest, None, fault, received_at)
            return _reset_connection(request)

        self._record(request, body, digest, reply.status, fault, received_at)
        if isinstance(fault, StallBody):
            return await self._send_stalled(request, reply, fault.seconds)
        return reply.to_response()

    def _handle_safely(
        self, handle: _Handle, request: web.Request, body: bytes, digest: str
    ) -> Reply:
        try:
            return handle(request, body, digest)
        except APIError as error:
            return error.reply
        except Exception:
            logger.exception("The sandbox failed to handle %s %s", request.method, request.path)
            return Reply(
                500,
                error_body(
                    "internal_error",
                    "The sandbox failed to handle the request; its log has the traceback.",
                ),
            )

    def _handle_api(
        self,
        operation: Operation,
        handler: OperationHandler,
        request: web.Request,
        body: bytes,
        digest: str,
    ) -> Reply:
        """Check the API key, then the version, then run the operation."""
        headers = request.headers
        if headers.get("Authorization") != self._expected_authorization:
            return Reply(401, _UNAUTHORIZED_BODY)

        version = headers.get(VERSION_HEADER)
        if version is None:
            return Reply(400, _MISSING_VERSION_BODY)
        if version != API_VERSION:
            raise APIError(
                400,
                "unsupported_version",
                f"Unsupported {VERSION_HEADER} {version[:40]!r}: the sandbox serves only "
                f"{API_VERSION}. Send `{VERSION_HEADER}: {API_VERSION}`.",
            )

        if not operation.sends_idempotency_key:
            return handler(operation, request, body, None)
        return self._handle_idempotent(operation, handler, request, body, digest)

    def _handle_idempotent(
        self,
        operation: Operation,
        handler: OperationHandler,
        request: web.Request,
        body: bytes,
        digest: str,
    ) -> Reply:
        """Replay, reject or run a POST according to its idempotency key.

        Handlers run without awaiting, so two requests with one key can never both
        miss the stored response.
        """
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler(operation, request, body, None)
        if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            field_error = FieldError(
                IDEMPOTENCY_HEADER,
                f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long, got {len(key)}",
            )
            raise APIError(
                400, "validation_failed", f"Invalid header {field_error}.", [field_error]
            )

        stored = self._state.idempotency.get(key)
        if stored is not None:
            if (
                stored.method == request.method
                and stored.path == request.path
                and stored.body_sha256 == digest
            ):
                return Reply(stored.status, stored.body, headers={REPLAYED_HEADER: "true"})
            raise APIError(
                409,
                "idempotency_key_reused",
                f"The idempotency key {key!r} was already used for {stored.method} {stored.path} "
                "with a different request body. Send a new key for a different request.",
            )

        reply = handler(operation, request, body, key)
        if 200 <= reply.status < 300:
            self._state.idempotency[key] = StoredResponse(
                method=request.method,
                path=request.path,
                body_sha256=digest,
                status=reply.status,
                body=reply.body,
            )
        return reply

    def _record(
        self,
        request: web.Request,
        body: bytes,
        digest: str,
        status: int | None,
        fault: Fault | None,
        received_at: datetime,
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            fault_name = "" if fault is None else f" ({type(fault).__name__} fault)"
            outcome = "dropped" if status is None else str(status)
            logger.debug("%s %s -> %s%s", request.method, request.path, outcome, fault_name)
        if not self._record_requests:
            return

        headers: Mapping[str, str] = request.headers
        authorization = headers.get("Authorization")
        if authorization is not None and authorization != self._expected_authorization:
            redacted = CIMultiDict(headers)
            redacted["Authorization"] = "<redacted>"
            headers = CIMultiDictProxy(redacted)

        self._requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=headers,
                body=body,
                body_sha256=digest,
                idempotency_key=headers.get(IDEMPOTENCY_HEADER),
                status=status,
                fault=None if fault is None else type(fault).__name__,
                received_at=received_at,
            )
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep for ``seconds``, or less when the sandbox begins to stop."""
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)

    async def _send_stalled(
        self, request: web.Request, reply: Reply, seconds: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers=reply.header_map())
        response.content_length = len(reply.body)
        split = len(reply.body) // 2

        try:
            await response.prepare(request)
            await response.write(reply.body[:split])
            await self._pause(seconds)
            await response.write(reply.body[split:])
            await response.write_eof()
        except ConnectionError:
            logger.debug(
                "The client closed the connection during a stalled body: %s %s",
                request.method,
                request.path,
            )
        return response

    # Routes outside the API.

    def _checkout_link_page(self, request: web.Request, body: bytes, digest: str) -> Reply:
        """Serve the page behind an Assist or Redirect link. It needs no API key."""
        return self._api.checkout_link_page(request)

    def _unknown_route(self, request: web.Request, body: bytes, digest: str) -> Reply:
        allowed = [method for pattern, method in _OPERATION_PATTERNS if pattern.match(request.path)]
        if allowed:
            raise APIError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
            )
        raise APIError(
            404,
            "not_found",
            f"No operation at {request.method} {request.path}. "
            f"The sandbox serves: {_OPERATION_LIST}.",
        )


def fault_reply(fault: Respond) -> Reply:
    """Build the reply of a ``Respond`` fault."""
    body = fault.body
    if body is None:
        payload = error_body(
            "injected_fault", f"Fault injected by the sandbox: HTTP {fault.status}."
        )
        return Reply(fault.status, payload, headers=fault.headers)
    if isinstance(body, bytes):
        return Reply(
            fault.status, body, content_type="application/octet-stream", headers=fault.headers
        )
    if isinstance(body, str):
        return Reply(
            fault.status,
            body.encode(),
            content_type="text/plain; charset=utf-8",
            headers=fault.headers,
        )
    return Reply(fault.status, ENCODER.encode(dict(body)), headers=fault.headers)


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection, so that aiohttp quietly fails to send the returned response."""
    request.protocol.force_close()
    return web.Response(status=204)


def _reset_connection(request: web.Request) -> web.Response:
    """Reset the connection: with ``SO_LINGER`` 0, closing the socket sends an RST, not a FIN."""
    transport = request.transport
    if transport is not None:
        set_linger_zero(transport.get_extra_info("socket"))
    return _drop_connection(request)


def set_linger_zero(sock: socket.socket | None) -> None:
    """Make closing ``sock`` send an RST and discard unsent data, instead of a FIN."""
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
