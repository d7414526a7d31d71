"""The sandbox's plan catalogue: which protection plan matches which product.

Hakuna configures products and plans per merchant. The sandbox replaces that with a
small catalogue keyed by product category and price band. The sample data generator uses
the same catalogue, so that its protection lines carry the plans the sandbox offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class CatalogPlan:
    """A protection plan offered for products of some categories within a price band.

    Prices are in minor units (cents); ``min_price`` is inclusive, ``max_price``
    exclusive. ``title`` maps a language code to the plan's display name.
    """

    merchant_product_id: str
    title: dict[str, str]
    categories: frozenset[str]
    min_price: int
    max_price: int
    price_amount: int
    currency: str = "eur"
    countries: tuple[str, ...] = field(default=("de", "at"))

    def matches(self, category: str | None, price_amount: int, currency: str) -> bool:
        """Tell whether this plan can protect a product of that category and unit price."""
        return (
            category is not None
            and category in self.categories
            and self.min_price <= price_amount < self.max_price
            and currency == self.currency
        )


def _plan(
    product_id: str, title: str, categories: set[str], band: tuple[int, int], price: int
) -> CatalogPlan:
    return CatalogPlan(
        merchant_product_id=product_id,
        title={"de": title, "en": title},
        categories=frozenset(categories),
        min_price=band[0],
        max_price=band[1],
        price_amount=price,
    )


_PHONES = {"smartphones", "electronics"}
_COMPUTERS = {"laptops", "tablets", "electronics"}
_SMALL = {"headphones", "smartwatches", "cameras", "consoles", "electronics"}
_BIKES = {"bikes", "e-bikes"}

#: Categories that some plan covers; products of other categories never match.
PROTECTABLE_CATEGORIES = frozenset().union(_PHONES, _COMPUTERS, _SMALL, _BIKES)

# The first entry is the plan of Hakuna's published example: an iPhone 14 at 1,129.00 EUR
# is offered "Hakuna.care protection" (pl-prd-hakuna) at 84.64 EUR.
DEFAULT_PLANS: tuple[CatalogPlan, ...] = (
    _plan("pl-prd-hakuna", "Hakuna.care protection", _PHONES, (50_000, 150_000), 8_464),
    _plan("pl-prd-hakuna-phone-s", "Hakuna.care protection S", _PHONES, (10_000, 50_000), 3_999),
    _plan(
        "pl-prd-hakuna-phone-xl", "Hakuna.care protection XL", _PHONES, (150_000, 300_000), 12_999
    ),
    _plan(
        "pl-prd-hakuna-computer",
        "Hakuna.care computer protection",
        _COMPUTERS,
        (30_000, 400_000),
        14_999,
    ),
    _plan("pl-prd-hakuna-gadget", "Hakuna.care gadget protection", _SMALL, (5_000, 100_000), 2_499),
    _plan(
        "pl-prd-hakuna-bike",
        "Hakuna.care bike theft protection",
        _BIKES,
        (30_000, 1_000_000),
        9_999,
    ),
)


def find_plans(
    plans: tuple[CatalogPlan, ...], category: str | None, price_amount: int, currency: str
) -> list[CatalogPlan]:
    """Return the plans that match a product, in catalogue order."""
    return [plan for plan in plans if plan.matches(category, price_amount, currency)]
