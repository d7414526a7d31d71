"""An asyncio client for the Hakuna API v2.0.

Publish order events, match protection plans, keep carts consistent and fetch
checkout links::

    from hakuna_async import HakunaClient

    async with HakunaClient(environment="sandbox") as client:
        accepted = await client.events.publish(event)
"""

__version__ = "0.1.0"

from ._batch import PublishResult
from ._client import APIResponseValidationError, HakunaClient
from ._config import ENVIRONMENTS, Timeout
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchStoppedError,
    ClientStateError,
    ConfigurationError,
    ConflictError,
    FieldError,
    HakunaError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    UnprocessableEntityError,
)
from ._retry import RetryPolicy

__all__ = [
    "ENVIRONMENTS",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStoppedError",
    "ClientStateError",
    "ConfigurationError",
    "ConflictError",
    "FieldError",
    "HakunaClient",
    "HakunaError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PublishResult",
    "RateLimitError",
    "RequestValidationError",
    "RetryPolicy",
    "Timeout",
    "UnprocessableEntityError",
    "__version__",
]
