"""``HakunaClient``: configuration, the retry loop, and error mapping for every call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import warnings
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from . import __version__
from ._config import DEFAULT_TIMEOUT, Timeout, check_header_value, resolve_api_key, resolve_base_url
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    FieldError,
    RequestValidationError,
    describe_status_error,
    error_class_for_status,
)
from ._keys import new_idempotency_key
from ._logging import configure_from_environment, logger
from ._pressure import BatchPressure
from ._retry import RetryPolicy, parse_retry_after
from ._transport import HTTPResponse, Transport
from .models import ErrorResponse, Operation
from .resources import Carts, Checkouts, Events, Orders, Plans

__all__ = ["APIResponseValidationError", "ClientStats", "HakunaClient"]

API_VERSION = "v2.0"
IDEMPOTENCY_HEADER = "Hakuna-Idempotency-Key"

T = TypeVar("T")

_error_decoder = msgspec.json.Decoder(ErrorResponse)
_JSON_HEADERS = {"Content-Type": "application/json"}
_MAX_ERROR_BODY = 4096
_DEADLINE_SLACK = 0.001


class ClientStats(msgspec.Struct):
    """Counters since the client was created: HTTP requests sent and retries among them."""

    requests: int = 0
    retries: int = 0


class APIResponseValidationError(APIError):
    """Hakuna responded 2xx with a body that does not match the expected model."""


class HakunaClient:
    """An asyncio client for the Hakuna API v2.0.

    Create one per process (or per event loop) and reuse it; it keeps a pool of
    connections::

        async with HakunaClient(environment="sandbox") as client:
            accepted = await client.events.publish(event)

    Parameters (all keyword-only but ``api_key``):

    - ``api_key``: defaults to ``HAKUNA_API_KEY``; a missing key raises
      ``ConfigurationError`` here, not a 401 later.
    - ``environment``: ``"production"`` (default) or ``"sandbox"``; defaults to
      ``HAKUNA_ENVIRONMENT``.
    - ``base_url``: overrides the environment (also ``HAKUNA_BASE_URL``), for example a
      local ``SandboxServer``'s ``url``. Plain ``http://`` is rejected for non-loopback
      hosts unless ``allow_insecure_http=True``.
    - ``timeout``: a ``Timeout`` or a number of seconds for a whole call. The default
      ``Timeout()`` allows 10 s to connect, 30 s per read and 90 s per call.
    - ``max_retries``: retries after the first attempt (default 2); ``retry_policy``
      sets the waits too.
    - ``connection_limit``: maximum open connections (default 100).

    Raise ``ConfigurationError`` for a missing or unsafe setting.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        environment: str | None = None,
        base_url: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        connection_limit: int = 100,
        allow_insecure_http: bool = False,
    ) -> None:
        configure_from_environment()
        self._api_key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(
            base_url, environment, allow_insecure_http=allow_insecure_http
        )
        self.timeout = DEFAULT_TIMEOUT if timeout is None else Timeout.of(timeout)
        self.retry_policy = (retry_policy or RetryPolicy()).with_max_retries(max_retries)
        # Sent with every request, so set once on the session; each request only adds
        # its Content-Type and idempotency key.
        self._transport = Transport(
            connection_limit=connection_limit,
            default_headers={
                "Authorization": f"Bearer {self._api_key}",
                "Hakuna-Version": API_VERSION,
                "Accept": "application/json",
                "User-Agent": f"hakuna-async/{__version__}",
            },
        )
        # Parsed once per operation without path parameters, so that aiohttp does not
        # parse the same URL string on every request.
        self._fixed_urls: dict[str, URL] = {}
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self.stats = ClientStats()

        self.events = Events(self)
        self.orders = Orders(self)
        self.plans = Plans(self)
        self.carts = Carts(self)
        self.checkouts = Checkouts(self)

    def __repr__(self) -> str:
        return f"HakunaClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> HakunaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool. Safe to call more than once."""
        await self._transport.close()

    def __del__(self) -> None:
        # No I/O here: the loop may be gone. Only tell the owner what they forgot.
        transport = getattr(self, "_transport", None)
        if transport is not None and transport._session is not None and not transport.closed:
            warnings.warn(
                f"{self!r} was not closed; use `async with HakunaClient()` or "
                "`await client.close()`.",
                ResourceWarning,
                stacklevel=2,
            )

    def request(
        self,
        operation: Operation,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        idempotency_key: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        pressure: BatchPressure | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Call ``operation`` with retries; await the result for its decoded 2xx response.

        The arguments are checked when this is called, and the request is sent when
        the result is awaited: a plain function returning the coroutine saves one
        coroutine layer per call. ``body`` is the already validated JSON body. For
        operations that take an idempotency key, one is generated when
        ``idempotency_key`` is ``None``, and the same key is sent with every attempt.
        ``pressure``, when given, is the throttling state of a batch: every attempt
        waits out its pauses, and a 429 or 503 response pauses the whole batch. Raise
        an ``APIError`` subclass on failure; ``asyncio.CancelledError`` is never
        caught.
        """
        path = _expand_path(operation, path_params)
        url: str | URL
        if query:
            url = (
                self.base_url
                + path
                + "?"
                + "&".join(
                    f"{quote(name, safe='')}={quote(value, safe='')}"
                    for name, value in query.items()
                )
            )
        elif operation.path_params:
            url = self.base_url + path
        else:
            url = self._fixed_urls.get(path) or self._fixed_url(path)

        headers: dict[str, str] | None = _JSON_HEADERS if body is not None else None
        key: str | None = None
        if operation.sends_idempotency_key:
            if idempotency_key is None:
                key = new_idempotency_key()
            else:
                key = check_header_value(IDEMPOTENCY_HEADER, idempotency_key)
            headers = {**(headers or {}), IDEMPOTENCY_HEADER: key}

        call_timeout = self.timeout if timeout is None else Timeout.of(timeout)
        policy = self.retry_policy.with_max_retries(max_retries)
        return self._send_with_retries(
            operation, path, url, headers, body, key, call_timeout, policy, pressure
        )

    async def _send_with_retries(
        self,
        operation: Operation,
        path: str,
        url: str | URL,
        headers: dict[str, str] | None,
        body: bytes | None,
        key: str | None,
        timeout: Timeout,
        policy: RetryPolicy,
        pressure: BatchPressure | None,
    ) -> Any:
        method = operation.method
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total
        attempt = 0
        error: APIError | None = None

        while True:
            attempt += 1
            if pressure is not None and pressure.paused_at(loop.time()):
                await _wait_until_deadline(pressure.before_attempt(), deadline)
            remaining = deadline - loop.time()
            if remaining <= 0:
                # A batch pause or a late wake-up used up the time. No attempt may start
                # without time left, because aiohttp reads a total of 0 or less as no limit.
                raise _deadline_error(error, method, path, key, attempt, timeout)
            attempt_timeout = aiohttp.ClientTimeout(
                total=remaining,
                sock_connect=timeout.connect,
                sock_read=timeout.read,
                # aiohttp rounds limits above ceil_threshold up to a whole second of the
                # loop's clock, which would let an attempt outlive the deadline.
                ceil_threshold=math.inf,
            )
            retry_after: float | None = None
            self.stats.requests += 1
            try:
                response = await self._transport.request(
                    method,
                    url,
                    headers=headers,
                    body=body,
                    timeout=attempt_timeout,
                    attempt=attempt,
                )
            except TimeoutError:
                error = APITimeoutError(
                    _failure_message(
                        method, path, key, attempt, _timeout_reason(timeout, loop.time(), deadline)
                    ),
                    method=method,
                    path=path,
                    idempotency_key=key,
                    attempts=attempt,
                )
            except aiohttp.ClientError as exc:
                error = APIConnectionError(
                    _failure_message(
                        method, path, key, attempt, f"connection error: {_describe(exc)}"
                    ),
                    method=method,
                    path=path,
                    idempotency_key=key,
                    attempts=attempt,
                )
            else:
                if response.status < 300:
                    if pressure is not None:
                        pressure.on_success()
                    return self._decode(operation, response, path, key)
                status_error = _status_error(method, path, key, attempt, response)
                error = status_error
                if not policy.is_retryable_status(response.status):
                    _log_failure(error)
                    raise error
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                status_error.retry_after = retry_after

            if attempt > policy.max_retries:
                _log_give_up(error, "no retries left")
                raise error
            if retry_after is not None and retry_after > policy.max_retry_after:
                _log_give_up(
                    error,
                    f"the server asked to wait {retry_after:.0f}s, more than "
                    f"max_retry_after={policy.max_retry_after:.0f}s",
                )
                raise error
            wait = policy.wait_before_retry(attempt, retry_after)
            if loop.time() + wait >= deadline:
                _log_give_up(error, f"the next attempt would pass the {timeout.total:g}s deadline")
                raise error

            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "Retrying %s %s in %.2fs (attempt %d of %d failed: %s); idempotency key %s",
                    method,
                    path,
                    wait,
                    attempt,
                    policy.max_retries + 1,
                    _short_reason(error),
                    key,
                )
            self.stats.retries += 1
            if (
                pressure is not None
                and isinstance(error, APIStatusError)
                and error.status in (429, 503)
            ):
                pressure.on_throttled(wait)
            await asyncio.sleep(wait)

    def _fixed_url(self, path: str) -> URL:
        url = URL(self.base_url + path)
        self._fixed_urls[path] = url
        return url

    def _decode(
        self, operation: Operation, response: HTTPResponse, path: str, key: str | None
    ) -> Any:
        decoder = self._decoders.get(operation.operation_id)
        if decoder is None:
            decoder = msgspec.json.Decoder(operation.response_model)
            self._decoders[operation.operation_id] = decoder
        try:
            return decoder.decode(response.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise APIResponseValidationError(
                f"{operation.method} {path} returned HTTP {response.status} with a body that is "
                f"not a valid {operation.response_model.__name__}: {exc}. "
                "The API may have changed; "
                "update hakuna-async or report this.",
                method=operation.method,
                path=path,
                idempotency_key=key,
            ) from None


def _expand_path(operation: Operation, path_params: Mapping[str, str] | None) -> str:
    if not operation.path_params:
        return operation.path
    values: dict[str, str] = {}
    for name in operation.path_params:
        value = (path_params or {}).get(name)
        if not isinstance(value, str) or not value:
            raise RequestValidationError(
                f"{name} parameter",
                [FieldError(name, f"expected a non-empty string, got {value!r}")],
            )
        if value in (".", ".."):
            # quote() keeps dots, and URL normalization would drop the segment.
            raise RequestValidationError(
                f"{name} parameter",
                [FieldError(name, f"{value!r} cannot be sent as a path segment; check the id")],
            )
        # One path segment, whatever the id contains: "a/b?c" becomes "a%2Fb%3Fc".
        values[name] = quote(value, safe="")
    return operation.path.format_map(values)


def _status_error(
    method: str, path: str, key: str | None, attempt: int, response: HTTPResponse
) -> APIStatusError:
    error_code: str | None = None
    validation_errors: list[Any] = []
    try:
        detail = _error_decoder.decode(response.body).error
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    else:
        if isinstance(detail.error_code, str):
            error_code = detail.error_code
        if isinstance(detail.validation_errors, list):
            validation_errors = detail.validation_errors

    error_class = error_class_for_status(response.status)
    message = describe_status_error(
        error_class,
        method=method,
        path=path,
        status=response.status,
        reason=response.reason,
        error_code=error_code,
        validation_errors=validation_errors,
        idempotency_key=key,
        attempts=attempt,
    )
    return error_class(
        message,
        method=method,
        path=path,
        status=response.status,
        error_code=error_code,
        validation_errors=validation_errors,
        body=response.body[:_MAX_ERROR_BODY],
        headers=dict(response.headers),
        idempotency_key=key,
        attempts=attempt,
    )


def _failure_message(method: str, path: str, key: str | None, attempt: int, reason: str) -> str:
    label = f"{method} {path}"
    if key is not None:
        label += f" (idempotency key {key})"
    attempts = f" after {attempt} attempts" if attempt > 1 else ""
    return f"{label} failed{attempts}: {reason}. Check the network and base URL; retrying is safe."


async def _wait_until_deadline(wait: Awaitable[None], deadline: float) -> None:
    """Await ``wait``, but stop waiting at ``deadline`` (a time of the loop's clock)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            await wait


def _deadline_error(
    last_error: APIError | None,
    method: str,
    path: str,
    key: str | None,
    attempt: int,
    timeout: Timeout,
) -> APIError:
    why = f"the {timeout.total:g}s deadline passed before attempt {attempt}"
    if last_error is not None:
        _log_give_up(last_error, why)
        return last_error
    error = APITimeoutError(
        _failure_message(method, path, key, attempt - 1, why),
        method=method,
        path=path,
        idempotency_key=key,
        attempts=attempt - 1,
    )
    _log_give_up(error, why)
    return error


def _timeout_reason(timeout: Timeout, now: float, deadline: float) -> str:
    # The loop may run a timer up to its clock resolution early, hence the slack.
    if now >= deadline - _DEADLINE_SLACK:
        return f"the call's {timeout.total:g}s deadline passed"
    return (
        f"timed out (connect limit {timeout.connect:g}s, read limit {timeout.read:g}s, "
        f"deadline {timeout.total:g}s)"
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # Its text is the repr of the partial response, which helps no reader.
        return "the server closed the connection before a complete response"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short_reason(error: APIError) -> str:
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    return "connection error"


def _log_failure(error: APIError) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", error)


def _log_give_up(error: APIError, why: str) -> None:
    attempts = "1 attempt" if error.attempts == 1 else f"{error.attempts} attempts"
    key = f"; idempotency key {error.idempotency_key}" if error.idempotency_key else ""
    logger.warning(
        "Giving up on %s %s after %s (%s): %s%s",
        error.method,
        error.path,
        attempts,
        why,
        _short_reason(error),
        key,
    )
