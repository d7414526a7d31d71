"""The client against the local sandbox over loopback: every operation and event type."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hakuna_async import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HakunaClient,
    NotFoundError,
    RequestValidationError,
    RetryPolicy,
)
from hakuna_async.models import (
    LineItemQuantity,
    LineItemsCancelled,
    LineItemsCancelledPayload,
    LineItemsFulfilled,
    LineItemsFulfilledPayload,
    LineItemsRefunded,
    LineItemsRefundedPayload,
    OrderCancelled,
    OrderCancelledPayload,
)
from hakuna_async.testing import Drop, Respond, SandboxServer

FAST_RETRIES = RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
AT = "2022-02-21T08:00:00Z"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[HakunaClient]:
    async with HakunaClient(
        sandbox.api_key, base_url=sandbox.url, retry_policy=FAST_RETRIES
    ) as hakuna:
        yield hakuna


def lifecycle_events() -> list[Any]:
    from datetime import datetime

    moment = datetime.fromisoformat(AT)
    lines = [LineItemQuantity(id="line-item-id-3311", quantity=1)]
    return [
        LineItemsFulfilled(
            payload=LineItemsFulfilledPayload(
                order_id="ord-123", fulfilled_at=moment, line_items=lines
            )
        ),
        LineItemsRefunded(
            payload=LineItemsRefundedPayload(
                order_id="ord-123", refunded_at=moment, line_items=lines
            )
        ),
        LineItemsCancelled(
            payload=LineItemsCancelledPayload(
                order_id="ord-123", cancelled_at=moment, line_items=lines
            )
        ),
        OrderCancelled(payload=OrderCancelledPayload(order_id="ord-123", cancelled_at=moment)),
    ]


async def test_redoc_order_pairs_lines(client: HakunaClient, redoc_order: Any) -> None:
    accepted = await client.events.publish(redoc_order)

    connections = await client.orders.plan_connections("ord-123")

    assert accepted.event_id.startswith("evt-")
    pairs = {c.product_line_item_id: c.plan_line_item_id for c in connections.plan_connections}
    assert pairs == {"line-item-id-3311": "line-item-id-3322", "line-item-id-4411": None}


async def test_every_event_type_is_stored(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    await client.events.publish(redoc_order)
    for event in lifecycle_events():
        await client.events.publish(event)

    counts = sandbox.event_count_by_type()

    assert counts == {
        "order_placed": 1,
        "line_items_fulfilled": 1,
        "line_items_refunded": 1,
        "line_items_cancelled": 1,
        "order_cancelled": 1,
    }


async def test_invalid_event_never_reaches_server(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    zero = copy.deepcopy(redoc_order)
    zero["payload"]["line_items"][0]["quantity"] = 0
    euro = copy.deepcopy(redoc_order)
    euro["payload"]["order_currency"] = "EURO"

    with pytest.raises(RequestValidationError) as zero_error:
        await client.events.publish(zero)
    with pytest.raises(RequestValidationError) as euro_error:
        await client.events.publish(euro)

    assert zero_error.value.field == "$.payload.line_items[0].quantity"
    assert euro_error.value.field == "$.payload.order_currency"
    assert "'EURO'" in str(euro_error.value)
    assert len(sandbox.requests) == 0


async def test_wrong_key_raises_authentication_error(
    sandbox: SandboxServer, redoc_order: Any
) -> None:
    async with HakunaClient("sk_wrong", base_url=sandbox.url) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.status == 401
    assert raised.value.error_code == "unauthorized"
    assert len(sandbox.requests) == 1


async def test_server_validation_error_is_mapped(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    sandbox.faults.add(
        Respond(
            400,
            body={
                "error": {
                    "error_code": "validation_failed",
                    "validation_errors": [{"field": "$.payload.order_id", "message": "unknown"}],
                }
            },
        ),
        path="/events",
    )

    with pytest.raises(BadRequestError) as raised:
        await client.events.publish(lifecycle_events()[3])

    assert raised.value.error_code == "validation_failed"
    assert raised.value.validation_errors[0]["field"] == "$.payload.order_id"


async def test_caller_key_replays_same_event(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    first = await client.events.publish(redoc_order, idempotency_key="order-ord-123-placed")
    second = await client.events.publish(redoc_order, idempotency_key="order-ord-123-placed")

    assert first.event_id == second.event_id
    assert len(sandbox.events) == 1


async def test_reused_key_with_other_body_conflicts(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    await client.events.publish(redoc_order, idempotency_key="k-1")
    redoc_order["payload"]["order_id"] = "ord-124"

    with pytest.raises(ConflictError) as raised:
        await client.events.publish(redoc_order, idempotency_key="k-1")

    assert raised.value.status == 409
    assert len(sandbox.requests) == 2


async def test_lost_response_is_stored_once(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    sandbox.faults.add(Drop(after_handling=True), path="/events")

    accepted = await client.events.publish(redoc_order)

    keys = [request.idempotency_key for request in sandbox.requests]
    bodies = {request.body_sha256 for request in sandbox.requests}
    assert len(sandbox.events) == 1
    assert sandbox.events[0].event_id == accepted.event_id
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(bodies) == 1


async def test_503_then_success(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    sandbox.faults.add(Respond(503, headers={"Retry-After": "0"}), path="/events", times=2)

    accepted = await client.events.publish(redoc_order)

    assert accepted.event_id == sandbox.events[0].event_id
    assert [r.status for r in sandbox.requests] == [503, 503, 202]
    assert client.stats.retries == 2


async def test_unknown_order_is_not_found(client: HakunaClient) -> None:
    with pytest.raises(NotFoundError) as raised:
        await client.orders.plan_connections("ord-missing")

    assert raised.value.status == 404
    assert raised.value.path == "/orders/ord-missing/plan-connections"


async def test_match_finds_published_plan(client: HakunaClient) -> None:
    match = await client.plans.match(
        product_id="prd-iphone14",
        product_brand="Apple",
        product_title="iPhone 14",
        product_category="smartphones",
        product_price_amount=112900,
        product_price_currency="eur",
        user_session_id="f4f78677-31ea-4fea-9d91-5fdd91119aa8",
    )

    assert match.product.id == "prd-iphone14"
    assert match.product.price_amount == 112900
    first = match.plans[0]
    assert first.merchant_product_id == "pl-prd-hakuna"
    assert first.price_amount == 8464
    assert first.product_reference == "prd-iphone14"


async def test_match_without_plan_is_not_found(client: HakunaClient) -> None:
    with pytest.raises(NotFoundError):
        await client.plans.match(
            product_id="prd-cable",
            product_brand="Anker",
            product_title="USB-C Kabel",
            product_category="cables",
            product_price_amount=1299,
            product_price_currency="eur",
            user_session_id="s-1",
        )


async def test_match_rejects_uppercase_currency(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    with pytest.raises(RequestValidationError) as raised:
        await client.plans.match(
            product_id="p",
            product_brand="b",
            product_title="t",
            product_category="smartphones",
            product_price_amount=100,
            product_price_currency="EUR",
            user_session_id="s",
        )

    assert raised.value.field == "$.product_price_currency"
    assert len(sandbox.requests) == 0


async def test_cart_update_matches_redoc(client: HakunaClient, spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/carts"]["post"]
    cart = operation["requestBody"]["content"]["application/json"]["example"]
    expected = operation["responses"]["202"]["content"]["application/json"]["example"]

    result = await client.carts.update(cart)
    connections = await client.carts.plan_connections("cart-123")

    assert [
        {
            "type": a.type,
            "payload": {
                "line_item_id": a.payload.line_item_id,
                "line_item_quantity": a.payload.line_item_quantity,
            },
        }
        for a in result.actions
    ] == expected["actions"]
    pairs = {c.product_line_item_id: c.plan_line_item_id for c in connections.plan_connections}
    assert pairs["line-item-id-3311"] == "line-item-id-3322"
    assert pairs["line-item-id-4411"] is None


async def test_cart_orphan_protection_removed(client: HakunaClient) -> None:
    cart = {
        "cart_id": "cart-9",
        "user_session_id": "s-9",
        "cart_currency": "eur",
        "line_items": [
            {
                "id": "li-p",
                "quantity": 1,
                "price_amount": 8464,
                "product_id": "pl-prd-hakuna",
                "product_title": "Hakuna.care protection",
                "product_brand": "Hakuna",
                "custom_properties": {"product_reference": "prd-gone"},
            }
        ],
    }

    result = await client.carts.update(cart)

    assert len(result.actions) == 1
    assert result.actions[0].payload.line_item_id == "li-p"
    assert result.actions[0].payload.line_item_quantity == 0


async def test_unknown_cart_is_not_found(client: HakunaClient) -> None:
    with pytest.raises(NotFoundError):
        await client.carts.plan_connections("cart-missing")


async def test_cart_checkout_is_echoed(client: HakunaClient, sandbox: SandboxServer) -> None:
    result = await client.carts.checkout(
        cart_id="cart-123", user_session_id="s-1", order_id="ord-123"
    )

    assert (result.cart_id, result.order_id) == ("cart-123", "ord-123")
    assert sandbox.cart_checkouts["cart-123"] == "ord-123"


async def test_checkout_links_for_unprotected_lines(client: HakunaClient, redoc_order: Any) -> None:
    redoc_order["payload"]["line_items"] = [
        item for item in redoc_order["payload"]["line_items"] if item["id"] != "line-item-id-3322"
    ]
    await client.events.publish(redoc_order)

    assist = await client.checkouts.retrieve(order_id="ord-123", checkout_type="assist")
    redirect = await client.checkouts.retrieve(order_id="ord-123", checkout_type="redirect")

    assert assist.checkout_type == "assist"
    assert isinstance(assist.assist_link, str)
    assert isinstance(redirect.redirect_link, str)
    assert {plan.line_item_id for plan in assist.available_plans} == {"line-item-id-3311"}
    assert all(plan.country == "de" for plan in assist.available_plans)


async def test_checkout_of_protected_order_is_not_found(
    client: HakunaClient, redoc_order: Any
) -> None:
    await client.events.publish(redoc_order)

    with pytest.raises(NotFoundError):
        await client.checkouts.retrieve(order_id="ord-123", checkout_type="redirect")


async def test_checkout_of_unknown_order_is_not_found(client: HakunaClient) -> None:
    with pytest.raises(NotFoundError):
        await client.checkouts.retrieve(order_id="ord-missing", checkout_type="assist")


async def test_publish_many_one_result_per_event(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    from hakuna_async.testing.sample import generate_events

    events: list[Any] = list(generate_events(300, seed=7))
    bad_index = 123
    events[bad_index] = {"type": "order_placed", "payload": {"order_id": ""}}

    results = [r async for r in client.events.publish_many(events, concurrency=8)]

    indexes = sorted(result.index for result in results)
    failures = [result for result in results if not result.ok]
    assert indexes == list(range(300))
    assert len(failures) == 1
    assert failures[0].index == bad_index
    assert isinstance(failures[0].error, RequestValidationError)
    assert len(sandbox.events) == 299


async def test_publish_many_reads_async_iterables(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    from hakuna_async.testing.sample import generate_events

    async def stream() -> AsyncIterator[Any]:
        for event in generate_events(50, seed=3):
            yield event

    results = [r async for r in client.events.publish_many(stream(), concurrency=4)]

    assert len(results) == 50
    assert all(result.ok for result in results)
    assert {r.event_id for r in results} == {e.event_id for e in sandbox.events}


async def test_publish_many_early_exit_cancels(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    from hakuna_async.testing.sample import generate_events

    seen = 0
    async for _ in client.events.publish_many(generate_events(10_000, seed=5), concurrency=4):
        seen += 1
        if seen == 20:
            break

    assert seen == 20
    assert len(sandbox.events) < 100


async def test_quickstart_example_runs() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
    spec = importlib.util.spec_from_file_location("quickstart", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    pairs = await module.main()

    assert pairs == [("li-1", "li-2")]


async def test_publish_many_aclose_stops_batch(
    client: HakunaClient, sandbox: SandboxServer
) -> None:
    from hakuna_async.testing.sample import generate_events

    batch = client.events.publish_many(generate_events(5000, seed=6), concurrency=4)
    for _ in range(10):
        # Each result is taken by its own task, as a sync facade or a framework would.
        await asyncio.ensure_future(anext(batch))

    await asyncio.wait_for(batch.aclose(), timeout=5)

    stored = len(sandbox.events)
    await asyncio.sleep(0.1)
    assert stored < 100
    assert len(sandbox.events) == stored


async def test_misspelt_field_is_rejected(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    protection = redoc_order["payload"]["line_items"][1]
    protection["custom_propertes"] = protection.pop("custom_properties")

    with pytest.raises(RequestValidationError) as raised:
        await client.events.publish(redoc_order)

    assert raised.value.field == "$.payload.line_items[1].custom_propertes"
    assert "spelling" in str(raised.value)
    assert len(sandbox.requests) == 0


async def test_custom_properties_accept_merchant_keys(
    client: HakunaClient, sandbox: SandboxServer, redoc_order: Any
) -> None:
    redoc_order["payload"]["line_items"][1]["custom_properties"]["gift_wrap"] = "yes"

    await client.events.publish(redoc_order)

    assert len(sandbox.events) == 1


async def test_match_rejects_float_amount(client: HakunaClient, sandbox: SandboxServer) -> None:
    with pytest.raises(RequestValidationError) as raised:
        await client.plans.match(
            product_id="p",
            product_brand="b",
            product_title="t",
            product_category="smartphones",
            product_price_amount=999.0,  # type: ignore[arg-type]
            product_price_currency="eur",
            user_session_id="s",
        )

    assert raised.value.field == "$.product_price_amount"
    assert "cents" in str(raised.value)
    assert "client.plans.match" in str(raised.value)
    assert len(sandbox.requests) == 0


async def test_checkout_type_error_lists_values(client: HakunaClient) -> None:
    with pytest.raises(RequestValidationError) as raised:
        await client.checkouts.retrieve(order_id="o-1", checkout_type="email")  # type: ignore[arg-type]

    assert "expected one of: assist, redirect" in str(raised.value)


async def test_uppercase_currency_error_hints_lowercase(
    client: HakunaClient, redoc_order: Any
) -> None:
    redoc_order["payload"]["order_currency"] = "EUR"

    with pytest.raises(RequestValidationError) as raised:
        await client.events.publish(redoc_order)

    assert "lowercase ISO 4217" in str(raised.value)


async def test_no_match_error_explains_itself(client: HakunaClient) -> None:
    with pytest.raises(NotFoundError) as raised:
        await client.plans.match(
            product_id="prd-cable",
            product_brand="Anker",
            product_title="USB-C Kabel",
            product_category="cables",
            product_price_amount=1299,
            product_price_currency="eur",
            user_session_id="s-1",
        )

    assert raised.value.error_code == "no_match"
    assert "No protection plan matches this product" in str(raised.value)
    assert "order_placed" not in str(raised.value)
