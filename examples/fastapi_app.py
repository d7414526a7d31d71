"""A FastAPI app that publishes order events to Hakuna, with one client per process.

Needs ``pip install 'hakuna-async[recipes]'``. Run it with uvicorn::

    HAKUNA_API_KEY=... uvicorn --app-dir examples fastapi_app:app

``HAKUNA_BASE_URL`` or ``HAKUNA_ENVIRONMENT`` selects where events go. Try it with
``curl -X POST localhost:8000/events -H 'Content-Type: application/json' -d @order.json``
and ``curl localhost:8000/orders/ord-123/plan-connections``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, TypedDict

from fastapi import FastAPI, Header, HTTPException, Request

from hakuna_async import APIError, HakunaClient, NotFoundError, RequestValidationError


class State(TypedDict):
    hakuna: HakunaClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    # Created here, not at import time: a client belongs to the event loop that serves
    # the app, and each uvicorn worker process gets its own. Leaving the block on
    # shutdown closes its connections.
    async with HakunaClient() as client:
        yield {"hakuna": client}


app = FastAPI(lifespan=lifespan)


@app.post("/events", status_code=202)
async def publish_event(
    request: Request, idempotency_key: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    client: HakunaClient = request.state.hakuna
    try:
        # The raw JSON body goes in as it is: the client validates it before sending.
        # Passing on the caller's Idempotency-Key makes a retried POST store the event once.
        accepted = await client.events.publish(
            await request.body(), idempotency_key=idempotency_key
        )
    except RequestValidationError as error:
        raise HTTPException(422, detail={"field": error.field, "message": str(error)}) from None
    except APIError as error:
        raise HTTPException(502, detail=f"Hakuna did not accept the event: {error}") from None
    return {"event_id": accepted.event_id}


@app.get("/orders/{order_id}/plan-connections")
async def plan_connections(order_id: str, request: Request) -> list[dict[str, str | None]]:
    client: HakunaClient = request.state.hakuna
    try:
        connections = await client.orders.plan_connections(order_id)
    except NotFoundError:
        raise HTTPException(404, detail=f"Hakuna has no order {order_id!r}.") from None
    return [
        {
            "product_line_item_id": connection.product_line_item_id,
            "plan_line_item_id": connection.plan_line_item_id,
        }
        for connection in connections.plan_connections
    ]
