"""A local Hakuna sandbox, a misbehaving HTTP server and sample data for tests and demos.

``SandboxServer`` emulates the Hakuna API v2.0 on a local port, with state, request
recording and fault injection::

    async with SandboxServer() as sandbox:
        ...  # point the client at sandbox.url with sandbox.api_key

``RawHTTPServer`` does what aiohttp.web will not: never respond, stall after the
headers, close mid-response or right after a keep-alive response, reset a connection.
"""

from ._catalogue import DEFAULT_PLANS, CatalogPlan, find_plans
from ._faults import (
    AppliedFault,
    Delay,
    Drop,
    Fault,
    FaultInjector,
    FaultRule,
    RandomFaultRule,
    Reset,
    Respond,
    StallBody,
)
from ._raw_server import (
    ACCEPTED,
    Behaviour,
    CloseAfterResponse,
    CloseMidResponse,
    NoResponse,
    RawHTTPServer,
    StallResponse,
)
from ._server import DEFAULT_API_KEY, SandboxServer
from ._state import CartRecord, OrderState, ReceivedEvent, RecordedRequest, RequestLog

__all__ = [
    "ACCEPTED",
    "DEFAULT_API_KEY",
    "DEFAULT_PLANS",
    "AppliedFault",
    "Behaviour",
    "CartRecord",
    "CatalogPlan",
    "CloseAfterResponse",
    "CloseMidResponse",
    "Delay",
    "Drop",
    "Fault",
    "FaultInjector",
    "FaultRule",
    "NoResponse",
    "OrderState",
    "RandomFaultRule",
    "RawHTTPServer",
    "ReceivedEvent",
    "RecordedRequest",
    "RequestLog",
    "Reset",
    "Respond",
    "SandboxServer",
    "StallBody",
    "StallResponse",
    "find_plans",
]
