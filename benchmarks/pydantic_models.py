"""Pydantic v2 models equivalent to the SDK's msgspec Structs for the five order events.

They are written by hand from ``openapi/hakuna-v2.0.yaml`` with the same fields and
constraints as ``hakuna_async.models`` (patterns, minimums, minimum lengths, timestamps
with an offset, the ``type`` field as the discriminator). ``strict=True`` matches
msgspec, which does not coerce a string into a number. Fields that msgspec leaves
``UNSET`` are ``None`` here and are left out when encoding (``exclude_none=True``), so
both libraries encode an event into the same bytes (``benchmarks.micro`` checks this).

``rule_errors`` repeats the cross-field rules that the SDK checks by hand in
``hakuna_async._validation`` and that neither library can express in a schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "EVENT_ADAPTER",
    "AcceptedEvent",
    "OrderPlaced",
    "rule_errors",
]

Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$")]
Country = Annotated[str, Field(pattern=r"^[a-z]{2}$")]
Amount = Annotated[int, Field(ge=0)]
Quantity = Annotated[int, Field(ge=1)]
Identifier = Annotated[str, Field(min_length=1)]
NonEmpty = Annotated[str, Field(min_length=1)]
Email = Annotated[str, Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True)


class Customer(_Model):
    first_name: NonEmpty
    last_name: NonEmpty
    email: Email


class BillingAddress(_Model):
    address_line_1: NonEmpty
    city: NonEmpty
    country: Country
    zip: NonEmpty
    address_line_2: str | None = None


class CustomProperties(_Model):
    product_reference: Identifier | None = None


class LineItem(_Model):
    id: Identifier
    quantity: Quantity
    price_amount: Amount
    product_id: Identifier
    product_title: NonEmpty
    product_brand: NonEmpty
    product_category: NonEmpty | None = None
    custom_properties: CustomProperties | None = None


class LineItemQuantity(_Model):
    id: Identifier
    quantity: Quantity


class OrderPlacedPayload(_Model):
    order_id: Identifier
    placed_at: AwareDatetime
    order_currency: Currency
    customer: Customer
    customer_billing_address: BillingAddress
    line_items: Annotated[list[LineItem], Field(min_length=1)]
    cart_id: Identifier | None = None


class LineItemsFulfilledPayload(_Model):
    order_id: Identifier
    fulfilled_at: AwareDatetime
    line_items: Annotated[list[LineItemQuantity], Field(min_length=1)]


class LineItemsRefundedPayload(_Model):
    order_id: Identifier
    refunded_at: AwareDatetime
    line_items: Annotated[list[LineItemQuantity], Field(min_length=1)]


class LineItemsCancelledPayload(_Model):
    order_id: Identifier
    cancelled_at: AwareDatetime
    line_items: Annotated[list[LineItemQuantity], Field(min_length=1)]


class OrderCancelledPayload(_Model):
    order_id: Identifier
    cancelled_at: AwareDatetime


class OrderPlaced(_Model):
    type: Literal["order_placed"] = "order_placed"
    payload: OrderPlacedPayload


class LineItemsFulfilled(_Model):
    type: Literal["line_items_fulfilled"] = "line_items_fulfilled"
    payload: LineItemsFulfilledPayload


class LineItemsRefunded(_Model):
    type: Literal["line_items_refunded"] = "line_items_refunded"
    payload: LineItemsRefundedPayload


class LineItemsCancelled(_Model):
    type: Literal["line_items_cancelled"] = "line_items_cancelled"
    payload: LineItemsCancelledPayload


class OrderCancelled(_Model):
    type: Literal["order_cancelled"] = "order_cancelled"
    payload: OrderCancelledPayload


Event = Annotated[
    OrderPlaced | LineItemsFulfilled | LineItemsRefunded | LineItemsCancelled | OrderCancelled,
    Field(discriminator="type"),
]

#: Validates and encodes any of the five events, like ``msgspec.json.Decoder(Event)``.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class AcceptedEvent(BaseModel):
    """Hakuna's receipt for a published event; lenient like the SDK's response models."""

    event_id: str


def rule_errors(event: BaseModel) -> list[str]:
    """Check an order's protection lines against its product lines.

    A protection line refers to the ``product_id`` of a product line of the same
    order, and covers at most as many units as that line has. Line item ids are
    unique. Return one message per broken rule.
    """
    if not isinstance(event, OrderPlaced):
        return []

    errors: list[str] = []
    seen_ids: set[str] = set()
    product_units: dict[str, int] = {}
    protected_units: dict[str, int] = {}
    protections: list[tuple[int, str, int]] = []

    for index, item in enumerate(event.payload.line_items):
        if item.id in seen_ids:
            errors.append(f"line_items[{index}].id: duplicate id {item.id!r}")
        seen_ids.add(item.id)
        reference = (
            None if item.custom_properties is None else item.custom_properties.product_reference
        )
        if reference is None:
            product_units[item.product_id] = product_units.get(item.product_id, 0) + item.quantity
        else:
            protections.append((index, reference, item.quantity))

    for index, reference, quantity in protections:
        if reference not in product_units:
            errors.append(f"line_items[{index}]: no product line has product_id {reference!r}")
            continue
        protected_units[reference] = protected_units.get(reference, 0) + quantity
        if protected_units[reference] > product_units[reference]:
            errors.append(f"line_items[{index}].quantity: more protection units than products")
    return errors
