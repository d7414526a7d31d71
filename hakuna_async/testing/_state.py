"""The sandbox's stored data: received events, orders, carts, idempotency keys and requests.

Everything lives in memory for the life of the server or until ``reset()``, and
nothing expires. That includes idempotency keys, so a retry hours later is still
replayed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

import msgspec

from ..models import (
    EVENT_TYPES,
    Cart,
    CartAction,
    LineItemsCancelled,
    LineItemsFulfilled,
    LineItemsRefunded,
    OrderCancelled,
    OrderPlaced,
    OrderPlacedPayload,
)

__all__ = [
    "CartRecord",
    "OrderState",
    "ReceivedEvent",
    "RecordedRequest",
    "RequestLog",
    "SandboxState",
    "StoredResponse",
]

#: The ``type`` value of each event Struct, for example ``OrderPlaced`` -> ``order_placed``.
EVENT_TYPE_NAMES: dict[type[Any], str] = {
    event_type: str(event_type.__struct_config__.tag) for event_type in EVENT_TYPES
}


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event that ``POST /events`` accepted.

    ``event`` is the decoded Struct (``OrderPlaced``, ``LineItemsFulfilled``, ...) and
    ``idempotency_key`` the header sent with it, or ``None``.
    """

    event_id: str
    idempotency_key: str | None
    event: Any
    received_at: datetime

    @property
    def type(self) -> str:
        """The event type, for example ``order_placed``."""
        return EVENT_TYPE_NAMES[type(self.event)]

    @property
    def order_id(self) -> str:
        """The order the event belongs to."""
        order_id: str = self.event.payload.order_id
        return order_id


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request that reached the sandbox or a ``RawHTTPServer``, as received.

    ``headers`` is the case-insensitive multi-valued header mapping, with every header
    line received. An ``Authorization`` value other than the sandbox's own key is
    replaced by ``<redacted>``, so that a real key sent by mistake is never stored (the
    raw server stores every value as received). ``path`` is percent-decoded by the
    sandbox and kept as sent by the raw server. ``body`` is empty when the connection
    was reset before the body was read. ``status`` is the status sent (for the raw
    server: sent in whole or in part), or ``None`` when no response was sent. ``fault``
    names the fault type (for the raw server: the behaviour) applied.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    body_sha256: str
    idempotency_key: str | None
    status: int | None
    fault: str | None
    received_at: datetime

    def json(self) -> Any:
        """Decode the body as JSON."""
        return msgspec.json.decode(self.body)


class RequestLog(Sequence[RecordedRequest]):
    """The recorded requests, oldest first, bounded to the latest ``maxlen``."""

    def __init__(self, maxlen: int) -> None:
        self._records: deque[RecordedRequest] = deque(maxlen=maxlen)

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...

    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        if isinstance(index, slice):
            return list(self._records)[index]
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"RequestLog({len(self._records)} requests)"

    def append(self, record: RecordedRequest) -> None:
        """Add a record, dropping the oldest one when the log is full."""
        self._records.append(record)

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()

    def matching(
        self, *, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Return the records with this method and exact path (``None`` matches any)."""
        normalized_method = None if method is None else method.upper()
        return [
            record
            for record in self._records
            if (normalized_method is None or record.method == normalized_method)
            and (path is None or record.path == path)
        ]


@dataclass(slots=True)
class OrderState:
    """The state of one order, built from its received events.

    ``placed`` is the payload of the latest ``order_placed`` event, or ``None`` while
    only lifecycle events have arrived (they may come first under concurrent
    publishing). The unit counters are keyed by line item id and sum every event.
    """

    order_id: str
    placed: OrderPlacedPayload | None = None
    cancelled: bool = False
    fulfilled_units: Counter[str] = field(default_factory=Counter)
    refunded_units: Counter[str] = field(default_factory=Counter)
    cancelled_units: Counter[str] = field(default_factory=Counter)

    def apply(self, event: Any) -> None:
        """Update the state with one event of this order."""
        if isinstance(event, OrderPlaced):
            self.placed = event.payload
        elif isinstance(event, LineItemsFulfilled):
            _add_units(self.fulfilled_units, event.payload.line_items)
        elif isinstance(event, LineItemsRefunded):
            _add_units(self.refunded_units, event.payload.line_items)
        elif isinstance(event, LineItemsCancelled):
            _add_units(self.cancelled_units, event.payload.line_items)
        elif isinstance(event, OrderCancelled):
            self.cancelled = True

    def remaining_units(self, line_item_id: str, quantity: int) -> int:
        """Return the units of a line item that are neither cancelled nor refunded."""
        if self.cancelled:
            return 0
        return quantity - self.cancelled_units[line_item_id] - self.refunded_units[line_item_id]


def _add_units(counter: Counter[str], line_items: Sequence[Any]) -> None:
    for item in line_items:
        counter[item.id] += item.quantity


@dataclass(slots=True)
class CartRecord:
    """The latest update of a cart: its line items after the returned actions were applied."""

    cart: Cart
    actions: list[CartAction]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first successful response sent for an idempotency key, and its request."""

    method: str
    path: str
    body_sha256: str
    status: int
    body: bytes


class SandboxState:
    """The business data of one sandbox."""

    def __init__(self) -> None:
        self.events: list[ReceivedEvent] = []
        self.event_counts: Counter[str] = Counter()
        self.orders: dict[str, OrderState] = {}
        self.carts: dict[str, CartRecord] = {}
        # Cart id to the order id of its latest checkout notification.
        self.cart_checkouts: dict[str, str] = {}
        # The sandbox accepts exactly one API key, so the key alone is the idempotency
        # scope that Hakuna would form from (API key, idempotency key).
        self.idempotency: dict[str, StoredResponse] = {}

    def add_event(self, received: ReceivedEvent) -> None:
        """Store an accepted event and apply it to its order."""
        self.events.append(received)
        self.event_counts[received.type] += 1

        order_id = received.order_id
        order = self.orders.get(order_id)
        if order is None:
            order = OrderState(order_id=order_id)
            self.orders[order_id] = order
        order.apply(received.event)

    def clear(self) -> None:
        """Forget every event, order, cart and idempotency key."""
        self.events.clear()
        self.event_counts.clear()
        self.orders.clear()
        self.carts.clear()
        self.cart_checkouts.clear()
        self.idempotency.clear()
