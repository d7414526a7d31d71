"""The exceptions this package raises.

Every exception derives from ``HakunaError``. Errors from the API carry the request's
method, path and idempotency key, so that a log line or a support ticket can name the
exact call. None of them contains the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStoppedError",
    "ClientStateError",
    "ConfigurationError",
    "ConflictError",
    "FieldError",
    "HakunaError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestValidationError",
    "UnprocessableEntityError",
]


class FieldError(NamedTuple):
    """One invalid value: a JSON path such as ``$.payload.line_items[0].quantity`` and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class HakunaError(Exception):
    """Base class of every error raised by hakuna_async."""


class ConfigurationError(HakunaError, ValueError):
    """The client was configured with a missing or unsafe setting."""


class ClientStateError(HakunaError, RuntimeError):
    """The client was used after ``close()`` or from an event loop it cannot serve."""


class RequestValidationError(HakunaError, ValueError):
    """A request body or parameter is invalid; nothing was sent.

    ``errors`` lists every invalid field found, ``field`` is the first one's path.
    """

    def __init__(self, what: str, errors: Sequence[FieldError]) -> None:
        self.what = what
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.field = self.errors[0].field if self.errors else "$"
        details = "; ".join(str(error) for error in self.errors)
        super().__init__(f"Invalid {what}, nothing was sent: {details}. Fix the value and retry.")


class BatchStoppedError(HakunaError):
    """A batch stopped early, because every further event would have failed alike.

    ``cause`` is the error that stopped it (also ``__cause__``). The results of the
    events already taken were yielded before this was raised.
    """

    def __init__(self, message: str, *, cause: Exception | None) -> None:
        super().__init__(message)
        self.cause = cause
        self.__cause__ = cause


class APIError(HakunaError):
    """A call to the Hakuna API failed.

    ``method`` and ``path`` name the request (the path without the base URL),
    ``idempotency_key`` is the key sent with it (``None`` for GET requests) and
    ``attempts`` how many times it was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        idempotency_key: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.path = path
        self.idempotency_key = idempotency_key
        self.attempts = attempts
        super().__init__(message)


class APIConnectionError(APIError):
    """The request did not get an HTTP response: DNS, connect, TLS or a dropped connection."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read or the call's total deadline)."""


class APIStatusError(APIError):
    """Hakuna responded with a 4xx or 5xx status.

    ``status`` is the HTTP status, ``error_code`` and ``validation_errors`` come from
    Hakuna's error body when it has one, ``body`` is the raw response body (at most 4 KiB
    of it) and ``headers`` the response headers. ``retry_after`` is the wait in seconds
    that ``Retry-After`` requested, or ``None`` when it is missing or unusable.
    """

    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int,
        error_code: str | None = None,
        validation_errors: Sequence[Any] = (),
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            message, method=method, path=path, idempotency_key=idempotency_key, attempts=attempts
        )
        self.status = status
        self.error_code = error_code
        self.validation_errors = list(validation_errors)
        self.body = body
        self.headers = headers or {}


class BadRequestError(APIStatusError):
    """400: Hakuna rejected the request as invalid; ``validation_errors`` lists why."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong, or belongs to the other environment."""


class PermissionDeniedError(APIStatusError):
    """403: the API key may not call this operation."""


class NotFoundError(APIStatusError):
    """404: the order, cart or match does not exist (or is not set up for this merchant)."""


class ConflictError(APIStatusError):
    """409: the idempotency key was already used with a different request body."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server-given wait in seconds, if any."""


class InternalServerError(APIStatusError):
    """5xx: Hakuna failed to handle the request."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_ADVICE: dict[type[APIStatusError], str] = {
    BadRequestError: (
        "Fix the request as the validation errors say; retrying it unchanged will fail again."
    ),
    AuthenticationError: (
        "Check the API key (HAKUNA_API_KEY) and that it belongs to this environment: "
        "sandbox and production keys differ."
    ),
    PermissionDeniedError: "Ask Hakuna support to enable this operation for the API key.",
    NotFoundError: (
        "Check the id; match, plan connections and checkouts need an order_placed event first, "
        "and sandbox products and plans are set up by Hakuna support."
    ),
    ConflictError: "Use a new idempotency key for a different request body.",
    UnprocessableEntityError: "Check the request against Hakuna's business rules.",
    RateLimitError: "Slow down: lower the concurrency or retry after the wait Hakuna asked for.",
    InternalServerError: "Hakuna failed; retry later, with the same idempotency key.",
}


# Advice for the error codes this project's sandbox sends. Hakuna does not publish its
# error_code catalogue, so other codes fall back to the advice for the status.
_ADVICE_BY_ERROR_CODE: dict[str, str] = {
    "no_match": (
        "No protection plan matches this product: Hakuna offers none for its category "
        "and price, which is normal for products it does not cover."
    ),
    "no_available_plans": (
        "No line item of this order can get a plan: each one is protected already or "
        "matches no plan."
    ),
    "idempotency_key_reused": "Use a new idempotency key for a different request body.",
}


def error_class_for_status(status: int) -> type[APIStatusError]:
    """Return the exception class for an HTTP error status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


def describe_status_error(
    error_class: type[APIStatusError],
    *,
    method: str,
    path: str,
    status: int,
    reason: str,
    error_code: str | None,
    validation_errors: Sequence[Any],
    idempotency_key: str | None,
    attempts: int,
) -> str:
    """Build the message of an ``APIStatusError``: what failed, Hakuna's reason, what to do."""
    label = f"{method} {path}"
    if idempotency_key is not None:
        label += f" (idempotency key {idempotency_key})"
    message = f"{label} failed with HTTP {status} {reason}".rstrip()
    if attempts > 1:
        message += f" after {attempts} attempts"
    if error_code:
        message += f", error_code {error_code!r}"
    if validation_errors:
        shown = "; ".join(_format_validation_error(item) for item in list(validation_errors)[:5])
        more = len(validation_errors) - 5
        message += f": {shown}" + (f" (and {more} more)" if more > 0 else "")
    advice = _ADVICE_BY_ERROR_CODE.get(error_code or "") or _ADVICE.get(error_class)
    if advice:
        message += f". {advice}"
    return message


def _format_validation_error(item: Any) -> str:
    if isinstance(item, dict) and "field" in item:
        return f"{item['field']}: {item.get('message', 'invalid')}"
    return str(item)
