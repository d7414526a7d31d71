"""A local Hakuna sandbox and sample data for tests and demos.

``SandboxServer`` emulates the Hakuna API v2.0 on a local port, with state, request
recording and fault injection::

    async with SandboxServer() as sandbox:
        ...  # point the client at sandbox.url with sandbox.api_key
"""

from ._catalogue import DEFAULT_PLANS, CatalogPlan, find_plans
from ._faults import AppliedFault, Delay, Drop, Fault, FaultInjector, FaultRule, Respond, StallBody
from ._server import DEFAULT_API_KEY, SandboxServer
from ._state import CartRecord, OrderState, ReceivedEvent, RecordedRequest, RequestLog

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PLANS",
    "AppliedFault",
    "CartRecord",
    "CatalogPlan",
    "Delay",
    "Drop",
    "Fault",
    "FaultInjector",
    "FaultRule",
    "OrderState",
    "ReceivedEvent",
    "RecordedRequest",
    "RequestLog",
    "Respond",
    "SandboxServer",
    "StallBody",
    "find_plans",
]
