"""Parsing of request bodies and query strings, and the sandbox's response bodies.

Error responses have Hakuna's shape, ``{"error": {"error_code", "message",
"validation_errors"}}``, always as JSON. Validation reuses the client's own functions
from ``hakuna_async._validation``, so both sides report the same field paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from .._errors import FieldError, RequestValidationError
from .._validation import field_error_from

__all__ = [
    "ENCODER",
    "HTML",
    "JSON",
    "APIError",
    "Reply",
    "decode_json",
    "error_body",
    "parse_query",
]

JSON: Final = "application/json"
HTML: Final = "text/html; charset=utf-8"
ENCODER: Final = msgspec.json.Encoder()

# msgspec reports a missing query parameter as "Object missing required field `name`".
_MISSING_FIELD: Final = re.compile(r"missing required field `(?P<name>[^`]+)`")


def error_body(
    error_code: str, message: str, validation_errors: Sequence[FieldError] = ()
) -> bytes:
    """Encode an error response body with ``{"field", "message"}`` validation errors."""
    detail: dict[str, Any] = {"error_code": error_code, "message": message}
    if validation_errors:
        detail["validation_errors"] = [
            {"field": error.field, "message": error.message} for error in validation_errors
        ]
    return ENCODER.encode({"error": detail})


@dataclass(frozen=True, slots=True)
class Reply:
    """A response before it is sent, so that faults can send it late, partly or not at all."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: Mapping[str, str] | None = None

    def header_map(self) -> CIMultiDict[str]:
        """Return the headers to send, with a ``Content-Type`` unless ``headers`` sets one."""
        headers: CIMultiDict[str] = CIMultiDict(self.headers or {})
        headers.setdefault("Content-Type", self.content_type)
        return headers

    def to_response(self) -> web.Response:
        """Build the aiohttp response."""
        if self.headers is None and ";" not in self.content_type:
            return web.Response(status=self.status, body=self.body, content_type=self.content_type)
        return web.Response(status=self.status, body=self.body, headers=self.header_map())


class APIError(Exception):
    """An error response raised from inside a handler. It is never stored for idempotency."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        validation_errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reply = Reply(
            status, error_body(error_code, message, validation_errors), headers=headers
        )


def validation_failed(error: RequestValidationError) -> APIError:
    """Turn the client-side validation error into a 400 ``validation_failed`` response."""
    details = "; ".join(str(field_error) for field_error in error.errors)
    return APIError(
        400,
        "validation_failed",
        f"Invalid {error.what}: {details}. Fix the value and retry.",
        error.errors,
    )


def _invalid_json(error: msgspec.DecodeError) -> APIError:
    return APIError(400, "invalid_json", f"The request body is not valid JSON: {error}.")


def decode_json(
    decoder: msgspec.json.Decoder[Any],
    body: bytes,
    validate: Callable[[], object],
    body_name: str,
) -> Any:
    """Decode a request body, or raise the 400 response that explains why it is invalid.

    msgspec checks types while it parses, so ``[1, 2`` fails as "expected an object"
    before the syntax error is reached. A second, untyped parse of an invalid body
    separates ``invalid_json`` from ``validation_failed``. ``validate`` reruns the
    client's own validation on the body to get its exact field errors.
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        type_error = error
    except msgspec.DecodeError as error:
        raise _invalid_json(error) from None

    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as syntax_error:
        raise _invalid_json(syntax_error) from None

    try:
        validate()
    except RequestValidationError as validation_error:
        raise validation_failed(validation_error) from None
    raise validation_failed(RequestValidationError(body_name, [field_error_from(type_error)]))


def parse_query(request: web.Request, model: Any) -> Any:
    """Convert the query string into ``model``, or raise a 400 ``validation_failed`` error.

    Field paths name the parameter, as in ``$.order_id``.
    """
    values = dict(request.query)
    try:
        return msgspec.convert(values, model)
    except msgspec.ValidationError as error:
        field_error = field_error_from(error)

    missing = _MISSING_FIELD.search(field_error.message)
    if field_error.field == "$" and missing is not None:
        field_error = FieldError(f"$.{missing['name']}", "missing required query parameter")
    elif field_error.field.startswith("$."):
        value = values.get(field_error.field[2:])
        if value is not None:
            field_error = FieldError(field_error.field, f"{field_error.message}, got {value!r}")
    raise APIError(
        400,
        "validation_failed",
        f"Invalid query parameters: {field_error}. Fix the value and retry.",
        [field_error],
    )
