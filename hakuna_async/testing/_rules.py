"""The sandbox's business rules: plan connections, cart actions and available plans.

Hakuna documents the outcomes only by example, so these rules are this project's
reading of those examples. A protection line is a line item whose
``custom_properties.product_reference`` is set to the ``product_id`` of the product
it protects, and one plan covers one unit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import msgspec

from ..models import AvailablePlan, CartAction, CartActionPayload, LineItem, PlanConnection
from ._catalogue import CatalogPlan, find_plans
from ._state import OrderState

__all__ = [
    "apply_cart_actions",
    "available_plans",
    "cart_actions",
    "plan_connections",
    "product_reference",
]

UPDATE_LINE_ITEM = "update_line_item"


def product_reference(item: LineItem) -> str | None:
    """Return the product_id that a protection line protects, or ``None`` for a product line."""
    properties = item.custom_properties
    if properties is msgspec.UNSET:
        return None
    reference = properties.product_reference
    return None if reference is msgspec.UNSET else reference


def plan_connections(line_items: Sequence[LineItem]) -> list[PlanConnection]:
    """Pair each product line with the protection line that protects it.

    Every product line gets one entry, and protection lines get none of their own.
    Protection lines for a product_id are handed out in line order to the product
    lines with that product_id, one each. So when a product is split over several
    lines and has fewer protection lines, the later product lines get ``None``.
    """
    protection_ids: dict[str, deque[str]] = {}
    for item in line_items:
        reference = product_reference(item)
        if reference is not None:
            protection_ids.setdefault(reference, deque()).append(item.id)

    connections: list[PlanConnection] = []
    for item in line_items:
        if product_reference(item) is not None:
            continue
        queue = protection_ids.get(item.product_id)
        plan_line_item_id = queue.popleft() if queue else None
        connections.append(
            PlanConnection(product_line_item_id=item.id, plan_line_item_id=plan_line_item_id)
        )
    return connections


def cart_actions(line_items: Sequence[LineItem]) -> list[CartAction]:
    """Return the quantity updates that make a cart's protection match its products.

    A protection line without a product line for its product_reference is removed
    (quantity 0). Otherwise the first protection line for a product gets the
    product's total quantity over all its lines, and further protection lines for the
    same product are removed. Lines already at their target get no action.
    """
    product_units: dict[str, int] = {}
    for item in line_items:
        if product_reference(item) is None:
            product_units[item.product_id] = product_units.get(item.product_id, 0) + item.quantity

    actions: list[CartAction] = []
    covered: set[str] = set()
    for item in line_items:
        reference = product_reference(item)
        if reference is None:
            continue

        if reference in product_units and reference not in covered:
            target = product_units[reference]
            covered.add(reference)
        else:
            target = 0

        if item.quantity != target:
            actions.append(
                CartAction(
                    type=UPDATE_LINE_ITEM,
                    payload=CartActionPayload(line_item_id=item.id, line_item_quantity=target),
                )
            )
    return actions


def apply_cart_actions(
    line_items: Sequence[LineItem], actions: Sequence[CartAction]
) -> list[LineItem]:
    """Return the line items as they are after the shop applied ``actions``.

    A quantity of 0 removes the line.
    """
    quantities: dict[str, int] = {}
    for action in actions:
        payload = action.payload
        if (
            action.type == UPDATE_LINE_ITEM
            and isinstance(payload.line_item_id, str)
            and isinstance(payload.line_item_quantity, int)
        ):
            quantities[payload.line_item_id] = payload.line_item_quantity

    updated: list[LineItem] = []
    for item in line_items:
        quantity = quantities.get(item.id, item.quantity)
        if quantity == 0:
            continue
        if quantity != item.quantity:
            item = msgspec.structs.replace(item, quantity=quantity)
        updated.append(item)
    return updated


def available_plans(order: OrderState, plans: tuple[CatalogPlan, ...]) -> list[AvailablePlan]:
    """Return the plans that Hakuna could still sell for an order's unprotected products.

    A product line qualifies when no protection line is paired with it (see
    ``plan_connections``) and some of its units are neither cancelled nor refunded.
    Each catalogue plan matching its category, unit price and the order currency
    gives one entry, in catalogue order. ``price_amount`` is read as the unit price,
    as in Hakuna's cart example (2 iPhones at 112900 each).
    """
    placed = order.placed
    if placed is None:
        return []

    items_by_id = {item.id: item for item in placed.line_items}
    country = placed.customer_billing_address.country
    currency = placed.order_currency

    available: list[AvailablePlan] = []
    for connection in plan_connections(placed.line_items):
        if connection.plan_line_item_id is not None:
            continue

        item = items_by_id[connection.product_line_item_id]
        if order.remaining_units(item.id, item.quantity) <= 0:
            continue

        category = None if item.product_category is msgspec.UNSET else item.product_category
        for plan in find_plans(plans, category, item.price_amount, currency):
            available.append(
                AvailablePlan(
                    line_item_id=item.id,
                    product_reference=item.product_id,
                    plan_price_amount=plan.price_amount,
                    plan_price_currency=plan.currency,
                    country=country,
                )
            )
    return available
