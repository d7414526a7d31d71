"""An aiohttp.web app that publishes order events to Hakuna, with one client per process.

Run it with ``python examples/aiohttp_app.py`` (port 8080), or with aiohttp's runner::

    HAKUNA_API_KEY=... python -m aiohttp.web -H 127.0.0.1 -P 8080 aiohttp_app:init_app

from the examples folder. ``HAKUNA_BASE_URL`` or ``HAKUNA_ENVIRONMENT`` selects where
events go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hakuna_async import APIError, HakunaClient, NotFoundError, RequestValidationError

HAKUNA = web.AppKey("hakuna", HakunaClient)


async def hakuna_client(app: web.Application) -> AsyncIterator[None]:
    # A cleanup context runs up to the yield on startup and the rest on cleanup, so
    # the client is created in the server's event loop and closed after the last request.
    async with HakunaClient() as client:
        app[HAKUNA] = client
        yield


async def publish_event(request: web.Request) -> web.Response:
    try:
        # The raw JSON body goes in as it is: the client validates it before sending.
        # Passing on the caller's Idempotency-Key makes a retried POST store the event once.
        accepted = await request.app[HAKUNA].events.publish(
            await request.read(), idempotency_key=request.headers.get("Idempotency-Key")
        )
    except RequestValidationError as error:
        return web.json_response({"field": error.field, "message": str(error)}, status=422)
    except APIError as error:
        return web.json_response({"message": f"Hakuna did not accept it: {error}"}, status=502)
    return web.json_response({"event_id": accepted.event_id}, status=202)


async def plan_connections(request: web.Request) -> web.Response:
    order_id = request.match_info["order_id"]
    try:
        connections = await request.app[HAKUNA].orders.plan_connections(order_id)
    except NotFoundError:
        return web.json_response({"message": f"Hakuna has no order {order_id!r}."}, status=404)
    return web.json_response(
        [
            {
                "product_line_item_id": connection.product_line_item_id,
                "plan_line_item_id": connection.plan_line_item_id,
            }
            for connection in connections.plan_connections
        ]
    )


def init_app(argv: list[str] | None = None) -> web.Application:
    """Build the app. This is the entry point of ``python -m aiohttp.web``."""
    app = web.Application()
    app.cleanup_ctx.append(hakuna_client)
    app.router.add_post("/events", publish_event)
    app.router.add_get("/orders/{order_id}/plan-connections", plan_connections)
    return app


if __name__ == "__main__":
    web.run_app(init_app(), host="127.0.0.1", port=8080)
