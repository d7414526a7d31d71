"""What every resource shares: the client it calls and query validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import RequestValidationError
from .._validation import field_error_from
from ..models import Operation

if TYPE_CHECKING:
    from .._client import HakunaClient


class Resource:
    """One API area; calls go through the owning client's retry loop."""

    def __init__(self, client: HakunaClient) -> None:
        self._client = client


def validate_query(operation: Operation, values: dict[str, Any]) -> dict[str, str]:
    """Check query parameters against the operation's generated model.

    Return the parameters as strings, ready for the URL. Raise
    ``RequestValidationError`` naming the first invalid parameter.
    """
    try:
        msgspec.convert(values, operation.query_model)
    except msgspec.ValidationError as error:
        raise RequestValidationError(
            f"query parameters of {operation.operation_id}", [field_error_from(error)]
        ) from None
    return {name: str(value) for name, value in values.items()}
