"""Checkouts: Hakuna Assist and Redirect links for selling protection after the purchase."""

from __future__ import annotations

from typing import Literal

from .._config import Timeout
from ..models import Checkout
from ..models._operations import GET_CHECKOUT
from ._base import Resource, validate_query


class Checkouts(Resource):
    """``client.checkouts``."""

    async def retrieve(
        self,
        *,
        order_id: str,
        checkout_type: Literal["assist", "redirect"],
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> Checkout:
        """Fetch the plans still available for an order and a checkout link.

        ``checkout_type="assist"`` returns an ``assist_link`` for the merchant's sales
        staff, ``"redirect"`` a ``redirect_link`` for the customer. The order must have
        been published with ``order_placed``. Raise ``NotFoundError`` when the order is
        unknown or no line item can be protected.
        """
        query = validate_query(
            GET_CHECKOUT,
            {"order_id": order_id, "checkout_type": checkout_type},
            "client.checkouts.retrieve",
        )
        result: Checkout = await self._client.request(
            GET_CHECKOUT, query=query, timeout=timeout, max_retries=max_retries
        )
        return result
