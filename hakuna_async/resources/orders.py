"""Orders: which product line items of an order are protected by which plan line items."""

from __future__ import annotations

from .._config import Timeout
from ..models import OrderPlanConnections
from ..models._operations import GET_ORDER_PLAN_CONNECTIONS
from ._base import Resource


class Orders(Resource):
    """``client.orders``."""

    async def plan_connections(
        self,
        order_id: str,
        *,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> OrderPlanConnections:
        """Fetch the plan connections of an order published with ``order_placed``.

        Each product line item appears once, with the protection line item that covers
        it or ``None``. Raise ``NotFoundError`` when Hakuna has no such order.
        """
        result: OrderPlanConnections = await self._client.request(
            GET_ORDER_PLAN_CONNECTIONS,
            path_params={"order_id": order_id},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result
