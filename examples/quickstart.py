"""Publish one order and read back which line protects which, against a local sandbox.

Run it with ``.venv/bin/python examples/quickstart.py``. Against Hakuna itself, drop
the sandbox and create the client with ``HakunaClient(environment="sandbox")`` and
``HAKUNA_API_KEY`` set.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hakuna_async import HakunaClient
from hakuna_async.models import (
    BillingAddress,
    Customer,
    CustomProperties,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
)
from hakuna_async.testing import SandboxServer

ORDER = OrderPlaced(
    payload=OrderPlacedPayload(
        order_id="ord-1001",
        placed_at=datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
        order_currency="eur",
        customer=Customer(first_name="Max", last_name="Mustermann", email="max@example.com"),
        customer_billing_address=BillingAddress(
            address_line_1="Musterstrasse 1", city="Musterstadt", country="de", zip="12345"
        ),
        line_items=[
            LineItem(
                id="li-1",
                quantity=1,
                price_amount=112900,  # minor units: 1,129.00 EUR
                product_id="prd-iphone14",
                product_title="iPhone 14",
                product_brand="Apple",
                product_category="smartphones",
            ),
            LineItem(
                id="li-2",
                quantity=1,
                price_amount=8464,
                product_id="pl-prd-hakuna",
                product_title="Hakuna.care protection",
                product_brand="Hakuna",
                # A protection line names the product_id of the product it protects.
                custom_properties=CustomProperties(product_reference="prd-iphone14"),
            ),
        ],
    )
)


async def main() -> list[tuple[str, str | None]]:
    async with (
        SandboxServer() as sandbox,
        HakunaClient(sandbox.api_key, base_url=sandbox.url) as client,
    ):
        accepted = await client.events.publish(ORDER)
        print(f"published {accepted.event_id}")

        connections = await client.orders.plan_connections("ord-1001")
        pairs = [
            (c.product_line_item_id, c.plan_line_item_id) for c in connections.plan_connections
        ]
        for product_line, plan_line in pairs:
            print(f"{product_line} is protected by {plan_line}")
        return pairs


if __name__ == "__main__":
    asyncio.run(main())
