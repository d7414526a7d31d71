"""The base of every resource: the client it calls, and query validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.inspect

from .._errors import FieldError, RequestValidationError
from .._validation import field_error_from
from ..models import Operation

if TYPE_CHECKING:
    from .._client import HakunaClient


class Resource:
    """One API area; calls go through the owning client's retry loop."""

    def __init__(self, client: HakunaClient) -> None:
        self._client = client


def validate_query(operation: Operation, values: dict[str, Any], what: str) -> dict[str, str]:
    """Check query parameters against the operation's generated model.

    ``what`` names the method for the error message, for example
    ``client.plans.match``. Return the parameters as strings, ready for the URL.
    Raise ``RequestValidationError`` naming the first invalid argument, its value
    and, for a closed set, the allowed values.
    """
    try:
        msgspec.convert(values, operation.query_model)
    except msgspec.ValidationError as error:
        field_error = field_error_from(error)
        name = field_error.field.removeprefix("$.")
        message = field_error.message
        if name in values and repr(values[name]) not in message:
            message += f" (value: {values[name]!r})"
        allowed = _allowed_values(operation.query_model, name)
        if allowed:
            message += f"; expected one of: {', '.join(allowed)}"
        raise RequestValidationError(
            f"arguments of {what}", [FieldError(field_error.field, message)]
        ) from None
    return {name: str(value) for name, value in values.items()}


def _allowed_values(model: Any, name: str) -> list[str]:
    """Return the values an enum or literal parameter allows, or an empty list."""
    info = msgspec.inspect.type_info(model)
    if not isinstance(info, msgspec.inspect.StructType):
        return []
    for field in info.fields:
        if field.encode_name != name:
            continue
        field_type = field.type
        if isinstance(field_type, msgspec.inspect.EnumType):
            return [str(member.value) for member in field_type.cls]
        if isinstance(field_type, msgspec.inspect.LiteralType):
            return [str(value) for value in field_type.values]
    return []
