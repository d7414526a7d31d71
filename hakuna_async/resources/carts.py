"""Carts: keep protection lines consistent with the products in a cart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._config import Timeout
from .._validation import prepare_body
from ..models import AcceptedCartCheckout, Cart, CartActions, CartCheckout, CartPlanConnections
from ..models._operations import GET_CART_PLAN_CONNECTIONS, NOTIFY_CART_CHECKOUT, UPDATE_CART
from ._base import Resource


class Carts(Resource):
    """``client.carts``."""

    async def update(
        self,
        cart: Cart | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> CartActions:
        """Tell Hakuna the current state of a cart and get the actions it requires.

        ``cart`` is a ``Cart`` or a dict of the same shape; it is validated before
        anything is sent. Apply every action in the result's ``actions``: an
        ``update_line_item`` action sets a line's quantity, and 0 means "remove the
        line". Raise ``RequestValidationError`` for an invalid cart.
        """
        body = prepare_body(Cart, cart, "cart")
        result: CartActions = await self._client.request(
            UPDATE_CART,
            body=body,
            idempotency_key=idempotency_key,
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def plan_connections(
        self,
        cart_id: str,
        *,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> CartPlanConnections:
        """Fetch which product line items of a cart are protected by which plan line items.

        Raise ``NotFoundError`` when Hakuna has no such cart.
        """
        result: CartPlanConnections = await self._client.request(
            GET_CART_PLAN_CONNECTIONS,
            path_params={"cart_id": cart_id},
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    async def checkout(
        self,
        *,
        cart_id: str,
        user_session_id: str,
        order_id: str,
        idempotency_key: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> AcceptedCartCheckout:
        """Tell Hakuna that a cart was checked out and became ``order_id``."""
        body = prepare_body(
            CartCheckout,
            {"cart_id": cart_id, "user_session_id": user_session_id, "order_id": order_id},
            "cart checkout",
        )
        result: AcceptedCartCheckout = await self._client.request(
            NOTIFY_CART_CHECKOUT,
            body=body,
            idempotency_key=idempotency_key,
            timeout=timeout,
            max_retries=max_retries,
        )
        return result
