"""Narrow unit tests of request building, retries and error mapping, with aioresponses."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

import hakuna_async
from hakuna_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    HakunaClient,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RequestValidationError,
    RetryPolicy,
)

API_KEY = "sk_test_unit_0123456789"
BASE = "https://api.hellohakuna.com/sandbox"
EVENTS_URL = f"{BASE}/events"
FAST_RETRIES = RetryPolicy(max_retries=2, initial_wait=0.001, max_wait=0.002)


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def client() -> Any:
    async with HakunaClient(API_KEY, environment="sandbox", retry_policy=FAST_RETRIES) as c:
        yield c


def sent(mocked: Any, method: str, url: str) -> list[Any]:
    return mocked.requests.get((method, URL(url)), [])


async def test_publish_sends_version_auth_and_json(
    mocked: Any, client: Any, redoc_order: Any
) -> None:
    mocked.post(EVENTS_URL, status=202, payload={"event_id": "evt-1"})

    accepted = await client.events.publish(redoc_order)

    assert accepted.event_id == "evt-1"
    [call] = sent(mocked, "POST", EVENTS_URL)
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Hakuna-Version"] == "v2.0"
    assert headers["Content-Type"] == "application/json"
    assert uuid.UUID(headers["Hakuna-Idempotency-Key"]).version == 4
    assert b'"order_id":"ord-123"' in call.kwargs["data"]


async def test_get_sends_no_idempotency_key(mocked: Any, client: Any) -> None:
    url = f"{BASE}/orders/ord-1/plan-connections"
    mocked.get(url, payload={"order_id": "ord-1", "plan_connections": []})

    await client.orders.plan_connections("ord-1")

    [call] = sent(mocked, "GET", url)
    assert "Hakuna-Idempotency-Key" not in call.kwargs["headers"]


async def test_path_parameter_stays_one_segment(mocked: Any, client: Any) -> None:
    url = f"{BASE}/orders/a%2Fb%3Fc%23d/plan-connections"
    mocked.get(URL(url, encoded=True), payload={"order_id": "a/b?c#d", "plan_connections": []})

    result = await client.orders.plan_connections("a/b?c#d")

    assert result.order_id == "a/b?c#d"
    assert len(mocked.requests) == 1


async def test_match_sends_every_query_parameter(mocked: Any, client: Any) -> None:
    pattern = re.compile(rf"^{re.escape(BASE)}/plans/match\?.*$")
    mocked.get(
        pattern,
        payload={
            "product": {
                "id": "p",
                "title": "t",
                "brand": "b",
                "price_amount": 1,
                "price_currency": "eur",
            },
            "plans": [],
        },
    )

    await client.plans.match(
        product_id="prd-iphone14",
        product_brand="Apple",
        product_title="iPhone 14",
        product_category="smartphones",
        product_price_amount=112900,
        product_price_currency="eur",
        user_session_id="s-1",
    )

    [(method, url)] = list(mocked.requests)
    assert method == "GET"
    assert url.query["product_price_amount"] == "112900"
    assert url.query["product_title"] == "iPhone 14"
    assert url.query["product_price_currency"] == "eur"


async def test_retries_reuse_generated_key(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=503)
    mocked.post(EVENTS_URL, status=503)
    mocked.post(EVENTS_URL, status=202, payload={"event_id": "evt-3"})

    accepted = await client.events.publish(redoc_order)

    calls = sent(mocked, "POST", EVENTS_URL)
    keys = {call.kwargs["headers"]["Hakuna-Idempotency-Key"] for call in calls}
    bodies = {call.kwargs["data"] for call in calls}
    assert accepted.event_id == "evt-3"
    assert len(calls) == 3
    assert len(keys) == 1
    assert len(bodies) == 1


async def test_caller_key_sent_verbatim(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=503)
    mocked.post(EVENTS_URL, status=202, payload={"event_id": "evt-2"})

    await client.events.publish(redoc_order, idempotency_key="order-1001-created")

    calls = sent(mocked, "POST", EVENTS_URL)
    assert [c.kwargs["headers"]["Hakuna-Idempotency-Key"] for c in calls] == [
        "order-1001-created",
        "order-1001-created",
    ]


async def test_separate_calls_get_different_keys(
    mocked: Any, client: Any, redoc_order: Any
) -> None:
    mocked.post(EVENTS_URL, status=202, payload={"event_id": "a"}, repeat=True)

    await client.events.publish(redoc_order)
    await client.events.publish(redoc_order)

    calls = sent(mocked, "POST", EVENTS_URL)
    assert (
        calls[0].kwargs["headers"]["Hakuna-Idempotency-Key"]
        != calls[1].kwargs["headers"]["Hakuna-Idempotency-Key"]
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
    ],
)
async def test_client_errors_are_not_retried(
    mocked: Any, client: Any, redoc_order: Any, status: int, error_class: type[Exception]
) -> None:
    mocked.post(EVENTS_URL, status=status, payload={"error": {"error_code": "x"}}, repeat=True)

    with pytest.raises(error_class):
        await client.events.publish(redoc_order)

    assert len(sent(mocked, "POST", EVENTS_URL)) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_use_every_retry(
    mocked: Any, client: Any, redoc_order: Any, status: int
) -> None:
    mocked.post(EVENTS_URL, status=status, repeat=True)

    with pytest.raises(hakuna_async.APIStatusError) as raised:
        await client.events.publish(redoc_order)

    assert len(sent(mocked, "POST", EVENTS_URL)) == FAST_RETRIES.max_retries + 1
    assert raised.value.status == status
    assert raised.value.attempts == FAST_RETRIES.max_retries + 1


async def test_connection_error_is_retried(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(
        EVENTS_URL, exception=hakuna_async._transport.aiohttp.ClientConnectionError("reset")
    )
    mocked.post(EVENTS_URL, status=202, payload={"event_id": "evt-ok"})

    accepted = await client.events.publish(redoc_order)

    assert accepted.event_id == "evt-ok"
    assert client.stats.retries == 1


async def test_connection_error_after_retries(mocked: Any, client: Any, redoc_order: Any) -> None:
    error = hakuna_async._transport.aiohttp.ClientConnectionError("reset")
    mocked.post(EVENTS_URL, exception=error, repeat=True)

    with pytest.raises(APIConnectionError) as raised:
        await client.events.publish(redoc_order)

    assert raised.value.attempts == 3
    assert "POST /events" in str(raised.value)


async def test_per_call_max_retries_overrides(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=500, repeat=True)

    with pytest.raises(InternalServerError):
        await client.events.publish(redoc_order, max_retries=0)

    assert len(sent(mocked, "POST", EVENTS_URL)) == 1


async def test_bad_request_carries_hakuna_details(
    mocked: Any, client: Any, redoc_order: Any
) -> None:
    body = {
        "error": {
            "error_code": "validation_failed",
            "validation_errors": [{"field": "$.payload.order_id", "message": "unknown"}],
        }
    }
    mocked.post(EVENTS_URL, status=400, payload=body)

    with pytest.raises(BadRequestError) as raised:
        await client.events.publish(redoc_order, idempotency_key="k-1")

    error = raised.value
    assert error.status == 400
    assert error.error_code == "validation_failed"
    assert error.validation_errors == body["error"]["validation_errors"]
    assert error.method == "POST"
    assert error.path == "/events"
    assert error.idempotency_key == "k-1"
    assert "$.payload.order_id" in str(error)
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error)


async def test_rate_limit_error_for_429(mocked: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=429, headers={"Retry-After": "0"}, repeat=True)
    policy = RetryPolicy(max_retries=1, initial_wait=0.001, max_wait=0.002)

    async with HakunaClient(API_KEY, environment="sandbox", retry_policy=policy) as client:
        with pytest.raises(RateLimitError):
            await client.events.publish(redoc_order)

    assert len(sent(mocked, "POST", EVENTS_URL)) == 2


async def test_huge_retry_after_fails_fast(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=429, headers={"Retry-After": "999999"}, repeat=True)

    with pytest.raises(RateLimitError) as raised:
        await client.events.publish(redoc_order)

    assert raised.value.retry_after == 999999
    assert len(sent(mocked, "POST", EVENTS_URL)) == 1


async def test_invalid_event_never_sent(mocked: Any, client: Any, redoc_order: Any) -> None:
    redoc_order["payload"]["line_items"][0]["quantity"] = 0

    with pytest.raises(RequestValidationError) as raised:
        await client.events.publish(redoc_order)

    assert raised.value.field == "$.payload.line_items[0].quantity"
    assert len(mocked.requests) == 0


async def test_crlf_idempotency_key_rejected(mocked: Any, client: Any, redoc_order: Any) -> None:
    with pytest.raises(RequestValidationError) as raised:
        await client.events.publish(redoc_order, idempotency_key="k\r\nX-Evil: 1")

    assert raised.value.field == "Hakuna-Idempotency-Key"
    assert len(mocked.requests) == 0


async def test_success_body_mismatch_raises(mocked: Any, client: Any, redoc_order: Any) -> None:
    mocked.post(EVENTS_URL, status=202, body=b"<html>proxy</html>")

    with pytest.raises(hakuna_async.APIResponseValidationError):
        await client.events.publish(redoc_order)


async def test_unknown_response_fields_decode(mocked: Any, client: Any) -> None:
    url = f"{BASE}/checkouts?checkout_type=assist&order_id=o-1"
    mocked.get(
        url,
        payload={
            "checkout_type": "assist_v2",
            "order_id": "o-1",
            "assist_link": "https://example.com/a",
            "available_plans": [],
            "brand_new_field": {"x": 1},
        },
    )

    checkout = await client.checkouts.retrieve(order_id="o-1", checkout_type="assist")

    assert checkout.checkout_type == "assist_v2"


async def test_invalid_checkout_type_rejected(mocked: Any, client: Any) -> None:
    with pytest.raises(RequestValidationError) as raised:
        await client.checkouts.retrieve(order_id="o-1", checkout_type="email")  # type: ignore[arg-type]

    assert raised.value.field == "$.checkout_type"
    assert len(mocked.requests) == 0


async def test_cart_update_returns_actions(mocked: Any, client: Any, spec: Any) -> None:
    path = spec["paths"]["/carts"]["post"]
    cart = path["requestBody"]["content"]["application/json"]["example"]
    answer = path["responses"]["202"]["content"]["application/json"]["example"]
    mocked.post(f"{BASE}/carts", status=202, payload=answer)

    result = await client.carts.update(cart)

    assert result.actions[0].type == "update_line_item"
    assert result.actions[0].payload.line_item_quantity == 2


def test_missing_api_key_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAKUNA_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="HAKUNA_API_KEY"):
        HakunaClient()


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAKUNA_API_KEY", API_KEY)

    client = HakunaClient()

    assert client.base_url == "https://api.hellohakuna.com"
    assert API_KEY not in repr(client)


def test_plain_http_refused_for_remote_host() -> None:
    with pytest.raises(ConfigurationError, match="unencrypted"):
        HakunaClient(API_KEY, base_url="http://api.example.com")


def test_plain_http_allowed_for_loopback() -> None:
    client = HakunaClient(API_KEY, base_url="http://127.0.0.1:8787/")

    assert client.base_url == "http://127.0.0.1:8787"


def test_unknown_environment_rejected() -> None:
    with pytest.raises(ConfigurationError, match="'staging'"):
        HakunaClient(API_KEY, environment="staging")


async def test_callback_sees_exact_body(mocked: Any, client: Any, redoc_order: Any) -> None:
    seen: list[bytes] = []

    def remember(url: URL, **kwargs: Any) -> CallbackResult:
        seen.append(kwargs["data"])
        return CallbackResult(status=202, payload={"event_id": "evt-cb"})

    mocked.post(EVENTS_URL, callback=remember)

    await client.events.publish(redoc_order)

    assert seen[0].startswith(b'{"type":"order_placed","payload":{')
