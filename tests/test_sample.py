"""Tests of the seeded sample event generator and the sample files."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hakuna_async._errors import RequestValidationError
from hakuna_async._validation import prepare_event
from hakuna_async.models import (
    Event,
    LineItem,
    LineItemsCancelled,
    LineItemsFulfilled,
    LineItemsRefunded,
    OrderCancelled,
    OrderPlaced,
)
from hakuna_async.testing._catalogue import DEFAULT_PLANS, find_plans
from hakuna_async.testing.sample import (
    DEFAULT_COUNT,
    EVENTS_FILE,
    MIXED_FILE,
    START,
    generate_events,
    invalid_lines,
    main,
    spec_example_event,
    write_sample,
)

EVENT_TAGS: dict[type[Any], str] = {
    OrderPlaced: "order_placed",
    LineItemsFulfilled: "line_items_fulfilled",
    LineItemsRefunded: "line_items_refunded",
    LineItemsCancelled: "line_items_cancelled",
    OrderCancelled: "order_cancelled",
}
EXAMPLE_DOMAINS = {"example.com", "example.de", "example.at", "example.org", "example.net"}
event_decoder = msgspec.json.Decoder(Event)


@pytest.fixture(scope="module")
def events() -> list[Any]:
    return list(generate_events())


@pytest.fixture(scope="module")
def orders(events: list[Any]) -> list[OrderPlaced]:
    return [event for event in events if isinstance(event, OrderPlaced)]


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_sample(tmp_path_factory.mktemp("sample"))


def reference_of(item: LineItem) -> str | None:
    if isinstance(item.custom_properties, msgspec.UnsetType):
        return None
    reference = item.custom_properties.product_reference
    return reference if isinstance(reference, str) else None


def event_time(event: Any) -> datetime:
    payload = event.payload
    for name in ("placed_at", "fulfilled_at", "refunded_at", "cancelled_at"):
        if hasattr(payload, name):
            value: datetime = getattr(payload, name)
            return value
    raise AssertionError(f"no timestamp in {event!r}")


def read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:
        for line in lines:
            yield line.rstrip(b"\n")


# Determinism and size


def test_write_sample_same_seed_same_bytes(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "first")
    second = write_sample(tmp_path / "second")

    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[1].read_bytes() == second[1].read_bytes()


def test_write_sample_other_seed_differs(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "first", count=500, seed=1)
    second = write_sample(tmp_path / "second", count=500, seed=2)

    assert first[0].read_bytes() != second[0].read_bytes()
    assert first[1].read_bytes() != second[1].read_bytes()


def test_write_sample_file_names(sample_files: tuple[Path, Path]) -> None:
    assert sample_files[0].name == EVENTS_FILE
    assert sample_files[1].name == MIXED_FILE


def test_generate_events_default_count(events: list[Any]) -> None:
    assert DEFAULT_COUNT >= 5000
    assert len(events) == DEFAULT_COUNT


def test_generate_events_exact_count() -> None:
    assert len(list(generate_events(7))) == 7
    assert list(generate_events(0)) == []


def test_generate_events_shorter_run_is_prefix(events: list[Any]) -> None:
    shorter = list(generate_events(1234))

    assert shorter == events[:1234]


def test_generate_events_negative_count_raises() -> None:
    with pytest.raises(ValueError, match="count must be 0 or more"):
        generate_events(-1)


def test_generate_events_is_lazy() -> None:
    stream = generate_events(10**9)

    assert isinstance(stream, Iterator)
    assert isinstance(next(stream), OrderPlaced)


# Content


def test_generate_events_all_types_present(events: list[Any]) -> None:
    counts = Counter(type(event) for event in events)

    for event_type, tag in EVENT_TAGS.items():
        assert counts[event_type] > 0, f"no {tag} event"


def test_generate_events_first_is_spec_example(
    events: list[Any], redoc_order: dict[str, Any]
) -> None:
    published = event_decoder.decode(msgspec.json.encode(redoc_order))

    assert events[0] == published
    assert spec_example_event() == published
    assert events[0].payload.placed_at == START


def test_events_file_first_line_is_spec_example(
    sample_files: tuple[Path, Path], redoc_order: dict[str, Any]
) -> None:
    first_line = next(read_lines(sample_files[0]))
    published = event_decoder.decode(msgspec.json.encode(redoc_order))

    assert event_decoder.decode(first_line) == published


def test_generate_events_customers_de_and_at(orders: list[OrderPlaced]) -> None:
    countries = Counter(order.payload.customer_billing_address.country for order in orders)

    assert set(countries) == {"de", "at"}
    assert 0.1 < countries["at"] / len(orders) < 0.4


def test_generate_events_zip_codes_by_country(orders: list[OrderPlaced]) -> None:
    for order in orders[1:]:
        address = order.payload.customer_billing_address
        digits = 5 if address.country == "de" else 4
        assert re.fullmatch(rf"\d{{{digits}}}", address.zip), order.payload.order_id


def test_generate_events_house_numbers_present(orders: list[OrderPlaced]) -> None:
    layouts: Counter[str] = Counter()
    for order in orders[1:]:
        address = order.payload.customer_billing_address
        line_2 = address.address_line_2 if isinstance(address.address_line_2, str) else ""
        if re.search(r" \d+\w?(/\d+)?$", address.address_line_1):
            layouts["number in line 1"] += 1
        elif re.fullmatch(r"\d+\w?(/\d+)?", line_2):
            layouts["number in line 2"] += 1
        else:
            layouts["no number"] += 1

    assert layouts["number in line 1"] > 0
    assert layouts["number in line 2"] > 0
    assert layouts["no number"] == 0


def test_generate_events_emails_at_example_domains(orders: list[OrderPlaced]) -> None:
    for order in orders:
        domain = order.payload.customer.email.rpartition("@")[2]
        assert domain in EXAMPLE_DOMAINS, order.payload.customer.email


def test_generate_events_currency_eur(orders: list[OrderPlaced]) -> None:
    assert {order.payload.order_currency for order in orders} == {"eur"}


def test_generate_events_some_cart_ids(orders: list[OrderPlaced]) -> None:
    with_cart = sum(isinstance(order.payload.cart_id, str) for order in orders)

    assert 0 < with_cart < len(orders)


def test_generate_events_quantities_above_one(orders: list[OrderPlaced]) -> None:
    items = [item for order in orders for item in order.payload.line_items]

    assert any(item.quantity > 1 and reference_of(item) is None for item in items)
    assert any(item.quantity > 1 and reference_of(item) is not None for item in items)


def test_generate_events_categories_on_most_product_lines(orders: list[OrderPlaced]) -> None:
    product_lines = [
        item for order in orders for item in order.payload.line_items if reference_of(item) is None
    ]
    with_category = sum(isinstance(item.product_category, str) for item in product_lines)

    assert with_category / len(product_lines) > 0.8
    assert with_category < len(product_lines)


def test_generate_events_protected_share(orders: list[OrderPlaced]) -> None:
    protected = sum(
        any(reference_of(item) is not None for item in order.payload.line_items) for order in orders
    )

    assert 0.3 <= protected / len(orders) <= 0.4


def test_generate_events_protection_lines_match_catalogue(orders: list[OrderPlaced]) -> None:
    for order in orders:
        payload = order.payload
        products = {
            item.product_id: item for item in payload.line_items if reference_of(item) is None
        }
        for item in payload.line_items:
            reference = reference_of(item)
            if reference is None:
                continue
            assert reference in products, f"{payload.order_id}: {reference} not in the order"
            product = products[reference]
            category = product.product_category
            plans = find_plans(
                DEFAULT_PLANS,
                category if isinstance(category, str) else None,
                product.price_amount,
                payload.order_currency,
            )
            plan_prices = {plan.merchant_product_id: plan.price_amount for plan in plans}
            assert item.product_id in plan_prices, f"{payload.order_id}: {item.product_id}"
            assert item.price_amount == plan_prices[item.product_id]
            assert item.product_brand == "Hakuna"
            assert item.quantity <= product.quantity


def test_events_file_every_line_valid(sample_files: tuple[Path, Path]) -> None:
    lines = 0
    for line in read_lines(sample_files[0]):
        prepare_event(line)
        lines += 1

    assert lines == DEFAULT_COUNT


def test_generate_events_every_event_valid(events: list[Any]) -> None:
    for event in events:
        prepare_event(event)


# Lifecycles


def test_generate_events_time_order(events: list[Any]) -> None:
    times = [event_time(event) for event in events]

    out_of_order = [index for index in range(1, len(times)) if times[index] < times[index - 1]]

    assert all(time.tzinfo is not None for time in times)
    assert out_of_order == []


def test_generate_events_times_increase_per_order(events: list[Any]) -> None:
    last_time: dict[str, datetime] = {}
    for event in events:
        order_id = event.payload.order_id
        time = event_time(event)
        if order_id in last_time:
            assert time > last_time[order_id], order_id
        last_time[order_id] = time


def test_generate_events_lifecycle_follows_placement(events: list[Any]) -> None:
    placed: set[str] = set()
    for event in events:
        order_id = event.payload.order_id
        if isinstance(event, OrderPlaced):
            assert order_id not in placed, f"{order_id} placed twice"
            placed.add(order_id)
        else:
            assert order_id in placed, f"{EVENT_TAGS[type(event)]} before order_placed"


def test_generate_events_order_cancelled_is_last(events: list[Any]) -> None:
    cancelled: set[str] = set()
    for event in events:
        order_id = event.payload.order_id
        assert order_id not in cancelled, f"{EVENT_TAGS[type(event)]} after order_cancelled"
        if isinstance(event, OrderCancelled):
            cancelled.add(order_id)

    assert cancelled


class LineUnits:
    """The units of one line fulfilled, cancelled and refunded so far."""

    def __init__(self, quantity: int, product_line_id: str | None) -> None:
        self.quantity = quantity
        self.product_line_id = product_line_id
        self.fulfilled = 0
        self.cancelled = 0
        self.refunded = 0

    @property
    def open_units(self) -> int:
        return self.quantity - self.cancelled - self.refunded


def replay_lines(events: list[Any]) -> Iterator[tuple[Any, dict[str, LineUnits]]]:
    """Yield each lifecycle event with the units of its order's lines before the event."""
    lines: dict[str, dict[str, LineUnits]] = {}
    for event in events:
        payload = event.payload
        if isinstance(event, OrderPlaced):
            line_by_product = {
                item.product_id: item.id
                for item in payload.line_items
                if reference_of(item) is None
            }
            lines[payload.order_id] = {
                item.id: LineUnits(item.quantity, line_by_product.get(reference_of(item) or ""))
                for item in payload.line_items
            }
        elif not isinstance(event, OrderCancelled):
            yield event, lines[payload.order_id]


def test_generate_events_lifecycle_quantities_within_line(events: list[Any]) -> None:
    for event, lines in replay_lines(events):
        order_id = event.payload.order_id
        ids = [item.id for item in event.payload.line_items]
        assert len(ids) == len(set(ids)), f"{order_id}: a line twice in one event"

        for item in event.payload.line_items:
            line = lines[item.id]
            if isinstance(event, LineItemsFulfilled):
                line.fulfilled += item.quantity
            elif isinstance(event, LineItemsCancelled):
                line.cancelled += item.quantity
            else:
                line.refunded += item.quantity
            assert line.fulfilled + line.cancelled <= line.quantity, f"{order_id} {item.id}"
            assert line.cancelled + line.refunded <= line.quantity, f"{order_id} {item.id}"
            if line.product_line_id is None:
                assert line.refunded <= line.fulfilled, f"{order_id} {item.id}"


def test_generate_events_protection_follows_product(events: list[Any]) -> None:
    checked = 0
    for event, lines in replay_lines(events):
        if not isinstance(event, (LineItemsRefunded, LineItemsCancelled)):
            for item in event.payload.line_items:
                lines[item.id].fulfilled += item.quantity
            continue

        quantities = {item.id: item.quantity for item in event.payload.line_items}
        for line_id, line in lines.items():
            product_units = quantities.get(line.product_line_id or "", 0)
            expected = min(product_units, line.open_units)
            if line.product_line_id is not None and expected > 0:
                assert quantities.get(line_id) == expected, f"{event.payload.order_id} {line_id}"
                checked += 1
        for item in event.payload.line_items:
            if isinstance(event, LineItemsRefunded):
                lines[item.id].refunded += item.quantity
            else:
                lines[item.id].cancelled += item.quantity

    assert checked > 0


def test_generate_events_partial_shipments_present(events: list[Any]) -> None:
    shipments = Counter(
        event.payload.order_id for event in events if isinstance(event, LineItemsFulfilled)
    )

    assert 2 in shipments.values()


# Invalid lines

INVALID_LINES = invalid_lines()


@pytest.mark.parametrize("invalid", INVALID_LINES, ids=[line.kind for line in INVALID_LINES])
def test_invalid_lines_fail_at_field(invalid: Any) -> None:
    with pytest.raises(RequestValidationError) as raised:
        prepare_event(invalid.line)

    assert raised.value.field == invalid.field


def test_invalid_lines_kinds() -> None:
    kinds = [line.kind for line in INVALID_LINES]

    assert len(kinds) == len(set(kinds))
    assert {
        "currency-uppercase",
        "quantity-zero",
        "placed-at-missing",
        "protection-references-line-item-id",
        "amount-float",
        "timestamp-without-offset",
        "event-type-unknown",
        "json-truncated",
        "country-uppercase",
    } <= set(kinds)


def test_invalid_lines_single_lines() -> None:
    for invalid in INVALID_LINES:
        assert b"\n" not in invalid.line, invalid.kind


def test_invalid_lines_truncated_is_not_json() -> None:
    truncated = next(line for line in INVALID_LINES if line.kind == "json-truncated")

    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(truncated.line)


def test_invalid_lines_amount_is_float() -> None:
    invalid = next(line for line in INVALID_LINES if line.kind == "amount-float")
    amount = msgspec.json.decode(invalid.line)["payload"]["line_items"][0]["price_amount"]

    assert isinstance(amount, float)


def test_invalid_lines_deterministic() -> None:
    assert invalid_lines(seed=5) == invalid_lines(seed=5)
    assert invalid_lines(seed=5) != invalid_lines(seed=6)


# The mixed file


def test_mixed_file_invalid_share(sample_files: tuple[Path, Path]) -> None:
    failed: list[str] = []
    total = 0
    for line in read_lines(sample_files[1]):
        total += 1
        try:
            prepare_event(line)
        except RequestValidationError as error:
            failed.append(error.field)

    assert 0.005 <= len(failed) / total <= 0.015
    assert Counter(failed) == Counter(line.field for line in INVALID_LINES)


def test_mixed_file_invalid_lines_spread(sample_files: tuple[Path, Path]) -> None:
    invalid = {line.line for line in INVALID_LINES}
    positions = [index for index, line in enumerate(read_lines(sample_files[1])) if line in invalid]

    assert len(positions) == len(INVALID_LINES)
    assert positions[0] < 500 < positions[-1]


def test_mixed_file_orders_apart_from_events_file(sample_files: tuple[Path, Path]) -> None:
    def placed_order_ids(path: Path) -> set[str]:
        order_ids: set[str] = set()
        for line in read_lines(path):
            try:
                event = event_decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
            if isinstance(event, OrderPlaced):
                order_ids.add(event.payload.order_id)
        return order_ids

    assert placed_order_ids(sample_files[0]).isdisjoint(placed_order_ids(sample_files[1]))


def test_write_sample_small_count(tmp_path: Path) -> None:
    events_path, mixed_path = write_sample(tmp_path, count=50)

    assert len(list(read_lines(events_path))) == 50
    assert len(list(read_lines(mixed_path))) == 51


# Command line


def test_main_prints_files_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--out", str(tmp_path), "--count", "300", "--seed", "7"])
    output = capsys.readouterr().out

    assert status == 0
    assert f"{tmp_path / EVENTS_FILE}: 300 lines" in output
    assert str(tmp_path / MIXED_FILE) in output
    assert re.search(r"order_placed\s+\d+", output)
    assert "% with protection" in output
    assert "customers by country: " in output
    assert (tmp_path / EVENTS_FILE).read_bytes() == write_sample(
        tmp_path / "again", count=300, seed=7
    )[0].read_bytes()


def test_main_negative_count_exits(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--out", str(tmp_path), "--count", "-5"])

    assert raised.value.code == 2
