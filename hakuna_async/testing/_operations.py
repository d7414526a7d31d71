"""The sandbox's handlers for the seven operations of the Hakuna API v2.0.

Each handler gets a request that already passed the API key, version and
idempotency checks, and returns the reply or raises ``APIError``. Handlers never
await, so that the idempotency check and the store of the outcome cannot interleave
with another request.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias
from urllib.parse import quote

import msgspec
from aiohttp import web

from .._errors import RequestValidationError
from .._validation import event_rule_errors, prepare_body, prepare_event
from ..models import (
    AcceptedCartCheckout,
    AcceptedEvent,
    Cart,
    CartActions,
    CartCheckout,
    CartPlanConnections,
    Checkout,
    Event,
    MatchedPlan,
    MatchedProduct,
    Operation,
    OrderPlanConnections,
    PlanMatch,
)
from ._catalogue import CatalogPlan, find_plans
from ._replies import ENCODER, HTML, APIError, Reply, decode_json, parse_query, validation_failed
from ._rules import apply_cart_actions, available_plans, cart_actions, plan_connections
from ._state import CartRecord, OrderState, ReceivedEvent, SandboxState

__all__ = ["OperationHandler", "SandboxAPI"]

#: A handler: the operation, the request, its body and its idempotency key (or None).
OperationHandler: TypeAlias = Callable[[Operation, web.Request, bytes, str | None], Reply]

_EVENT_DECODER = msgspec.json.Decoder(Event)
_CART_DECODER = msgspec.json.Decoder(Cart)
_CART_CHECKOUT_DECODER = msgspec.json.Decoder(CartCheckout)


class SandboxAPI:
    """The operations of the API over one ``SandboxState`` and one plan catalogue."""

    def __init__(self, state: SandboxState, plans: tuple[CatalogPlan, ...]) -> None:
        self.state = state
        self.plans = plans
        # The sandbox's own URL for checkout links, set when the server starts.
        self.base_url = ""
        self._categories = ", ".join(sorted(set().union(*(plan.categories for plan in plans))))

    def handlers(self) -> dict[str, OperationHandler]:
        """Return the handler of each operation, by operation id."""
        return {
            "publishEvent": self.publish_event,
            "getOrderPlanConnections": self.get_order_plan_connections,
            "matchPlans": self.match_plans,
            "getCartPlanConnections": self.get_cart_plan_connections,
            "updateCart": self.update_cart,
            "notifyCartCheckout": self.notify_cart_checkout,
            "getCheckout": self.get_checkout,
        }

    def publish_event(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Store a valid event, including lifecycle events for an order not yet placed."""
        event: Any = decode_json(_EVENT_DECODER, body, lambda: prepare_event(body), "event")
        rule_errors = event_rule_errors(event)
        if rule_errors:
            label = f"{type(event).__struct_config__.tag} event"
            raise validation_failed(RequestValidationError(label, rule_errors))

        event_id = f"evt-{uuid.uuid4()}"
        self.state.add_event(
            ReceivedEvent(
                event_id=event_id,
                idempotency_key=idempotency_key,
                event=event,
                received_at=datetime.now(UTC),
            )
        )
        return Reply(202, ENCODER.encode(AcceptedEvent(event_id=event_id)))

    def get_order_plan_connections(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Pair the product and protection lines of the latest ``order_placed`` event."""
        order_id = request.match_info["order_id"]
        placed = self._placed_order(order_id).placed
        assert placed is not None

        connections = OrderPlanConnections(
            order_id=order_id, plan_connections=plan_connections(placed.line_items)
        )
        return Reply(200, ENCODER.encode(connections))

    def match_plans(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Return the catalogue plans for a product's category, unit price and currency."""
        query = parse_query(request, operation.query_model)
        price_amount = int(query.product_price_amount)
        currency = query.product_price_currency

        plans = find_plans(self.plans, query.product_category, price_amount, currency)
        if not plans:
            raise APIError(
                404,
                "no_match",
                f"No protection plan matches product_category {query.product_category!r} at "
                f"{price_amount} {currency}. The sandbox catalogue covers the categories: "
                f"{self._categories}.",
            )

        match = PlanMatch(
            product=MatchedProduct(
                id=query.product_id,
                category=query.product_category,
                title=query.product_title,
                brand=query.product_brand,
                price_amount=price_amount,
                price_currency=currency,
            ),
            plans=[
                MatchedPlan(
                    merchant_product_id=plan.merchant_product_id,
                    price_amount=plan.price_amount,
                    price_currency=plan.currency,
                    product_reference=query.product_id,
                    title=dict(plan.title),
                )
                for plan in plans
            ],
        )
        return Reply(200, ENCODER.encode(match))

    def get_cart_plan_connections(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Pair the product and protection lines of a cart as it is after its last actions."""
        cart_id = request.match_info["cart_id"]
        record = self.state.carts.get(cart_id)
        if record is None:
            raise APIError(
                404,
                "not_found",
                f"No cart update was received for cart_id {cart_id!r}; "
                "send one with POST /carts first.",
            )

        connections = CartPlanConnections(
            cart_id=cart_id, plan_connections=plan_connections(record.cart.line_items)
        )
        return Reply(200, ENCODER.encode(connections))

    def update_cart(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Return the actions that fix the cart's protection lines, and store the fixed cart."""
        cart: Cart = decode_json(
            _CART_DECODER, body, lambda: prepare_body(Cart, body, "cart"), "cart"
        )
        actions = cart_actions(cart.line_items)
        updated = msgspec.structs.replace(
            cart, line_items=apply_cart_actions(cart.line_items, actions)
        )
        self.state.carts[cart.cart_id] = CartRecord(
            cart=updated, actions=actions, updated_at=datetime.now(UTC)
        )

        reply = CartActions(
            cart_id=cart.cart_id, user_session_id=cart.user_session_id, actions=actions
        )
        return Reply(202, ENCODER.encode(reply))

    def notify_cart_checkout(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Remember which order a cart became, and echo the notification."""
        checkout: CartCheckout = decode_json(
            _CART_CHECKOUT_DECODER,
            body,
            lambda: prepare_body(CartCheckout, body, "cart checkout"),
            "cart checkout",
        )
        self.state.cart_checkouts[checkout.cart_id] = checkout.order_id

        accepted = AcceptedCartCheckout(
            cart_id=checkout.cart_id,
            user_session_id=checkout.user_session_id,
            order_id=checkout.order_id,
        )
        return Reply(202, ENCODER.encode(accepted))

    def get_checkout(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Return the plans still available for an order and a link to the sandbox's page."""
        query = parse_query(request, operation.query_model)
        checkout_type: str = query.checkout_type.value
        order = self._placed_order(query.order_id)

        plans = available_plans(order, self.plans)
        if not plans:
            raise APIError(
                404,
                "no_available_plans",
                f"No plan is available for order_id {query.order_id!r}: every product line is "
                "protected, cancelled, refunded or outside the sandbox catalogue.",
            )

        link = f"{self.base_url}/checkout-links/{checkout_type}/{quote(query.order_id, safe='')}"
        checkout = Checkout(
            checkout_type=checkout_type,
            order_id=query.order_id,
            available_plans=plans,
            assist_link=link if checkout_type == "assist" else msgspec.UNSET,
            redirect_link=link if checkout_type == "redirect" else msgspec.UNSET,
        )
        return Reply(200, ENCODER.encode(checkout))

    def not_implemented(
        self, operation: Operation, request: web.Request, body: bytes, idempotency_key: str | None
    ) -> Reply:
        """Raise a 501 error for an operation of the spec that the sandbox has no handler for."""
        raise APIError(
            501,
            "not_implemented",
            f"The sandbox does not emulate {operation.operation_id} "
            f"({operation.method} {operation.path}) yet.",
        )

    def checkout_link_page(self, request: web.Request) -> Reply:
        """Render the small HTML page behind an Assist or Redirect link."""
        checkout_type = request.match_info["checkout_type"]
        order_id = request.match_info["order_id"]
        order = self.state.orders.get(order_id)
        if checkout_type not in ("assist", "redirect") or order is None or order.placed is None:
            page = "<!doctype html><title>Not found</title><p>No such sandbox checkout.</p>\n"
            return Reply(404, page.encode(), content_type=HTML)

        items = "".join(
            f"<li>{html.escape(plan.line_item_id)}: {plan.plan_price_amount / 100:.2f} "
            f"{html.escape(plan.plan_price_currency.upper())}</li>"
            for plan in available_plans(order, self.plans)
        )
        title = f"Hakuna sandbox {checkout_type} checkout"
        page = (
            f"<!doctype html><title>{title}</title><h1>{title}</h1>"
            f"<p>Order {html.escape(order_id)}</p><ul>{items}</ul>\n"
        )
        return Reply(200, page.encode(), content_type=HTML)

    def _placed_order(self, order_id: str) -> OrderState:
        order = self.state.orders.get(order_id)
        if order is None or order.placed is None:
            raise APIError(
                404,
                "not_found",
                f"No order_placed event was received for order_id {order_id!r}; publish one first.",
            )
        return order
