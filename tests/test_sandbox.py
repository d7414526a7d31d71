"""Tests of the local sandbox server, driven by a plain aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from hakuna_async.models import LineItemsRefunded, OrderPlaced
from hakuna_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_PLANS,
    CatalogPlan,
    Delay,
    Drop,
    RecordedRequest,
    Respond,
    SandboxServer,
    StallBody,
)

SPEC = yaml.safe_load(
    (Path(__file__).parent.parent / "openapi" / "hakuna-v2.0.yaml").read_text(encoding="utf-8")
)
REDOC_ORDER_PLACED: dict[str, Any] = SPEC["components"]["examples"]["OrderPlacedEvent"]["value"]
CART_OPERATION = SPEC["paths"]["/carts"]["post"]
SPEC_CART: dict[str, Any] = CART_OPERATION["requestBody"]["content"]["application/json"]["example"]
SPEC_CART_ACTIONS: dict[str, Any] = CART_OPERATION["responses"]["202"]["content"][
    "application/json"
]["example"]

MATCH_QUERY = {
    "product_id": "prd-iphone14",
    "product_brand": "Apple",
    "product_title": "iPhone 14",
    "product_category": "smartphones",
    "product_price_amount": "112900",
    "product_price_currency": "eur",
    "user_session_id": "f4f78677-31ea-4fea-9d91-5fdd91119aa8",
}


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest.fixture
async def session(sandbox: SandboxServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {sandbox.api_key}", "Hakuna-Version": "v2.0"}
    async with aiohttp.ClientSession(base_url=sandbox.url, headers=headers) as client:
        yield client


def product_line(
    line_id: str,
    product_id: str,
    *,
    quantity: int = 1,
    price_amount: int = 112_900,
    category: str | None = "smartphones",
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": line_id,
        "quantity": quantity,
        "price_amount": price_amount,
        "product_id": product_id,
        "product_title": f"Product {product_id}",
        "product_brand": "Brand",
    }
    if category is not None:
        line["product_category"] = category
    return line


def protection_line(line_id: str, reference: str, *, quantity: int = 1) -> dict[str, Any]:
    return {
        "id": line_id,
        "quantity": quantity,
        "price_amount": 8_464,
        "product_id": "pl-prd-hakuna",
        "product_title": "Hakuna.care protection",
        "product_brand": "Hakuna",
        "custom_properties": {"product_reference": reference},
    }


def order_placed(
    order_id: str, line_items: list[dict[str, Any]], *, country: str = "de"
) -> dict[str, Any]:
    event = copy.deepcopy(REDOC_ORDER_PLACED)
    event["payload"]["order_id"] = order_id
    event["payload"]["line_items"] = line_items
    event["payload"]["customer_billing_address"]["country"] = country
    return event


def line_items_event(event_type: str, order_id: str, lines: dict[str, int]) -> dict[str, Any]:
    time_field = {
        "line_items_fulfilled": "fulfilled_at",
        "line_items_refunded": "refunded_at",
        "line_items_cancelled": "cancelled_at",
    }[event_type]
    return {
        "type": event_type,
        "payload": {
            "order_id": order_id,
            time_field: "2024-05-01T10:00:00Z",
            "line_items": [{"id": line_id, "quantity": units} for line_id, units in lines.items()],
        },
    }


def cart(line_items: list[dict[str, Any]], *, cart_id: str = "cart-1") -> dict[str, Any]:
    return {
        "cart_id": cart_id,
        "user_session_id": "session-1",
        "cart_currency": "eur",
        "line_items": line_items,
    }


async def post_json(
    session: aiohttp.ClientSession,
    path: str,
    body: Any,
    *,
    key: str | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {} if key is None else {"Hakuna-Idempotency-Key": key}
    async with session.post(path, json=body, headers=headers) as response:
        return response.status, await response.json(), response


async def get_json(
    session: aiohttp.ClientSession, path: str, params: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.get(path, params=params) as response:
        return response.status, await response.json()


# Lifecycle.


async def test_lifecycle_url_names_bound_port(sandbox: SandboxServer) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert not sandbox.url.endswith("/")
    assert sandbox.port > 0
    assert sandbox.url.endswith(f":{sandbox.port}")


async def test_lifecycle_default_api_key() -> None:
    server = SandboxServer()

    assert server.api_key == DEFAULT_API_KEY
    assert DEFAULT_API_KEY == "sk_sandbox_local"


async def test_lifecycle_url_before_start_raises() -> None:
    server = SandboxServer()

    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


async def test_lifecycle_stop_twice_is_harmless() -> None:
    server = SandboxServer()
    await server.start()

    await server.stop()
    await server.stop()

    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


async def test_lifecycle_start_twice_raises() -> None:
    async with SandboxServer() as server:
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()


async def test_lifecycle_restart_after_stop_serves_again() -> None:
    server = SandboxServer()
    await server.start()
    await server.stop()
    await server.start()

    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{server.url}/checkouts") as response,
        ):
            assert response.status == 401
    finally:
        await server.stop()


async def test_lifecycle_serve_forever_ends_on_cancel() -> None:
    server = SandboxServer()
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        if server._runner is not None:
            break
        await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as client, client.get(f"{server.url}/events") as response:
        assert response.status == 405

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


async def test_lifecycle_serve_forever_ends_on_stop() -> None:
    server = SandboxServer()
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        if server._runner is not None:
            break
        await asyncio.sleep(0.01)

    await server.stop()
    await asyncio.wait_for(task, timeout=2)

    assert task.done()


async def test_lifecycle_ipv6_loopback_url_has_brackets() -> None:
    server = SandboxServer(host="::1")
    try:
        await server.start()
    except OSError:
        pytest.skip("IPv6 loopback is not available on this machine")

    try:
        assert server.url.startswith("http://[::1]:")
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{server.url}/checkouts") as response,
        ):
            assert response.status == 401
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "two words"}, "api_key"),
        ({"max_recorded_requests": -1}, "max_recorded_requests"),
        ({"port": 70000}, "port"),
    ],
)
def test_lifecycle_invalid_arguments_raise(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxServer(**arguments)


# Authentication and version.


async def test_auth_missing_key_returns_401(sandbox: SandboxServer) -> None:
    async with (
        aiohttp.ClientSession(base_url=sandbox.url) as client,
        client.post(
            "/events", json=REDOC_ORDER_PLACED, headers={"Hakuna-Version": "v2.0"}
        ) as response,
    ):
        body = await response.json()

    assert response.status == 401
    assert body["error"]["error_code"] == "unauthorized"
    assert sandbox.events == []


async def test_auth_wrong_key_returns_401_without_echo(sandbox: SandboxServer) -> None:
    headers = {"Authorization": "Bearer sk_live_do_not_echo", "Hakuna-Version": "v2.0"}
    async with (
        aiohttp.ClientSession(base_url=sandbox.url) as client,
        client.post("/events", json=REDOC_ORDER_PLACED, headers=headers) as response,
    ):
        text = await response.text()

    assert response.status == 401
    assert "sk_live_do_not_echo" not in text
    assert "sk_live_do_not_echo" not in str(dict(response.headers))


async def test_auth_key_without_bearer_scheme_returns_401(sandbox: SandboxServer) -> None:
    headers = {"Authorization": sandbox.api_key, "Hakuna-Version": "v2.0"}
    async with (
        aiohttp.ClientSession(base_url=sandbox.url) as client,
        client.get("/orders/ord-1/plan-connections", headers=headers) as response,
    ):
        assert response.status == 401


async def test_auth_checked_before_version(sandbox: SandboxServer) -> None:
    async with (
        aiohttp.ClientSession(base_url=sandbox.url) as client,
        client.get("/orders/ord-1/plan-connections") as response,
    ):
        body = await response.json()

    assert response.status == 401
    assert body["error"]["error_code"] == "unauthorized"


async def test_auth_custom_api_key_accepted() -> None:
    async with SandboxServer(api_key="sk_sandbox_custom") as server:
        headers = {"Authorization": "Bearer sk_sandbox_custom", "Hakuna-Version": "v2.0"}
        async with (
            aiohttp.ClientSession(base_url=server.url, headers=headers) as client,
            client.post("/events", json=REDOC_ORDER_PLACED) as response,
        ):
            assert response.status == 202


async def test_version_missing_returns_400(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    async with (
        aiohttp.ClientSession(base_url=sandbox.url, headers=headers) as client,
        client.post("/events", json=REDOC_ORDER_PLACED) as response,
    ):
        body = await response.json()

    assert response.status == 400
    assert body["error"]["error_code"] == "missing_version"
    assert "Hakuna-Version: v2.0" in body["error"]["message"]
    assert sandbox.events == []


async def test_version_other_value_returns_400(sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {sandbox.api_key}", "Hakuna-Version": "v1.1"}
    async with (
        aiohttp.ClientSession(base_url=sandbox.url, headers=headers) as client,
        client.post("/events", json=REDOC_ORDER_PLACED) as response,
    ):
        body = await response.json()

    assert response.status == 400
    assert body["error"]["error_code"] == "unsupported_version"


async def test_errors_have_json_content_type(sandbox: SandboxServer) -> None:
    async with (
        aiohttp.ClientSession(base_url=sandbox.url) as client,
        client.post("/events", data=b"{}") as response,
    ):
        assert response.status == 401
        assert response.content_type == "application/json"


# Routing outside the operations.


async def test_routing_unknown_path_returns_json_404(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(session, "/v1/events")

    assert status == 404
    assert body["error"]["error_code"] == "not_found"
    assert "POST /events" in body["error"]["message"]


async def test_routing_wrong_method_returns_405(session: aiohttp.ClientSession) -> None:
    async with session.get("/carts/checkout") as response:
        body = await response.json()

    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert body["error"]["error_code"] == "method_not_allowed"


async def test_routing_oversized_body_returns_json_413(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    async with session.post("/events", data=io.BytesIO(b" " * (2 * 1024 * 1024))) as response:
        body = await response.json()

    assert response.status == 413
    assert body["error"]["error_code"] == "payload_too_large"
    assert sandbox.requests[-1].status == 413


# Events.


async def test_events_publish_returns_event_id(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await post_json(session, "/events", REDOC_ORDER_PLACED, key="key-1")

    assert status == 202
    assert body["event_id"].startswith("evt-")
    assert len(sandbox.events) == 1
    assert sandbox.events[0].event_id == body["event_id"]
    assert sandbox.events[0].idempotency_key == "key-1"
    assert isinstance(sandbox.events[0].event, OrderPlaced)
    assert sandbox.events[0].event.payload.order_id == "ord-123"
    assert sandbox.events[0].type == "order_placed"


async def test_events_publish_without_key_records_none(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    status, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)

    assert status == 202
    assert sandbox.events[0].idempotency_key is None


async def test_events_quantity_zero_fails_validation(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    event = copy.deepcopy(REDOC_ORDER_PLACED)
    event["payload"]["line_items"][0]["quantity"] = 0

    status, body, _ = await post_json(session, "/events", event)

    assert status == 400
    assert body["error"]["error_code"] == "validation_failed"
    assert body["error"]["validation_errors"][0]["field"] == "$.payload.line_items[0].quantity"
    assert "(value: 0)" in body["error"]["validation_errors"][0]["message"]
    assert sandbox.events == []


async def test_events_uppercase_currency_fails_validation(session: aiohttp.ClientSession) -> None:
    event = copy.deepcopy(REDOC_ORDER_PLACED)
    event["payload"]["order_currency"] = "EUR"

    status, body, _ = await post_json(session, "/events", event)

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.payload.order_currency"
    assert "'EUR'" in body["error"]["validation_errors"][0]["message"]


async def test_events_orphan_protection_in_order_fails(session: aiohttp.ClientSession) -> None:
    event = order_placed(
        "ord-orphan",
        [product_line("li-1", "prd-a"), protection_line("li-2", "prd-missing")],
    )

    status, body, _ = await post_json(session, "/events", event)

    assert status == 400
    assert body["error"]["error_code"] == "validation_failed"
    field = body["error"]["validation_errors"][0]["field"]
    assert field == "$.payload.line_items[1].custom_properties.product_reference"


async def test_events_unknown_type_fails_validation(session: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(session, "/events", {"type": "order_shipped", "payload": {}})

    assert status == 400
    assert body["error"]["error_code"] == "validation_failed"


async def test_events_malformed_json_returns_invalid_json(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        "/events", data=b'{"type": "order_placed",', headers={"Content-Type": "application/json"}
    ) as response:
        body = await response.json()

    assert response.status == 400
    assert body["error"]["error_code"] == "invalid_json"
    assert sandbox.events == []


async def test_events_lifecycle_before_order_placed_accepted(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    refund = line_items_event("line_items_refunded", "ord-late", {"li-1": 1})

    status, _, _ = await post_json(session, "/events", refund)

    assert status == 202
    assert isinstance(sandbox.events[0].event, LineItemsRefunded)
    assert sandbox.orders["ord-late"].placed is None
    assert sandbox.orders["ord-late"].refunded_units["li-1"] == 1


async def test_events_count_by_type(sandbox: SandboxServer, session: aiohttp.ClientSession) -> None:
    await post_json(session, "/events", REDOC_ORDER_PLACED)
    await post_json(
        session,
        "/events",
        line_items_event("line_items_fulfilled", "ord-123", {"line-item-id-3311": 1}),
    )
    await post_json(
        session,
        "/events",
        line_items_event("line_items_fulfilled", "ord-123", {"line-item-id-4411": 1}),
    )
    cancel = {
        "type": "order_cancelled",
        "payload": {"order_id": "ord-9", "cancelled_at": "2024-05-01T10:00:00+02:00"},
    }
    await post_json(session, "/events", cancel)

    counts = sandbox.event_count_by_type()

    assert counts == {"order_placed": 1, "line_items_fulfilled": 2, "order_cancelled": 1}
    assert [received.type for received in sandbox.events_for_order("ord-123")] == [
        "order_placed",
        "line_items_fulfilled",
        "line_items_fulfilled",
    ]
    assert sandbox.orders["ord-9"].cancelled is True


async def test_events_concurrent_publishing_stores_all(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    events = [order_placed(f"ord-{index}", [product_line("li-1", "prd-a")]) for index in range(200)]

    results = await asyncio.gather(
        *(
            post_json(session, "/events", event, key=f"key-{index}")
            for index, event in enumerate(events)
        )
    )

    assert {status for status, _, _ in results} == {202}
    assert len({body["event_id"] for _, body, _ in results}) == 200
    assert len(sandbox.events) == 200


# Idempotency.


async def test_idempotency_replay_returns_first_response(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    first_status, first, first_response = await post_json(
        session, "/events", REDOC_ORDER_PLACED, key="same-key"
    )
    second_status, second, second_response = await post_json(
        session, "/events", REDOC_ORDER_PLACED, key="same-key"
    )

    assert first_status == 202
    assert second_status == 202
    assert second == first
    assert "Hakuna-Idempotent-Replayed" not in first_response.headers
    assert second_response.headers["Hakuna-Idempotent-Replayed"] == "true"
    assert len(sandbox.events) == 1


async def test_idempotency_other_body_returns_409(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    other = order_placed("ord-other", [product_line("li-1", "prd-a")])

    await post_json(session, "/events", REDOC_ORDER_PLACED, key="reused")
    status, body, _ = await post_json(session, "/events", other, key="reused")

    assert status == 409
    assert body["error"]["error_code"] == "idempotency_key_reused"
    assert len(sandbox.events) == 1


async def test_idempotency_other_path_returns_409(session: aiohttp.ClientSession) -> None:
    checkout = {"cart_id": "cart-1", "user_session_id": "s-1", "order_id": "ord-1"}

    await post_json(session, "/carts/checkout", checkout, key="shared")
    status, body, _ = await post_json(session, "/carts", cart([]), key="shared")

    assert status == 409
    assert body["error"]["error_code"] == "idempotency_key_reused"


async def test_idempotency_byte_difference_returns_409(session: aiohttp.ClientSession) -> None:
    headers = {"Hakuna-Idempotency-Key": "bytes", "Content-Type": "application/json"}
    compact = b'{"cart_id":"c","user_session_id":"s","order_id":"o"}'
    spaced = b'{"cart_id": "c", "user_session_id": "s", "order_id": "o"}'

    async with session.post("/carts/checkout", data=compact, headers=headers) as first:
        assert first.status == 202
    async with session.post("/carts/checkout", data=spaced, headers=headers) as second:
        assert second.status == 409


async def test_idempotency_failed_request_not_stored(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    invalid = copy.deepcopy(REDOC_ORDER_PLACED)
    invalid["payload"]["line_items"][0]["quantity"] = 0

    first_status, _, _ = await post_json(session, "/events", invalid, key="retry-key")
    second_status, _, second_response = await post_json(
        session, "/events", REDOC_ORDER_PLACED, key="retry-key"
    )

    assert first_status == 400
    assert second_status == 202
    assert "Hakuna-Idempotent-Replayed" not in second_response.headers
    assert len(sandbox.events) == 1


async def test_idempotency_without_key_processes_each_post(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    _, first, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)
    _, second, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)

    assert first["event_id"] != second["event_id"]
    assert len(sandbox.events) == 2


async def test_idempotency_key_too_long_returns_400(session: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(session, "/events", REDOC_ORDER_PLACED, key="k" * 256)

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "Hakuna-Idempotency-Key"


async def test_idempotency_replays_cart_actions(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    _, first, _ = await post_json(session, "/carts", SPEC_CART, key="cart-key")
    status, second, response = await post_json(session, "/carts", SPEC_CART, key="cart-key")

    assert status == 202
    assert second == first
    assert response.headers["Hakuna-Idempotent-Replayed"] == "true"


# Order plan connections.


async def test_order_connections_redoc_example(session: aiohttp.ClientSession) -> None:
    await post_json(session, "/events", REDOC_ORDER_PLACED)

    status, body = await get_json(session, "/orders/ord-123/plan-connections")

    assert status == 200
    assert body == {
        "order_id": "ord-123",
        "plan_connections": [
            {"product_line_item_id": "line-item-id-3311", "plan_line_item_id": "line-item-id-3322"},
            {"product_line_item_id": "line-item-id-4411", "plan_line_item_id": None},
        ],
    }


async def test_order_connections_unknown_order_returns_404(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(session, "/orders/ord-unknown/plan-connections")

    assert status == 404
    assert body["error"]["error_code"] == "not_found"


async def test_order_connections_need_order_placed(session: aiohttp.ClientSession) -> None:
    await post_json(
        session, "/events", line_items_event("line_items_fulfilled", "ord-early", {"li-1": 1})
    )

    status, _ = await get_json(session, "/orders/ord-early/plan-connections")

    assert status == 404


async def test_order_connections_use_latest_order_placed(session: aiohttp.ClientSession) -> None:
    first = order_placed("ord-2", [product_line("li-1", "prd-a")])
    second = order_placed(
        "ord-2", [product_line("li-1", "prd-a"), protection_line("li-2", "prd-a")]
    )
    await post_json(session, "/events", first)
    await post_json(session, "/events", second)

    _, body = await get_json(session, "/orders/ord-2/plan-connections")

    assert body["plan_connections"] == [
        {"product_line_item_id": "li-1", "plan_line_item_id": "li-2"}
    ]


async def test_order_connections_pair_split_product_lines(session: aiohttp.ClientSession) -> None:
    event = order_placed(
        "ord-split",
        [
            product_line("li-1", "prd-a"),
            product_line("li-2", "prd-a"),
            protection_line("li-3", "prd-a"),
        ],
    )
    await post_json(session, "/events", event)

    _, body = await get_json(session, "/orders/ord-split/plan-connections")

    assert body["plan_connections"] == [
        {"product_line_item_id": "li-1", "plan_line_item_id": "li-3"},
        {"product_line_item_id": "li-2", "plan_line_item_id": None},
    ]


async def test_order_connections_order_id_with_space(session: aiohttp.ClientSession) -> None:
    await post_json(session, "/events", order_placed("ord 7", [product_line("li-1", "prd-a")]))

    status, body = await get_json(session, "/orders/ord%207/plan-connections")

    assert status == 200
    assert body["order_id"] == "ord 7"


# Carts.


async def test_cart_update_spec_example_gives_spec_actions(session: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(session, "/carts", SPEC_CART)

    assert status == 202
    assert body == SPEC_CART_ACTIONS


async def test_cart_update_orphan_protection_set_to_zero(session: aiohttp.ClientSession) -> None:
    lines = [product_line("li-1", "prd-a"), protection_line("li-2", "prd-gone")]

    _, body, _ = await post_json(session, "/carts", cart(lines))

    assert body["actions"] == [
        {"type": "update_line_item", "payload": {"line_item_id": "li-2", "line_item_quantity": 0}}
    ]


async def test_cart_update_excess_protection_reduced(session: aiohttp.ClientSession) -> None:
    lines = [
        product_line("li-1", "prd-a", quantity=1),
        protection_line("li-2", "prd-a", quantity=3),
    ]

    _, body, _ = await post_json(session, "/carts", cart(lines))

    assert body["actions"] == [
        {"type": "update_line_item", "payload": {"line_item_id": "li-2", "line_item_quantity": 1}}
    ]


async def test_cart_update_protection_follows_split_lines(session: aiohttp.ClientSession) -> None:
    lines = [
        product_line("li-1", "prd-a", quantity=2),
        product_line("li-2", "prd-a", quantity=1),
        protection_line("li-3", "prd-a", quantity=1),
    ]

    _, body, _ = await post_json(session, "/carts", cart(lines))

    assert body["actions"] == [
        {"type": "update_line_item", "payload": {"line_item_id": "li-3", "line_item_quantity": 3}}
    ]


async def test_cart_update_second_protection_removed(session: aiohttp.ClientSession) -> None:
    lines = [
        product_line("li-1", "prd-a", quantity=2),
        protection_line("li-2", "prd-a", quantity=2),
        protection_line("li-3", "prd-a", quantity=1),
    ]

    _, body, _ = await post_json(session, "/carts", cart(lines))

    assert body["actions"] == [
        {"type": "update_line_item", "payload": {"line_item_id": "li-3", "line_item_quantity": 0}}
    ]


async def test_cart_update_consistent_cart_has_no_actions(session: aiohttp.ClientSession) -> None:
    lines = [
        product_line("li-1", "prd-a", quantity=2),
        protection_line("li-2", "prd-a", quantity=2),
    ]

    status, body, _ = await post_json(session, "/carts", cart(lines))

    assert status == 202
    assert body == {"cart_id": "cart-1", "user_session_id": "session-1", "actions": []}


async def test_cart_update_empty_cart_accepted(session: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(session, "/carts", cart([]))

    assert status == 202
    assert body["actions"] == []


async def test_cart_update_quantity_zero_fails_validation(session: aiohttp.ClientSession) -> None:
    lines = [product_line("li-1", "prd-a", quantity=0)]

    status, body, _ = await post_json(session, "/carts", cart(lines))

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.line_items[0].quantity"


async def test_cart_update_uppercase_currency_fails(session: aiohttp.ClientSession) -> None:
    body_in = cart([])
    body_in["cart_currency"] = "EUR"

    status, body, _ = await post_json(session, "/carts", body_in)

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.cart_currency"


async def test_cart_update_malformed_json(session: aiohttp.ClientSession) -> None:
    async with session.post("/carts", data=b"[1, 2") as response:
        body = await response.json()

    assert response.status == 400
    assert body["error"]["error_code"] == "invalid_json"


async def test_cart_connections_spec_example(session: aiohttp.ClientSession) -> None:
    await post_json(session, "/carts", SPEC_CART)

    status, body = await get_json(session, "/carts/cart-123/plan-connections")

    assert status == 200
    assert body == {
        "cart_id": "cart-123",
        "plan_connections": [
            {"product_line_item_id": "line-item-id-3311", "plan_line_item_id": "line-item-id-3322"},
            {"product_line_item_id": "line-item-id-4411", "plan_line_item_id": None},
        ],
    }


async def test_cart_connections_after_orphan_removed(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    lines = [product_line("li-1", "prd-a"), protection_line("li-2", "prd-gone")]
    await post_json(session, "/carts", cart(lines))

    _, body = await get_json(session, "/carts/cart-1/plan-connections")

    assert body["plan_connections"] == [{"product_line_item_id": "li-1", "plan_line_item_id": None}]
    assert [item.id for item in sandbox.carts["cart-1"].cart.line_items] == ["li-1"]


async def test_cart_connections_unknown_cart_returns_404(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(session, "/carts/cart-unknown/plan-connections")

    assert status == 404
    assert body["error"]["error_code"] == "not_found"


async def test_cart_checkout_echoes_notification(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    checkout = {
        "cart_id": "cart-123",
        "user_session_id": "f4f78677-31ea-4fea-9d91-5fdd91119aa8",
        "order_id": "ord-123",
    }

    status, body, _ = await post_json(session, "/carts/checkout", checkout)

    assert status == 202
    assert body == checkout
    assert sandbox.cart_checkouts["cart-123"] == "ord-123"


async def test_cart_checkout_missing_order_id_fails(session: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(
        session, "/carts/checkout", {"cart_id": "cart-1", "user_session_id": "s-1"}
    )

    assert status == 400
    assert body["error"]["error_code"] == "validation_failed"
    assert body["error"]["validation_errors"][0]["field"] == "$.order_id"
    assert body["error"]["validation_errors"][0]["message"] == "required field is missing"


# Plan matching.


async def test_match_known_product_returns_plan(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(session, "/plans/match", MATCH_QUERY)

    assert status == 200
    assert body["product"] == {
        "id": "prd-iphone14",
        "category": "smartphones",
        "title": "iPhone 14",
        "brand": "Apple",
        "price_amount": 112900,
        "price_currency": "eur",
    }
    assert body["plans"][0]["merchant_product_id"] == "pl-prd-hakuna"
    assert body["plans"][0]["price_amount"] == 8464
    assert body["plans"][0]["price_currency"] == "eur"
    assert body["plans"][0]["product_reference"] == "prd-iphone14"
    assert body["plans"][0]["title"]["de"] == "Hakuna.care protection"


async def test_match_unknown_category_returns_404(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(
        session, "/plans/match", {**MATCH_QUERY, "product_category": "books"}
    )

    assert status == 404
    assert body["error"]["error_code"] == "no_match"


async def test_match_price_outside_bands_returns_404(session: aiohttp.ClientSession) -> None:
    status, _ = await get_json(
        session, "/plans/match", {**MATCH_QUERY, "product_price_amount": "5"}
    )

    assert status == 404


async def test_match_uppercase_currency_fails_validation(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(
        session, "/plans/match", {**MATCH_QUERY, "product_price_currency": "EUR"}
    )

    assert status == 400
    assert body["error"]["error_code"] == "validation_failed"
    assert body["error"]["validation_errors"][0]["field"] == "$.product_price_currency"


async def test_match_missing_parameter_fails_validation(session: aiohttp.ClientSession) -> None:
    query = {name: value for name, value in MATCH_QUERY.items() if name != "user_session_id"}

    status, body = await get_json(session, "/plans/match", query)

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.user_session_id"


async def test_match_non_numeric_price_fails_validation(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(
        session, "/plans/match", {**MATCH_QUERY, "product_price_amount": "11.99"}
    )

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.product_price_amount"


async def test_match_uses_configured_catalogue() -> None:
    plan = CatalogPlan(
        merchant_product_id="pl-books",
        title={"de": "Buchschutz"},
        categories=frozenset({"books"}),
        min_price=0,
        max_price=10_000,
        price_amount=199,
    )
    async with SandboxServer(plans=(plan,)) as server:
        headers = {"Authorization": f"Bearer {server.api_key}", "Hakuna-Version": "v2.0"}
        async with aiohttp.ClientSession(base_url=server.url, headers=headers) as client:
            books = {**MATCH_QUERY, "product_category": "books", "product_price_amount": "1500"}
            book_status, book_body = await get_json(client, "/plans/match", books)
            phone_status, _ = await get_json(client, "/plans/match", MATCH_QUERY)

    assert book_status == 200
    assert book_body["plans"][0]["merchant_product_id"] == "pl-books"
    assert phone_status == 404
    assert server.plans == (plan,)


# Checkouts.


async def publish_unprotected_order(
    session: aiohttp.ClientSession, order_id: str = "ord-5"
) -> None:
    event = order_placed(
        order_id,
        [
            product_line("li-phone", "prd-phone", price_amount=112_900, category="smartphones"),
            protection_line("li-phone-plan", "prd-phone"),
            product_line("li-bike", "prd-bike", price_amount=250_000, category="bikes"),
            product_line("li-book", "prd-book", price_amount=1_500, category="books"),
            product_line("li-case", "prd-case", price_amount=1_200, category=None),
        ],
        country="at",
    )
    status, _, _ = await post_json(session, "/events", event)
    assert status == 202


async def test_checkout_assist_returns_assist_link(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    await publish_unprotected_order(session)

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "assist"}
    )

    assert status == 200
    assert body["checkout_type"] == "assist"
    assert body["order_id"] == "ord-5"
    assert body["assist_link"] == f"{sandbox.url}/checkout-links/assist/ord-5"
    assert "redirect_link" not in body


async def test_checkout_redirect_returns_redirect_link(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    await publish_unprotected_order(session)

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "redirect"}
    )

    assert status == 200
    assert body["checkout_type"] == "redirect"
    assert body["redirect_link"] == f"{sandbox.url}/checkout-links/redirect/ord-5"
    assert "assist_link" not in body


async def test_checkout_lists_unprotected_lines_only(session: aiohttp.ClientSession) -> None:
    await publish_unprotected_order(session)

    _, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "assist"}
    )

    assert body["available_plans"] == [
        {
            "line_item_id": "li-bike",
            "product_reference": "prd-bike",
            "plan_price_amount": 9999,
            "plan_price_currency": "eur",
            "country": "at",
        }
    ]


async def test_checkout_one_entry_per_matching_plan(session: aiohttp.ClientSession) -> None:
    event = order_placed(
        "ord-multi", [product_line("li-1", "prd-1", price_amount=112_900, category="electronics")]
    )
    await post_json(session, "/events", event)

    _, body = await get_json(
        session, "/checkouts", {"order_id": "ord-multi", "checkout_type": "assist"}
    )

    expected = [
        plan.merchant_product_id
        for plan in DEFAULT_PLANS
        if plan.matches("electronics", 112_900, "eur")
    ]
    assert len(body["available_plans"]) == len(expected)
    assert len(expected) > 1
    assert {entry["line_item_id"] for entry in body["available_plans"]} == {"li-1"}


async def test_checkout_skips_refunded_line(session: aiohttp.ClientSession) -> None:
    await publish_unprotected_order(session)
    await post_json(
        session, "/events", line_items_event("line_items_refunded", "ord-5", {"li-bike": 1})
    )

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "assist"}
    )

    assert status == 404
    assert body["error"]["error_code"] == "no_available_plans"


async def test_checkout_keeps_partly_cancelled_line(session: aiohttp.ClientSession) -> None:
    event = order_placed(
        "ord-part",
        [product_line("li-bike", "prd-bike", quantity=2, price_amount=250_000, category="bikes")],
    )
    await post_json(session, "/events", event)
    await post_json(
        session, "/events", line_items_event("line_items_cancelled", "ord-part", {"li-bike": 1})
    )

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-part", "checkout_type": "redirect"}
    )

    assert status == 200
    assert body["available_plans"][0]["line_item_id"] == "li-bike"


async def test_checkout_cancelled_order_returns_404(session: aiohttp.ClientSession) -> None:
    await publish_unprotected_order(session)
    cancel = {
        "type": "order_cancelled",
        "payload": {"order_id": "ord-5", "cancelled_at": "2024-05-02T08:00:00Z"},
    }
    await post_json(session, "/events", cancel)

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "assist"}
    )

    assert status == 404
    assert body["error"]["error_code"] == "no_available_plans"


async def test_checkout_unknown_order_returns_404(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-none", "checkout_type": "assist"}
    )

    assert status == 404
    assert body["error"]["error_code"] == "not_found"


async def test_checkout_redoc_order_has_no_plans(session: aiohttp.ClientSession) -> None:
    await post_json(session, "/events", REDOC_ORDER_PLACED)

    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-123", "checkout_type": "assist"}
    )

    assert status == 404
    assert body["error"]["error_code"] == "no_available_plans"


async def test_checkout_invalid_type_fails_validation(session: aiohttp.ClientSession) -> None:
    status, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "email"}
    )

    assert status == 400
    assert body["error"]["validation_errors"][0]["field"] == "$.checkout_type"


async def test_checkout_link_page_needs_no_key(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    await publish_unprotected_order(session)
    _, body = await get_json(
        session, "/checkouts", {"order_id": "ord-5", "checkout_type": "assist"}
    )

    async with aiohttp.ClientSession() as anonymous, anonymous.get(body["assist_link"]) as page:
        text = await page.text()

    assert page.status == 200
    assert page.content_type == "text/html"
    assert "ord-5" in text
    assert "li-bike" in text


async def test_checkout_link_page_unknown_order_404(sandbox: SandboxServer) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(f"{sandbox.url}/checkout-links/assist/ord-none") as page,
    ):
        assert page.status == 404


# Fault injection.


async def test_fault_respond_sends_status_and_retry_after(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Respond(503, headers={"Retry-After": "2"}))

    async with session.post("/events", json=REDOC_ORDER_PLACED) as response:
        body = await response.json()

    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert response.content_type == "application/json"
    assert body["error"]["error_code"] == "injected_fault"
    assert sandbox.events == []


async def test_fault_respond_custom_bodies(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(
        Respond(502, body="<html>bad gateway</html>", headers={"Content-Type": "text/html"})
    )
    sandbox.faults.add(Respond(429, body={"error": {"error_code": "rate_limited"}}))

    async with session.post("/events", json=REDOC_ORDER_PLACED) as first:
        first_text = await first.text()
    async with session.post("/events", json=REDOC_ORDER_PLACED) as second:
        second_body = await second.json()

    assert first.status == 502
    assert first.content_type == "text/html"
    assert first_text == "<html>bad gateway</html>"
    assert second.status == 429
    assert second_body == {"error": {"error_code": "rate_limited"}}


async def test_fault_applies_given_times_only(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Respond(500), times=2)

    statuses = []
    for _ in range(3):
        status, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)
        statuses.append(status)

    assert statuses == [500, 500, 202]
    assert sandbox.faults.pending == ()
    assert sandbox.faults.applied_count() == 2


async def test_fault_without_limit_until_clear(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Respond(503), times=None)

    first, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)
    second, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)
    sandbox.faults.clear()
    third, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)

    assert (first, second, third) == (503, 503, 202)
    assert sandbox.faults.applied_count(Respond) == 2


async def test_fault_matches_path_and_method(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Respond(500), path="/orders/ord-123/plan-connections", method="get")
    await post_json(session, "/events", REDOC_ORDER_PLACED)

    other_order, _ = await get_json(session, "/orders/ord-9/plan-connections")
    matching, _ = await get_json(session, "/orders/ord-123/plan-connections")
    again, _ = await get_json(session, "/orders/ord-123/plan-connections")

    assert other_order == 404
    assert matching == 500
    assert again == 200


async def test_fault_delay_answers_late(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Delay(0.3))
    loop = asyncio.get_running_loop()

    started = loop.time()
    status, _, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)
    elapsed = loop.time() - started

    assert status == 202
    assert elapsed >= 0.25
    assert len(sandbox.events) == 1


async def test_fault_delay_handles_after_client_timeout(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Delay(0.3))

    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            "/events", json=REDOC_ORDER_PLACED, timeout=aiohttp.ClientTimeout(total=0.05)
        ):
            pass
    await asyncio.sleep(0.5)

    assert len(sandbox.events) == 1


async def test_fault_drop_before_stores_nothing(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Drop())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_json(session, "/events", REDOC_ORDER_PLACED, key="drop-before")

    assert sandbox.events == []
    assert sandbox.requests[-1].status is None
    assert sandbox.requests[-1].fault == "Drop"


async def test_fault_drop_before_then_retry_processes(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Drop())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_json(session, "/events", REDOC_ORDER_PLACED, key="drop-retry")
    status, _, response = await post_json(session, "/events", REDOC_ORDER_PLACED, key="drop-retry")

    assert status == 202
    assert "Hakuna-Idempotent-Replayed" not in response.headers
    assert len(sandbox.events) == 1


async def test_fault_drop_after_stores_event(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(Drop(after_handling=True))

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_json(session, "/events", REDOC_ORDER_PLACED, key="drop-after")
    status, body, response = await post_json(
        session, "/events", REDOC_ORDER_PLACED, key="drop-after"
    )

    assert len(sandbox.events) == 1
    assert status == 202
    assert body["event_id"] == sandbox.events[0].event_id
    assert response.headers["Hakuna-Idempotent-Replayed"] == "true"
    assert sandbox.requests[0].status is None
    assert sandbox.requests[0].fault == "Drop"


async def test_fault_stall_body_triggers_read_timeout(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(StallBody(30))

    async with session.post(
        "/events", json=REDOC_ORDER_PLACED, timeout=aiohttp.ClientTimeout(sock_read=0.2)
    ) as response:
        status = response.status
        with pytest.raises(asyncio.TimeoutError):
            await response.read()

    assert status == 202
    assert int(response.headers["Content-Length"]) > 0
    assert len(sandbox.events) == 1
    assert sandbox.requests[-1].fault == "StallBody"


async def test_fault_stall_body_completes_after_stall(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.faults.add(StallBody(0.2))

    status, body, _ = await post_json(session, "/events", REDOC_ORDER_PLACED)

    assert status == 202
    assert body["event_id"] == sandbox.events[0].event_id


async def test_fault_stall_body_stop_is_prompt() -> None:
    server = SandboxServer()
    await server.start()
    server.faults.add(StallBody(60))
    headers = {"Authorization": f"Bearer {server.api_key}", "Hakuna-Version": "v2.0"}
    loop = asyncio.get_running_loop()

    async with aiohttp.ClientSession(base_url=server.url, headers=headers) as client:
        response = await client.post("/events", json=REDOC_ORDER_PLACED)
        started = loop.time()
        await server.stop()
        elapsed = loop.time() - started
        body = await response.json()
        response.release()

    assert elapsed < 1.5
    assert body["event_id"] == server.events[0].event_id


async def test_fault_add_rejects_invalid_rules(sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError, match="path"):
        sandbox.faults.add(Respond(500), path="events")
    with pytest.raises(ValueError, match="times"):
        sandbox.faults.add(Respond(500), times=0)
    with pytest.raises(TypeError, match="fault"):
        sandbox.faults.add("Respond(500)")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        Respond(42)
    with pytest.raises(ValueError, match="seconds"):
        Delay(-1)


async def test_fault_applied_history_records_request(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    fault = Respond(500)
    sandbox.faults.add(fault, path="/carts", method="POST")

    await post_json(session, "/carts", cart([]))

    assert len(sandbox.faults.applied) == 1
    assert sandbox.faults.applied[0].fault is fault
    assert sandbox.faults.applied[0].method == "POST"
    assert sandbox.faults.applied[0].path == "/carts"


# Recording.


async def test_recording_stores_request_fields(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        "/events?trace=1",
        json=REDOC_ORDER_PLACED,
        headers={"Hakuna-Idempotency-Key": "rec-key"},
    ) as response:
        assert response.status == 202

    record = sandbox.requests[-1]

    assert isinstance(record, RecordedRequest)
    assert record.method == "POST"
    assert record.path == "/events"
    assert record.query == {"trace": "1"}
    assert record.headers["hakuna-version"] == "v2.0"
    assert record.json() == REDOC_ORDER_PLACED
    assert record.body_sha256 == hashlib.sha256(record.body).hexdigest()
    assert record.idempotency_key == "rec-key"
    assert record.status == 202
    assert record.fault is None
    assert record.received_at.tzinfo is not None


async def test_recording_redacts_wrong_key(sandbox: SandboxServer) -> None:
    headers = {"Authorization": "Bearer sk_live_secret", "Hakuna-Version": "v2.0"}
    async with (
        aiohttp.ClientSession(base_url=sandbox.url, headers=headers) as client,
        client.get("/checkouts") as response,
    ):
        assert response.status == 401

    record = sandbox.requests[-1]

    assert record.headers["Authorization"] == "<redacted>"
    assert "sk_live_secret" not in repr(record)


async def test_recording_keeps_latest_within_bound() -> None:
    async with SandboxServer(max_recorded_requests=3) as server:
        async with aiohttp.ClientSession(base_url=server.url) as client:
            for index in range(5):
                async with client.get(f"/orders/ord-{index}/plan-connections") as response:
                    assert response.status == 401

        paths = [record.path for record in server.requests]

    assert paths == [
        "/orders/ord-2/plan-connections",
        "/orders/ord-3/plan-connections",
        "/orders/ord-4/plan-connections",
    ]
    assert server.requests[1:][0].path == "/orders/ord-3/plan-connections"


async def test_recording_disabled_with_zero_bound() -> None:
    async with SandboxServer(max_recorded_requests=0) as server:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{server.url}/checkouts") as response,
        ):
            assert response.status == 401

        assert len(server.requests) == 0


async def test_recording_matching_filters(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    await post_json(session, "/events", REDOC_ORDER_PLACED)
    await get_json(session, "/orders/ord-123/plan-connections")

    assert len(sandbox.requests.matching(method="post")) == 1
    assert len(sandbox.requests.matching(path="/orders/ord-123/plan-connections")) == 1
    assert len(sandbox.requests.matching(method="GET", path="/events")) == 0


async def test_logging_never_contains_key(
    sandbox: SandboxServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hakuna_async.testing")
    headers = {"Authorization": "Bearer sk_live_secret", "Hakuna-Version": "v2.0"}

    async with aiohttp.ClientSession(base_url=sandbox.url, headers=headers) as client:
        await post_json(client, "/events", REDOC_ORDER_PLACED)
    await post_json(session, "/events", REDOC_ORDER_PLACED)

    assert "POST /events -> 401" in caplog.text
    assert "POST /events -> 202" in caplog.text
    assert "sk_live_secret" not in caplog.text
    assert sandbox.api_key not in caplog.text


# Reset.


async def test_reset_forgets_everything(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    await post_json(session, "/events", REDOC_ORDER_PLACED, key="reset-key")
    await post_json(session, "/carts", SPEC_CART)
    await post_json(
        session, "/carts/checkout", {"cart_id": "c", "user_session_id": "s", "order_id": "o"}
    )
    sandbox.faults.add(Respond(500), path="/checkouts")
    sandbox.faults.add(Respond(500))
    await post_json(session, "/events", REDOC_ORDER_PLACED)

    sandbox.reset()

    assert sandbox.events == []
    assert sandbox.event_count_by_type() == {}
    assert dict(sandbox.orders) == {}
    assert dict(sandbox.carts) == {}
    assert dict(sandbox.cart_checkouts) == {}
    assert len(sandbox.requests) == 0
    assert sandbox.faults.pending == ()
    assert sandbox.faults.applied == []

    status, body, response = await post_json(
        session, "/events", REDOC_ORDER_PLACED, key="reset-key"
    )
    assert status == 202
    assert "Hakuna-Idempotent-Replayed" not in response.headers
    assert body["event_id"] == sandbox.events[0].event_id
