"""The OpenAPI document, the code generated from it, and the models' behaviour."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from hakuna_async.models import (
    EVENT_TYPES,
    OPERATIONS,
    CartActions,
    Checkout,
    Event,
    LineItemsFulfilled,
    OrderPlaced,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "openapi" / "hakuna-v2.0.yaml"

INFERRED_PATHS = {
    "/orders/{order_id}/plan-connections",
    "/plans/match",
    "/carts/{cart_id}/plan-connections",
    "/carts",
    "/carts/checkout",
}
INFERRED_EVENTS = {
    "LineItemsFulfilled",
    "LineItemsRefunded",
    "LineItemsCancelled",
    "OrderCancelled",
}


def test_spec_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    validate(spec)

    assert spec["openapi"].startswith("3.1")


def test_spec_has_both_servers(spec: dict[str, Any]) -> None:
    urls = [server["url"] for server in spec["servers"]]

    assert urls == ["https://api.hellohakuna.com/", "https://api.hellohakuna.com/sandbox/"]


def test_spec_has_seven_operations(spec: dict[str, Any]) -> None:
    operation_ids = {
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in ("get", "post")
    }

    assert len(operation_ids) == 7
    assert set(OPERATIONS) == operation_ids


def test_spec_marks_inferred_paths(spec: dict[str, Any]) -> None:
    for path in INFERRED_PATHS:
        assert spec["paths"][path].get("x-hakuna-confidence") == "inferred", path
    assert "x-hakuna-confidence" not in spec["paths"]["/events"]
    assert "x-hakuna-confidence" not in spec["paths"]["/checkouts"]


def test_spec_marks_inferred_event_types(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]

    for name in INFERRED_EVENTS:
        assert schemas[name].get("x-hakuna-confidence") == "inferred", name
    assert "x-hakuna-confidence" not in schemas["OrderPlaced"]


def test_spec_marks_inferred_status_codes(spec: dict[str, Any]) -> None:
    for path in ("/events", "/carts", "/carts/checkout"):
        accepted = spec["paths"][path]["post"]["responses"]["202"]
        assert accepted.get("x-hakuna-confidence") == "inferred", path
    conflict = spec["components"]["responses"]["IdempotencyConflict"]
    assert conflict.get("x-hakuna-confidence") == "inferred"


def test_spec_sends_version_on_every_operation(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        for method in ("get", "post"):
            if method in item:
                references = [p.get("$ref") for p in item[method]["parameters"]]
                assert "#/components/parameters/HakunaVersion" in references, (method, path)


def test_spec_posts_take_idempotency_key(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        if "post" in item:
            references = [p.get("$ref") for p in item["post"]["parameters"]]
            assert "#/components/parameters/IdempotencyKey" in references, path


def test_event_union_decodes_every_type(redoc_order: dict[str, Any]) -> None:
    decoder = msgspec.json.Decoder(Event)
    fulfilled = {
        "type": "line_items_fulfilled",
        "payload": {
            "order_id": "ord-123",
            "fulfilled_at": "2022-02-21T10:00:00Z",
            "line_items": [{"id": "line-item-id-3311", "quantity": 1}],
        },
    }

    placed = decoder.decode(msgspec.json.encode(redoc_order))
    shipped = decoder.decode(msgspec.json.encode(fulfilled))

    assert isinstance(placed, OrderPlaced)
    assert isinstance(shipped, LineItemsFulfilled)
    assert isinstance(placed.payload.placed_at, datetime)
    assert placed.payload.placed_at.tzinfo is not None
    assert {cls.__struct_config__.tag for cls in EVENT_TYPES} == {
        "order_placed",
        "line_items_fulfilled",
        "line_items_refunded",
        "line_items_cancelled",
        "order_cancelled",
    }


def test_event_round_trip_is_identical(redoc_order: dict[str, Any]) -> None:
    decoder = msgspec.json.Decoder(Event)

    event = decoder.decode(msgspec.json.encode(redoc_order))

    assert msgspec.to_builtins(event)["payload"]["line_items"] == [
        {k: v for k, v in item.items()} for item in redoc_order["payload"]["line_items"]
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["payload"].update(order_currency="EUR"), "$.payload.order_currency"),
        (
            lambda e: e["payload"]["line_items"][0].update(quantity=0),
            "$.payload.line_items[0].quantity",
        ),
        (
            lambda e: e["payload"]["line_items"][0].update(price_amount=-1),
            "$.payload.line_items[0].price_amount",
        ),
        (
            lambda e: e["payload"]["line_items"][0].update(price_amount=10.5),
            "$.payload.line_items[0].price_amount",
        ),
        (
            lambda e: e["payload"]["customer_billing_address"].update(country="DE"),
            "$.payload.customer_billing_address.country",
        ),
        (lambda e: e["payload"].update(placed_at="2022-02-20T00:00:00"), "$.payload.placed_at"),
        (lambda e: e.update(type="order_shipped"), "$.type"),
    ],
)
def test_request_constraints_enforced_on_decode(
    redoc_order: dict[str, Any], change: Any, field: str
) -> None:
    change(redoc_order)

    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(msgspec.json.encode(redoc_order), type=Event)

    assert str(raised.value).endswith(f"`{field}`")


def test_responses_accept_unknown_fields_and_values() -> None:
    body = {
        "cart_id": "c",
        "actions": [{"type": "add_line_item", "payload": {"sku": "x"}, "extra": 1}],
        "new_top_level": True,
    }
    checkout = {"checkout_type": "email", "order_id": "o", "available_plans": []}

    actions = msgspec.json.decode(msgspec.json.encode(body), type=CartActions)
    decoded_checkout = msgspec.json.decode(msgspec.json.encode(checkout), type=Checkout)

    assert actions.actions[0].type == "add_line_item"
    assert decoded_checkout.checkout_type == "email"


def test_generated_files_are_marked() -> None:
    for name in ("_schemas.py", "_operations.py"):
        first_line = (ROOT / "hakuna_async" / "models" / name).read_text().splitlines()[0]
        assert first_line.startswith("# Generated by codegen/generate.py"), name
        assert "Do not edit" in first_line


def _load_codegen() -> Any:
    spec = importlib.util.spec_from_file_location(
        "codegen_generate", ROOT / "codegen" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["codegen_generate"] = module
    spec.loader.exec_module(module)
    return module


def test_codegen_is_reproducible(tmp_path: Path) -> None:
    codegen = _load_codegen()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    codegen.generate(first)
    codegen.generate(second)

    for name in ("_schemas.py", "_operations.py"):
        produced = (first / name).read_bytes()
        assert produced == (second / name).read_bytes(), name
        assert produced == (ROOT / "hakuna_async" / "models" / name).read_bytes(), name


def test_operations_come_from_spec(spec: dict[str, Any]) -> None:
    for operation in OPERATIONS.values():
        declared = spec["paths"][operation.path][operation.method.lower()]
        assert declared["operationId"] == operation.operation_id
    assert SPEC_PATH.exists()
