"""Validate request bodies before they leave the process.

The generated Structs carry the spec's constraints (patterns, minimums, required
fields), but msgspec enforces them only when decoding. So a body is validated by
encoding it once and decoding the bytes into the model: the same bytes are then sent,
and an invalid value is reported with its JSON path, for example
``$.payload.line_items[0].quantity``. Rules that span several fields (a protection
line must refer to a product of the same order) are checked here by hand. The sandbox
server applies the same functions to the requests it receives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ._errors import FieldError, RequestValidationError
from .models import (
    EVENT_TYPES,
    Cart,
    CartCheckout,
    Event,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
)

__all__ = [
    "event_rule_errors",
    "field_error_from",
    "line_item_rule_errors",
    "prepare_body",
    "prepare_event",
]

_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(Event)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {
    Event: _event_decoder,
    Cart: msgspec.json.Decoder(Cart),
    CartCheckout: msgspec.json.Decoder(CartCheckout),
}

# msgspec reports "Expected `int` >= 1 - at `$.payload.line_items[0].quantity`".
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`$")
# The spec's patterns for codes, and what to send instead.
_PATTERN_HINTS = {
    "'^[a-z]{3}$'": "use a lowercase ISO 4217 currency code such as 'eur'",
    "'^[a-z]{2}$'": "use a lowercase ISO 3166-1 alpha-2 country code such as 'de'",
}
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]+)`$")
_EVENT_TAGS = tuple(str(event_type.__struct_config__.tag) for event_type in EVENT_TYPES)


def field_error_from(error: msgspec.ValidationError | msgspec.DecodeError) -> FieldError:
    """Split a msgspec error message into the JSON path and the reason.

    A missing field is reported at the field's own path, not at its parent object.
    """
    match = _AT_PATH.match(str(error))
    if match is None:  # pragma: no cover - the pattern matches any string
        return FieldError("$", str(error))
    path, message = match["path"] or "$", match["message"]

    missing = _MISSING_FIELD.match(message)
    if missing:
        return FieldError(f"{path}.{missing[1]}", "required field is missing")
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        return FieldError(
            f"{path}.{unknown[1]}", "unknown field; check its spelling against the model"
        )
    if path == "$.type" and message.startswith("Invalid value"):
        return FieldError(path, f"{message}; expected one of: {', '.join(_EVENT_TAGS)}")
    for pattern, hint in _PATTERN_HINTS.items():
        if pattern in message:
            message += f"; {hint}"
    return FieldError(path, message)


def line_item_rule_errors(line_items: list[LineItem], prefix: str) -> list[FieldError]:
    """Check the protection rules of an order's line items.

    A protection line sets ``custom_properties.product_reference`` to the
    ``product_id`` of a product line in the same order, and one plan covers one unit:
    the protection units for a product must not exceed its quantity. Line item ids
    must be unique.
    """
    errors: list[FieldError] = []
    seen_ids: set[str] = set()
    product_units: dict[str, int] = {}
    protections: list[tuple[int, str, int]] = []

    for index, item in enumerate(line_items):
        if item.id in seen_ids:
            errors.append(
                FieldError(f"{prefix}[{index}].id", f"duplicate line item id {item.id!r}")
            )
        seen_ids.add(item.id)
        reference = _product_reference(item)
        if reference is None:
            product_units[item.product_id] = product_units.get(item.product_id, 0) + item.quantity
        else:
            protections.append((index, reference, item.quantity))

    protected_units: dict[str, int] = {}
    for index, reference, quantity in protections:
        field = f"{prefix}[{index}].custom_properties.product_reference"
        if reference not in product_units:
            errors.append(
                FieldError(
                    field,
                    f"protection refers to product_id {reference!r}, which no product line "
                    "of this order has; set it to the product_id of the protected line",
                )
            )
            continue
        protected_units[reference] = protected_units.get(reference, 0) + quantity
        if protected_units[reference] > product_units[reference]:
            errors.append(
                FieldError(
                    f"{prefix}[{index}].quantity",
                    f"{protected_units[reference]} protection units for product_id "
                    f"{reference!r}, which has only {product_units[reference]} units; "
                    "one plan covers one unit",
                )
            )
    return errors


def event_rule_errors(event: Any) -> list[FieldError]:
    """Check the rules of an event that the schema cannot express."""
    if isinstance(event, OrderPlaced):
        payload: OrderPlacedPayload = event.payload
        return line_item_rule_errors(payload.line_items, "$.payload.line_items")
    return []


def _product_reference(item: LineItem) -> str | None:
    properties = item.custom_properties
    if properties is msgspec.UNSET:
        return None
    reference = properties.product_reference
    return None if reference is msgspec.UNSET else reference


def prepare_event(event: Any) -> tuple[Any, bytes]:
    """Validate an event and return it with the exact bytes to send.

    ``event`` is one of the five event Structs, a mapping with the same shape, or the
    event's JSON as ``bytes`` or ``str``. Raise ``RequestValidationError`` naming the
    first invalid field.
    """
    if isinstance(event, EVENT_TYPES):
        body = _encoder.encode(event)
        decoded = _decode(Event, body, _event_label(event))
    elif isinstance(event, (bytes, bytearray, memoryview, str)):
        decoded = _decode(Event, event, "event")
        body = _encoder.encode(decoded)
    elif isinstance(event, Mapping):
        decoded = _decode(Event, _encode_mapping(event, "event"), "event")
        body = _encoder.encode(decoded)
    else:
        raise TypeError(
            f"Expected an event Struct (OrderPlaced, LineItemsFulfilled, LineItemsRefunded, "
            "LineItemsCancelled or OrderCancelled), a dict or JSON bytes, "
            f"got {type(event).__name__}."
        )

    rule_errors = event_rule_errors(decoded)
    if rule_errors:
        raise RequestValidationError(_event_label(decoded), rule_errors)
    return decoded, body


def prepare_body(model: Any, value: Any, what: str) -> bytes:
    """Validate a request body for ``model`` and return the bytes to send.

    ``value`` is a ``model`` instance, a mapping with the same shape, or JSON bytes.
    """
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return _encoder.encode(_decode(model, value, what))
    if isinstance(value, Mapping):
        decoded = _decode(model, _encode_mapping(value, what), what)
        return _encoder.encode(decoded)
    if not isinstance(value, model):
        raise TypeError(
            f"Expected a {model.__name__} or a dict for the {what}, got {type(value).__name__}."
        )
    body = _encoder.encode(value)
    _decode(model, body, what)
    return body


def _encode_mapping(value: Mapping[str, Any], what: str) -> bytes:
    try:
        return _encoder.encode(value)
    except (TypeError, msgspec.EncodeError) as error:
        raise RequestValidationError(what, [FieldError("$", str(error))]) from None


def _decode(model: Any, body: Any, what: str) -> Any:
    decoder = _decoders[model]
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        field_error = field_error_from(error)
        found = _value_at(body, field_error.field)
        if found is not _MISSING and repr(found) not in field_error.message:
            field_error = FieldError(field_error.field, f"{field_error.message} (value: {found!r})")
        raise RequestValidationError(what, [field_error]) from None


_MISSING = object()
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _value_at(body: Any, path: str) -> Any:
    """Find the invalid value itself, so that the error can show it (error path only)."""
    if path == "$":
        return _MISSING
    try:
        node: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _MISSING
    for name, index in _PATH_STEP.findall(path[1:]):
        if name and isinstance(node, dict) and name in node:
            node = node[name]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return _MISSING
    if isinstance(node, (dict, list)):
        return _MISSING
    return node


def _event_label(event: Any) -> str:
    tag = type(event).__struct_config__.tag
    return f"{tag} event"
