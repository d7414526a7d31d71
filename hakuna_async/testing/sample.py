"""Seeded, realistic order events for the demo, tests and benchmarks.

``generate_events`` streams the events of a German and Austrian shop for phones,
computers, gadgets and bikes: orders with and without protection, then fulfilments,
refunds and cancellations, interleaved in time order. ``invalid_lines`` builds the
mistakes shops really make, one per line, and ``write_sample`` writes both as JSON
lines::

    python -m hakuna_async.testing.sample --out build/sample --count 5000

The same seed and count give the same events and the same bytes on every run. Every
random draw goes through ``random.Random.random()`` and plain arithmetic, because
``random()`` is the one method whose sequence Python promises to keep for a seed
across versions (docs.python.org, the ``random`` module's "Notes on Reproducibility").
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec

from ..models import (
    BillingAddress,
    Customer,
    CustomProperties,
    Event,
    LineItem,
    LineItemQuantity,
    LineItemsCancelled,
    LineItemsCancelledPayload,
    LineItemsFulfilled,
    LineItemsFulfilledPayload,
    LineItemsRefunded,
    LineItemsRefundedPayload,
    OrderCancelled,
    OrderCancelledPayload,
    OrderPlaced,
    OrderPlacedPayload,
)
from ._catalogue import DEFAULT_PLANS, CatalogPlan, find_plans

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_SEED",
    "EVENTS_FILE",
    "MIXED_FILE",
    "MIXED_VALID_LINES",
    "START",
    "InvalidLine",
    "generate_events",
    "invalid_lines",
    "main",
    "spec_example_event",
    "write_sample",
]

#: The seed used when none is given: the date of Hakuna's published example order.
DEFAULT_SEED = 20220220
DEFAULT_COUNT = 5000

#: ``placed_at`` of Hakuna's published example, the first event of every stream.
START = datetime(2022, 2, 20, tzinfo=UTC)

EVENTS_FILE = "events.jsonl"
MIXED_FILE = "events-with-errors.jsonl"
#: Valid lines in the mixed file (fewer when ``count`` is smaller).
MIXED_VALID_LINES = 1000

_CURRENCY = "eur"
_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

T = TypeVar("T")


# Random draws -----------------------------------------------------------------------


class _Random:
    """Random draws built only on ``random.Random.random()``.

    ``randint``, ``choice``, ``shuffle`` and ``getrandbits`` may change between Python
    versions, but ``random()`` keeps its sequence for a seed. So the events should not
    change with the Python version, though only Python 3.11 was tried.
    """

    def __init__(self, seed: int | str) -> None:
        self._random = random.Random(seed)

    def fraction(self) -> float:
        return self._random.random()

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def integer(self, low: int, high: int) -> int:
        """Return an integer from ``low`` to ``high``, both inclusive."""
        return low + int(self._random.random() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self._random.random() * len(items))]

    def pick_weighted(self, items: Sequence[T], weights: Sequence[int]) -> T:
        target = self._random.random() * sum(weights)
        for item, weight in zip(items, weights, strict=True):
            target -= weight
            if target < 0:
                return item
        return items[-1]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        result = list(items)
        for index in range(len(result) - 1, 0, -1):
            other = self.integer(0, index)
            result[index], result[other] = result[other], result[index]
        return result

    def uuid4(self) -> str:
        bits = 0
        for _ in range(4):
            bits = (bits << 32) | int(self._random.random() * 2**32)
        return str(uuid.UUID(int=bits, version=4))


# Product catalogue ------------------------------------------------------------------


class _Product(NamedTuple):
    """A product the shop sells.

    ``category`` is ``None`` for a product the shop sends without a category, and
    ``price_amount`` is the unit price in cents. ``weight`` is the relative popularity
    and ``max_quantity`` the most units of it one order line has.
    """

    product_id: str
    title: str
    brand: str
    category: str | None
    price_amount: int
    weight: int = 1
    max_quantity: int = 1


class _Accessory(NamedTuple):
    """A product bought next to a main product: ``goes_with`` contains product_id prefixes."""

    product: _Product
    goes_with: tuple[str, ...]


def _accessory(
    product_id: str,
    title: str,
    brand: str,
    category: str | None,
    price_amount: int,
    max_quantity: int,
    goes_with: tuple[str, ...],
) -> _Accessory:
    product = _Product(product_id, title, brand, category, price_amount, 1, max_quantity)
    return _Accessory(product, goes_with)


# Columns: product_id, title, brand, category, unit price in cents, weight, max_quantity.
# Some products are outside every plan's price band (too cheap or too expensive), so
# that some orders of protectable categories cannot be protected, as in a real shop.
# The first product is the one of Hakuna's published example, with its category.
# fmt: off
_MAIN_PRODUCTS: tuple[_Product, ...] = (
    _Product("prd-iphone14", "iPhone 14", "Apple", "electronics", 112_900, 6, 2),
    _Product("prd-iphone15-128", "iPhone 15 128 GB Schwarz", "Apple", "smartphones", 94_900, 8, 2),
    _Product("prd-iphone15pro-256", "iPhone 15 Pro 256 GB Titan Natur",
             "Apple", "smartphones", 134_900, 6, 2),
    _Product("prd-iphone15promax-1tb", "iPhone 15 Pro Max 1 TB Titan Blau",
             "Apple", "smartphones", 194_900, 2),
    _Product("prd-galaxy-s24-128", "Galaxy S24 128 GB Onyx Black",
             "Samsung", "smartphones", 89_900, 7, 2),
    _Product("prd-galaxy-a55-128", "Galaxy A55 5G 128 GB Awesome Iceblue",
             "Samsung", "smartphones", 47_900, 6, 3),
    _Product("prd-galaxy-zfold5-512", "Galaxy Z Fold5 512 GB Phantom Black",
             "Samsung", "smartphones", 211_900),
    _Product("prd-pixel8-128", "Pixel 8 128 GB Obsidian", "Google", "smartphones", 79_900, 4, 2),
    _Product("prd-redmi-note13pro-256", "Redmi Note 13 Pro 5G 256 GB",
             "Xiaomi", "smartphones", 39_999, 4, 2),
    _Product("prd-fairphone5-256", "Fairphone 5 256 GB Matte Black",
             "Fairphone", "smartphones", 69_900, 2),
    _Product("prd-emporia-smart5", "SMART.5 Seniorenhandy", "emporia", "smartphones", 24_900, 2),
    _Product("prd-nokia-g22-64", "G22 64 GB Lagoon Blue", "Nokia", "smartphones", 17_900, 2, 2),
    _Product("prd-macbookair13-m2", "MacBook Air 13 Zoll M2 256 GB Mitternacht",
             "Apple", "laptops", 119_900, 5),
    _Product("prd-thinkpad-e14g5", "ThinkPad E14 Gen 5 Notebook 16 GB RAM",
             "Lenovo", "laptops", 89_900, 3, 2),
    _Product("prd-xps13plus", "XPS 13 Plus 9320 Notebook", "Dell", "laptops", 169_900, 2),
    _Product("prd-rog-strix-g16", "ROG Strix G16 Gaming-Laptop RTX 4060",
             "ASUS", "laptops", 179_900, 2),
    _Product("prd-pavilion15", "Pavilion 15 Notebook 512 GB SSD", "HP", "laptops", 64_900, 3),
    _Product("prd-chromebook314", "Chromebook 314", "Acer", "laptops", 27_900, 2),
    _Product("prd-ipad10-64", "iPad 10. Generation 64 GB WLAN Silber",
             "Apple", "tablets", 44_900, 5, 2),
    _Product("prd-ipadpro11-256", "iPad Pro 11 Zoll 256 GB WLAN Space Grau",
             "Apple", "tablets", 109_900, 2),
    _Product("prd-galaxy-tab-s9fe", "Galaxy Tab S9 FE 128 GB WLAN",
             "Samsung", "tablets", 44_900, 3, 2),
    _Product("prd-fire-hd10", "Fire HD 10 Tablet 32 GB", "Amazon", "tablets", 14_999, 2, 2),
    _Product("prd-sony-wh1000xm5", "WH-1000XM5 kabelloser Kopfhörer mit Noise Cancelling",
             "Sony", "headphones", 37_900, 5, 2),
    _Product("prd-airpods-pro2", "AirPods Pro (2. Generation) mit MagSafe Ladecase (USB-C)",
             "Apple", "headphones", 27_900, 7, 3),
    _Product("prd-bose-qc-ultra", "QuietComfort Ultra Headphones", "Bose", "headphones", 44_995, 2),
    _Product("prd-momentum4", "MOMENTUM 4 Wireless", "Sennheiser", "headphones", 34_999, 2),
    _Product("prd-jbl-tune520bt", "Tune 520BT On-Ear-Kopfhörer", "JBL", "headphones", 4_999, 4, 3),
    _Product("prd-watch-s9-41", "Apple Watch Series 9 GPS 41 mm Aluminium",
             "Apple", "smartwatches", 44_900, 5, 2),
    _Product("prd-forerunner265", "Forerunner 265 GPS-Laufuhr",
             "Garmin", "smartwatches", 44_999, 3),
    _Product("prd-galaxy-watch6-44", "Galaxy Watch6 44 mm Bluetooth",
             "Samsung", "smartwatches", 31_900, 3, 2),
    _Product("prd-fitbit-charge6", "Charge 6 Fitness-Tracker",
             "Fitbit", "smartwatches", 15_995, 3, 2),
    _Product("prd-eos-r50-kit", "EOS R50 Systemkamera mit RF-S 18-45 mm Objektiv",
             "Canon", "cameras", 79_900, 2),
    _Product("prd-alpha7iv", "Alpha 7 IV Vollformat-Systemkamera Gehäuse",
             "Sony", "cameras", 249_900),
    _Product("prd-gopro-hero12", "HERO12 Black Action-Cam", "GoPro", "cameras", 44_999, 3, 2),
    _Product("prd-osmo-pocket3", "Osmo Pocket 3", "DJI", "cameras", 53_900, 2),
    _Product("prd-ps5-slim-digital", "PlayStation 5 Slim Digital Edition",
             "Sony", "consoles", 44_999, 5),
    _Product("prd-switch-oled", "Switch OLED-Modell Weiß", "Nintendo", "consoles", 34_999, 5, 2),
    _Product("prd-xbox-series-x", "Xbox Series X 1 TB", "Microsoft", "consoles", 54_999, 3),
    _Product("prd-steamdeck-oled-512", "Steam Deck OLED 512 GB", "Valve", "consoles", 56_900, 2),
    _Product("prd-cube-aim-race-29", "Aim Race 29 Zoll Mountainbike",
             "Cube", "bikes", 79_900, 3, 2),
    _Product("prd-ktm-life-joy", "Life Joy Trekkingrad 28 Zoll", "KTM", "bikes", 89_999, 2, 2),
    _Product("prd-canyon-endurace7", "Endurace 7 Rennrad", "Canyon", "bikes", 199_900),
    _Product("prd-woom-3", "woom 3 Kinderfahrrad 16 Zoll", "woom", "bikes", 46_900, 2, 2),
    _Product("prd-puky-lr-m", "Laufrad LR M", "Puky", "bikes", 6_999, 2, 2),
    _Product("prd-cube-kathmandu-hybrid", "Kathmandu Hybrid Pro 750 Trekking-E-Bike",
             "Cube", "e-bikes", 349_900, 2),
    _Product("prd-rm-load4-75", "Load4 75 Lastenrad", "Riese & Müller", "e-bikes", 749_900),
    _Product("prd-gazelle-ultimate-c380", "Ultimate C380 HMB City-E-Bike",
             "Gazelle", "e-bikes", 379_900),
    _Product("prd-ktm-macina-style-720", "Macina Style 720 E-Bike",
             "KTM", "e-bikes", 329_999, 2, 2),
    _Product("prd-stromer-st3", "ST3 Pinion S-Pedelec", "Stromer", "e-bikes", 1_049_000),
)
# fmt: on
_MAIN_WEIGHTS = tuple(product.weight for product in _MAIN_PRODUCTS)

_PHONES = ("prd-iphone", "prd-galaxy-s", "prd-galaxy-a", "prd-pixel", "prd-redmi", "prd-fairphone")
_USB_C_DEVICES = (
    "prd-iphone15", "prd-galaxy", "prd-pixel", "prd-redmi", "prd-fairphone", "prd-ipad",
    "prd-macbook", "prd-xps", "prd-thinkpad", "prd-steamdeck", "prd-switch",
)  # fmt: skip
_BIKES = ("prd-cube", "prd-ktm", "prd-canyon", "prd-woom", "prd-rm-", "prd-gazelle", "prd-stromer")
_E_BIKES_WITH_BOSCH = ("prd-cube-kathmandu", "prd-rm-", "prd-gazelle-ultimate")

# Columns: product_id, title, brand, category, unit price in cents, max_quantity,
# goes_with. No plan covers these categories, and some products have no category.
# The first accessory is the case of Hakuna's published example, without a category
# as there. The Bosch battery is expensive, but no plan covers spare parts.
# fmt: off
_ACCESSORIES: tuple[_Accessory, ...] = (
    _accessory("prd-bb-32", "Silikon Case iPhone 14", "Apple", None, 1_200, 2, ("prd-iphone14",)),
    _accessory("prd-iphone15-case", "Silikon Case mit MagSafe iPhone 15", "Apple",
               "phone-cases", 5_900, 2, ("prd-iphone15",)),
    _accessory("prd-panzerglas-iphone15", "Panzerglas Displayschutz iPhone 15", "PanzerGlass",
               "screen-protectors", 2_999, 3, ("prd-iphone15",)),
    _accessory("prd-galaxy-s24-cover", "Silicone Case Galaxy S24", "Samsung",
               "phone-cases", 2_999, 2, ("prd-galaxy-s24",)),
    _accessory("prd-usbc-netzteil-20w", "USB-C Netzteil 20 W", "Apple",
               "chargers", 2_500, 2, ("prd-iphone", "prd-ipad", "prd-airpods")),
    _accessory("prd-anker-usbc-kabel-2m", "USB-C auf USB-C Ladekabel 2 m", "Anker",
               "cables", 1_499, 3, _USB_C_DEVICES),
    _accessory("prd-lightning-kabel-1m", "Lightning auf USB-C Kabel 1 m", "Apple",
               "cables", 2_500, 3, ("prd-iphone14",)),
    _accessory("prd-tomtoc-sleeve-13", "Laptophülle 13 Zoll Grau", "tomtoc",
               "bags", 2_999, 1, ("prd-macbookair13", "prd-xps13", "prd-ipadpro")),
    _accessory("prd-sandisk-microsd-128", "microSDXC Speicherkarte 128 GB Extreme",
               "SanDisk", "memory-cards", 1_899, 3,
               ("prd-gopro", "prd-steamdeck", "prd-switch", "prd-galaxy-tab", "prd-osmo")),
    _accessory("prd-sandisk-sd-128", "SDXC Speicherkarte 128 GB Extreme PRO", "SanDisk",
               "memory-cards", 3_299, 2, ("prd-eos", "prd-alpha")),
    _accessory("prd-dualsense", "DualSense Wireless-Controller Weiß", "Sony",
               "gaming-accessories", 6_999, 2, ("prd-ps5",)),
    _accessory("prd-joycon-pair", "Joy-Con Paar Neon-Rot/Neon-Blau", "Nintendo",
               "gaming-accessories", 7_499, 1, ("prd-switch",)),
    _accessory("prd-abus-bordo-6000", "Faltschloss Bordo 6000 Schwarz", "ABUS",
               "bike-accessories", 8_999, 2, _BIKES),
    _accessory("prd-abus-macator-m", "Fahrradhelm Macator Größe M", "ABUS",
               "bike-accessories", 7_999, 2, _BIKES),
    _accessory("prd-bosch-powerpack-500", "PowerPack 500 Ersatzakku", "Bosch",
               "bike-accessories", 79_900, 1, _E_BIKES_WITH_BOSCH),
    _accessory("prd-apple-pencil2", "Apple Pencil (2. Generation)", "Apple",
               "tablet-accessories", 14_900, 1, ("prd-ipadpro",)),
    _accessory("prd-anker-powerbank-10k", "PowerCore 10.000 mAh Powerbank", "Anker",
               None, 2_999, 2, _PHONES),
    _accessory("prd-hama-reinigungsset", "Displayreinigungsset 200 ml", "Hama",
               None, 999, 2, ("prd-macbook", "prd-thinkpad", "prd-ipad", "prd-pavilion")),
    _accessory("prd-watch-sportarmband-41", "Sportarmband 41 mm Sturmblau", "Apple",
               "watch-bands", 4_900, 2, ("prd-watch",)),
)
# fmt: on

# Shares of orders, tuned so that a default run has about 35% protected orders.
_ACCESSORY_ONLY_SHARE = 0.12
_SECOND_MAIN_PRODUCT_SHARE = 0.08
_ACCESSORY_SHARE = 0.3
_MAX_ACCESSORIES = 2
_PROTECTION_SHARE = 0.4
_PARTIAL_PROTECTION_SHARE = 0.3
_CART_ID_SHARE = 0.6


# Customers --------------------------------------------------------------------------


class _Place(NamedTuple):
    zip: str
    city: str


_DE_PLACES = (
    _Place("10115", "Berlin"),
    _Place("10999", "Berlin"),
    _Place("12049", "Berlin"),
    _Place("13353", "Berlin"),
    _Place("20095", "Hamburg"),
    _Place("22767", "Hamburg"),
    _Place("80331", "München"),
    _Place("81667", "München"),
    _Place("50667", "Köln"),
    _Place("50823", "Köln"),
    _Place("60311", "Frankfurt am Main"),
    _Place("70173", "Stuttgart"),
    _Place("40213", "Düsseldorf"),
    _Place("04109", "Leipzig"),
    _Place("01067", "Dresden"),
    _Place("90402", "Nürnberg"),
    _Place("30159", "Hannover"),
    _Place("28195", "Bremen"),
    _Place("45127", "Essen"),
    _Place("44135", "Dortmund"),
    _Place("79098", "Freiburg im Breisgau"),
    _Place("48143", "Münster"),
    _Place("69117", "Heidelberg"),
    _Place("93047", "Regensburg"),
    _Place("18055", "Rostock"),
    _Place("24103", "Kiel"),
    _Place("55116", "Mainz"),
    _Place("86150", "Augsburg"),
    _Place("53111", "Bonn"),
    _Place("99084", "Erfurt"),
    _Place("14467", "Potsdam"),
    _Place("76133", "Karlsruhe"),
)
_AT_PLACES = (
    _Place("1010", "Wien"),
    _Place("1030", "Wien"),
    _Place("1050", "Wien"),
    _Place("1070", "Wien"),
    _Place("1090", "Wien"),
    _Place("1100", "Wien"),
    _Place("1160", "Wien"),
    _Place("1220", "Wien"),
    _Place("8010", "Graz"),
    _Place("4020", "Linz"),
    _Place("5020", "Salzburg"),
    _Place("6020", "Innsbruck"),
    _Place("9020", "Klagenfurt am Wörthersee"),
    _Place("9500", "Villach"),
    _Place("4600", "Wels"),
    _Place("3100", "St. Pölten"),
    _Place("6850", "Dornbirn"),
    _Place("6900", "Bregenz"),
    _Place("8700", "Leoben"),
    _Place("3500", "Krems an der Donau"),
    _Place("2500", "Baden"),
)

_DE_FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Maximilian", "Leonie", "Jonas", "Marie", "Felix", "Lena",
    "Paul", "Julia", "Tobias", "Katharina", "Florian", "Sabine", "Thomas", "Michael",
    "Stefanie", "Andreas", "Petra", "Jürgen", "Ursula", "Mehmet", "Özlem", "Aleksandra",
    "Jan", "Hannah", "Niklas", "Mia", "Björn", "Gülsen", "Dirk", "Birgit", "Till",
)  # fmt: skip
_AT_FIRST_NAMES = (
    "Sebastian", "Valentina", "Lorenz", "Magdalena", "Florian", "Theresa", "Matthias",
    "Johanna", "Stefan", "Elisabeth", "Christoph", "Barbara", "Markus", "Verena",
    "Dominik", "Katharina", "Bernhard", "Lea", "Gerhard", "Anja", "Josef", "Marlene",
)  # fmt: skip
_DE_LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Werner", "Köhler",
    "Demir", "Kowalski", "Nowak", "Schäfer", "Jäger", "Voß", "Weiß", "Groß",
)  # fmt: skip
_AT_LAST_NAMES = (
    "Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer", "Hofer",
    "Leitner", "Berger", "Fuchs", "Eder", "Fischer", "Schmid", "Winkler", "Weber",
    "Maier", "Reiter", "Mayr", "Wimmer", "Egger", "Brunner", "Lang", "Baumgartner",
    "Auer", "Binder", "Lechner", "Wallner", "Aigner", "Ebner", "Koller", "Haas",
)  # fmt: skip
_DE_STREETS = (
    "Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Schulstraße", "Dorfstraße",
    "Bergstraße", "Lindenstraße", "Kirchstraße", "Goethestraße", "Schillerstraße",
    "Friedrichstraße", "Ringstraße", "Waldweg", "Mühlenweg", "Rosenweg", "Birkenallee",
    "Kastanienallee", "Wilhelmstraße", "Feldstraße", "Am Markt", "Beethovenstraße",
    "Uhlandstraße", "Sonnenstraße", "Parkstraße",
)  # fmt: skip
_AT_STREETS = (
    "Hauptplatz", "Hauptstraße", "Bahnhofstraße", "Herrengasse", "Schulgasse",
    "Kirchengasse", "Linzer Straße", "Wiener Straße", "Grazer Straße", "Salzburger Straße",
    "Mozartgasse", "Schubertstraße", "Feldgasse", "Lindengasse", "Rosengasse",
    "Am Anger", "Anton-Wildgans-Gasse", "Raiffeisenstraße",
)  # fmt: skip
_DE_ADDRESS_EXTRAS = (
    "2. OG",
    "3. OG links",
    "Hinterhaus",
    "Gartenhaus",
    "Wohnung 4",
    "bei Schmitz",
)
_AT_ADDRESS_EXTRAS = ("Top 7", "Stiege 2, Top 14", "Tür 3", "2. Stock, Top 9")

_AUSTRIAN_SHARE = 0.25
_EMAIL_DOMAINS = {
    "de": (("example.de", "example.com", "example.org"), (5, 4, 1)),
    "at": (("example.at", "example.com"), (6, 4)),
}
_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _email_local_part(first_name: str, last_name: str, rng: _Random) -> str:
    first = first_name.lower().translate(_TRANSLITERATION)
    last = last_name.lower().translate(_TRANSLITERATION).replace(" ", "")
    style = rng.integer(0, 3)
    if style == 0:
        return f"{first}.{last}"
    if style == 1:
        return f"{first[0]}.{last}"
    if style == 2:
        return f"{first}{last}{rng.integer(1, 99):02d}"
    return f"{last}.{first}"


def _build_customer(rng: _Random) -> tuple[Customer, BillingAddress]:
    country = "at" if rng.chance(_AUSTRIAN_SHARE) else "de"
    austrian = country == "at"
    first_name = rng.pick(_AT_FIRST_NAMES if austrian else _DE_FIRST_NAMES)
    last_name = rng.pick(_AT_LAST_NAMES if austrian else _DE_LAST_NAMES)
    domains, weights = _EMAIL_DOMAINS[country]
    email = f"{_email_local_part(first_name, last_name, rng)}@{rng.pick_weighted(domains, weights)}"
    customer = Customer(first_name=first_name, last_name=last_name, email=email)

    street = rng.pick(_AT_STREETS if austrian else _DE_STREETS)
    if rng.chance(0.1):
        street = street.replace("straße", "str.")
    house_number = str(rng.integer(1, 160))
    if rng.chance(0.1):
        house_number += rng.pick("abc")
    elif austrian and rng.chance(0.3):
        house_number += f"/{rng.integer(1, 24)}"
    place = rng.pick(_AT_PLACES if austrian else _DE_PLACES)

    # Shops send the house number with the street, in a line of its own (as in Hakuna's
    # example), or the street with an extra line for the floor, door or recipient.
    layout = rng.fraction()
    if layout < 0.6:
        address = BillingAddress(
            address_line_1=f"{street} {house_number}",
            city=place.city,
            country=country,
            zip=place.zip,
        )
    elif layout < 0.8:
        address = BillingAddress(
            address_line_1=street,
            address_line_2=house_number,
            city=place.city,
            country=country,
            zip=place.zip,
        )
    else:
        extra = rng.pick(_AT_ADDRESS_EXTRAS if austrian else _DE_ADDRESS_EXTRAS)
        address = BillingAddress(
            address_line_1=f"{street} {house_number}",
            address_line_2=extra,
            city=place.city,
            country=country,
            zip=place.zip,
        )
    return customer, address


# Orders -----------------------------------------------------------------------------


def spec_example_event() -> OrderPlaced:
    """Return Hakuna's published ``order_placed`` example, field for field.

    It is ``components/examples/OrderPlacedEvent`` of ``openapi/hakuna-v2.0.yaml``:
    order ``ord-123`` placed at 2022-02-20T00:00:00.000Z, an iPhone 14 with one plan
    and a case.
    """
    return OrderPlaced(
        payload=OrderPlacedPayload(
            order_id="ord-123",
            placed_at=START,
            order_currency=_CURRENCY,
            cart_id="cart-123",
            customer=Customer(
                first_name="Max", last_name="Mustermann", email="max.mustermann@example.com"
            ),
            customer_billing_address=BillingAddress(
                address_line_1="Musterstrasse",
                address_line_2="1",
                city="Musterstadt",
                country="de",
                zip="123456",
            ),
            line_items=[
                LineItem(
                    id="line-item-id-3311",
                    quantity=1,
                    price_amount=112_900,
                    product_id="prd-iphone14",
                    product_title="iPhone 14",
                    product_brand="Apple",
                    product_category="electronics",
                ),
                LineItem(
                    id="line-item-id-3322",
                    quantity=1,
                    price_amount=8_464,
                    product_id="pl-prd-hakuna",
                    product_title="Hakuna.care protection",
                    product_brand="Hakuna",
                    custom_properties=CustomProperties(product_reference="prd-iphone14"),
                ),
                LineItem(
                    id="line-item-id-4411",
                    quantity=1,
                    price_amount=1_200,
                    product_id="prd-bb-32",
                    product_title="Silikon Case iPhone 14",
                    product_brand="Apple",
                ),
            ],
        )
    )


def _matching_plans(product: _Product) -> list[CatalogPlan]:
    return find_plans(DEFAULT_PLANS, product.category, product.price_amount, _CURRENCY)


_PROTECTABLE_MAIN_PRODUCTS = tuple(
    product for product in _MAIN_PRODUCTS if _matching_plans(product)
)
_PROTECTABLE_MAIN_WEIGHTS = tuple(product.weight for product in _PROTECTABLE_MAIN_PRODUCTS)


def _choose_products(rng: _Random, *, protectable_first: bool) -> list[tuple[_Product, bool]]:
    """Choose the distinct products of one order, each with whether it is a main product."""
    if not protectable_first and rng.chance(_ACCESSORY_ONLY_SHARE):
        first = rng.pick(_ACCESSORIES).product
        second = rng.pick(_ACCESSORIES).product
        if rng.chance(0.3) and second.product_id != first.product_id:
            return [(first, False), (second, False)]
        return [(first, False)]

    if protectable_first:
        mains = [rng.pick_weighted(_PROTECTABLE_MAIN_PRODUCTS, _PROTECTABLE_MAIN_WEIGHTS)]
    else:
        mains = [rng.pick_weighted(_MAIN_PRODUCTS, _MAIN_WEIGHTS)]
    if rng.chance(_SECOND_MAIN_PRODUCT_SHARE):
        second_main = rng.pick_weighted(_MAIN_PRODUCTS, _MAIN_WEIGHTS)
        if second_main.product_id != mains[0].product_id:
            mains.append(second_main)

    accessories: list[_Product] = []
    for main in mains:
        for accessory in _ACCESSORIES:
            fits = main.product_id.startswith(accessory.goes_with)
            if fits and accessory.product not in accessories and rng.chance(_ACCESSORY_SHARE):
                accessories.append(accessory.product)
    accessories = accessories[:_MAX_ACCESSORIES]
    return [(main, True) for main in mains] + [(accessory, False) for accessory in accessories]


def _product_line(line_id: str, product: _Product, quantity: int) -> LineItem:
    return LineItem(
        id=line_id,
        quantity=quantity,
        price_amount=product.price_amount,
        product_id=product.product_id,
        product_title=product.title,
        product_brand=product.brand,
        product_category=msgspec.UNSET if product.category is None else product.category,
    )


def _protection_line(line_id: str, plan: CatalogPlan, product_id: str, quantity: int) -> LineItem:
    return LineItem(
        id=line_id,
        quantity=quantity,
        price_amount=plan.price_amount,
        product_id=plan.merchant_product_id,
        product_title=plan.title["de"],
        product_brand="Hakuna",
        custom_properties=CustomProperties(product_reference=product_id),
    )


def _build_order(
    rng: _Random, order_number: int, placed_at: datetime, *, force_protection: bool = False
) -> OrderPlaced:
    """Build one ``order_placed`` event with a new customer.

    With ``force_protection`` the first line is a protectable product and the second
    line its protection.
    """
    customer, address = _build_customer(rng)

    line_items: list[LineItem] = []
    for index, (product, is_main) in enumerate(
        _choose_products(rng, protectable_first=force_protection)
    ):
        # Main products are mostly bought once, accessories more often in twos or threes.
        quantity = 1
        single_share = 0.85 if is_main else 0.7
        if product.max_quantity > 1 and not rng.chance(single_share):
            quantity = rng.integer(2, product.max_quantity)
        line_items.append(
            _product_line(f"li-{order_number}-{len(line_items) + 1}", product, quantity)
        )

        plans = _matching_plans(product)
        forced = force_protection and index == 0
        if not plans or not (forced or rng.chance(_PROTECTION_SHARE)):
            continue
        # The first matching plan, because the sandbox lists it first. One plan covers
        # one unit, so a customer may protect fewer units than bought.
        covered = quantity
        if quantity > 1 and rng.chance(_PARTIAL_PROTECTION_SHARE):
            covered = rng.integer(1, quantity - 1)
        line_id = f"li-{order_number}-{len(line_items) + 1}"
        line_items.append(_protection_line(line_id, plans[0], product.product_id, covered))

    return OrderPlaced(
        payload=OrderPlacedPayload(
            order_id=f"ord-{order_number}",
            placed_at=placed_at,
            order_currency=_CURRENCY,
            cart_id=f"cart-{rng.uuid4()}" if rng.chance(_CART_ID_SHARE) else msgspec.UNSET,
            customer=customer,
            customer_billing_address=address,
            line_items=line_items,
        )
    )


# Lifecycles -------------------------------------------------------------------------

# Shares of orders (or of the orders that reach the step) that take each path.
_ORDER_CANCEL_SHARE = 0.03
_LINE_CANCEL_SHARE = 0.07
_NEVER_FULFILLED_SHARE = 0.03
_SPLIT_SHIPMENT_SHARE = 0.2
_PROTECTION_FULFILLED_SHARE = 0.5
_PROTECTION_WITHDRAWAL_SHARE = 0.04
_REFUND_SHARE = 0.12
_FULL_REFUND_SHARE = 0.35


@dataclass
class _LineState:
    """The units of one line item fulfilled, cancelled and refunded so far."""

    id: str
    quantity: int
    fulfilled: int = 0
    cancelled: int = 0
    refunded: int = 0
    protection: _LineState | None = None

    @property
    def unshipped(self) -> int:
        """Units that may still be fulfilled or cancelled."""
        return max(0, self.quantity - self.cancelled - self.refunded - self.fulfilled)

    @property
    def open_units(self) -> int:
        """Units neither cancelled nor refunded."""
        return self.quantity - self.cancelled - self.refunded

    @property
    def returnable(self) -> int:
        """Fulfilled units not refunded yet."""
        return self.fulfilled - self.refunded


def _product_states(order: OrderPlaced) -> list[_LineState]:
    """Return the product lines' states, each linked to the state of its protection line."""
    products: list[_LineState] = []
    by_product_id: dict[str, _LineState] = {}
    protections: list[tuple[str, _LineState]] = []
    for item in order.payload.line_items:
        line = _LineState(item.id, item.quantity)
        reference = None
        if not isinstance(item.custom_properties, msgspec.UnsetType):
            reference = item.custom_properties.product_reference
        if isinstance(reference, str):
            protections.append((reference, line))
        else:
            products.append(line)
            by_product_id[item.product_id] = line
    for reference, line in protections:
        by_product_id[reference].protection = line
    return products


def _cancel(line: _LineState, units: int) -> list[LineItemQuantity]:
    """Cancel unshipped units of a product line, and as many units of its protection."""
    line.cancelled += units
    quantities = [LineItemQuantity(id=line.id, quantity=units)]
    protection = line.protection
    if protection is not None and min(units, protection.open_units) > 0:
        companion = min(units, protection.open_units)
        protection.cancelled += companion
        quantities.append(LineItemQuantity(id=protection.id, quantity=companion))
    return quantities


def _refund(line: _LineState, units: int) -> list[LineItemQuantity]:
    """Refund fulfilled units of a product line, and as many units of its protection."""
    line.refunded += units
    quantities = [LineItemQuantity(id=line.id, quantity=units)]
    protection = line.protection
    if protection is not None and min(units, protection.open_units) > 0:
        companion = min(units, protection.open_units)
        protection.refunded += companion
        quantities.append(LineItemQuantity(id=protection.id, quantity=companion))
    return quantities


def _fulfil(line: _LineState, units: int, with_protection: bool) -> list[LineItemQuantity]:
    """Fulfil units of a product line, and optionally as many units of its protection."""
    line.fulfilled += units
    quantities = [LineItemQuantity(id=line.id, quantity=units)]
    protection = line.protection
    if with_protection and protection is not None and min(units, protection.unshipped) > 0:
        companion = min(units, protection.unshipped)
        protection.fulfilled += companion
        quantities.append(LineItemQuantity(id=protection.id, quantity=companion))
    return quantities


def _at(seconds: int) -> datetime:
    return START + timedelta(seconds=seconds)


def _plan_lifecycle(rng: _Random, order: OrderPlaced, placed: int) -> list[tuple[int, Event]]:
    """Plan the events that follow an ``order_placed`` event, with their times.

    Times are seconds after ``START`` and strictly increase. No event requests more
    units than its line has left, and no event follows an ``order_cancelled`` event.
    """
    products = _product_states(order)
    order_id = order.payload.order_id
    events: list[tuple[int, Event]] = []
    now = placed

    if rng.chance(_ORDER_CANCEL_SHARE):
        now += rng.integer(10 * _MINUTE, 20 * _HOUR)
        payload = OrderCancelledPayload(order_id=order_id, cancelled_at=_at(now))
        events.append((now, OrderCancelled(payload=payload)))
        return events

    # Before shipping the customer drops some units, but keeps at least one.
    total_units = sum(line.unshipped for line in products)
    if total_units >= 2 and rng.chance(_LINE_CANCEL_SHARE):
        now += rng.integer(5 * _MINUTE, 12 * _HOUR)
        line = rng.pick(products)
        units = rng.integer(1, min(line.unshipped, total_units - 1))
        cancelled = LineItemsCancelledPayload(
            order_id=order_id, cancelled_at=_at(now), line_items=_cancel(line, units)
        )
        events.append((now, LineItemsCancelled(payload=cancelled)))

    if rng.chance(_NEVER_FULFILLED_SHARE):
        return events
    now = _plan_shipments(rng, products, order_id, now, events)

    # A customer may withdraw from a plan alone, within the 14-day withdrawal period.
    open_protections = [
        line.protection
        for line in products
        if line.protection is not None and line.protection.open_units > 0
    ]
    if open_protections and rng.chance(_PROTECTION_WITHDRAWAL_SHARE):
        now += rng.integer(1 * _DAY, 10 * _DAY)
        protection = rng.pick(open_protections)
        withdrawn = [LineItemQuantity(id=protection.id, quantity=protection.open_units)]
        protection.refunded += protection.open_units
        refund = LineItemsRefundedPayload(
            order_id=order_id, refunded_at=_at(now), line_items=withdrawn
        )
        events.append((now, LineItemsRefunded(payload=refund)))

    # Returned goods are refunded days after delivery: the whole order or part of a line.
    returnable = [line for line in products if line.returnable > 0]
    if returnable and rng.chance(_REFUND_SHARE):
        now += rng.integer(3 * _DAY, 21 * _DAY)
        refunded: list[LineItemQuantity] = []
        if rng.chance(_FULL_REFUND_SHARE):
            for line in returnable:
                refunded.extend(_refund(line, line.returnable))
        else:
            line = rng.pick(returnable)
            refunded.extend(_refund(line, rng.integer(1, line.returnable)))
        refund = LineItemsRefundedPayload(
            order_id=order_id, refunded_at=_at(now), line_items=refunded
        )
        events.append((now, LineItemsRefunded(payload=refund)))

    return events


def _plan_shipments(
    rng: _Random,
    products: list[_LineState],
    order_id: str,
    now: int,
    events: list[tuple[int, Event]],
) -> int:
    """Append one shipment, or two when some units are back-ordered, and return the last time.

    Shops that report protection lines as fulfilled do so with the product they cover.
    """
    with_protection = rng.chance(_PROTECTION_FULFILLED_SHARE)
    units_left = sum(line.unshipped for line in products)
    first_size = units_left
    if units_left >= 2 and rng.chance(_SPLIT_SHIPMENT_SHARE):
        first_size = rng.integer(1, units_left - 1)

    # The first shipment takes the first units in a random stock order, the second the rest.
    stock_order = rng.shuffled(products)
    for size in (first_size, units_left - first_size):
        if size == 0:
            continue
        now += rng.integer(2 * _HOUR, 3 * _DAY)
        shipped: list[LineItemQuantity] = []
        remaining = size
        for line in stock_order:
            units = min(line.unshipped, remaining)
            if units > 0:
                shipped.extend(_fulfil(line, units, with_protection))
                remaining -= units
        payload = LineItemsFulfilledPayload(
            order_id=order_id, fulfilled_at=_at(now), line_items=shipped
        )
        events.append((now, LineItemsFulfilled(payload=payload)))
    return now


# The event stream -------------------------------------------------------------------

# Relative order rate per hour of local time: few orders at night, most in the evening.
# Local time is CET (UTC+1) all year, because daylight saving time is not modelled.
_HOURLY_ORDER_WEIGHTS = (
    3, 2, 1, 1, 1, 1, 2, 4, 6, 7, 8, 9,  # 00:00 to 11:59
    10, 9, 9, 9, 10, 11, 12, 13, 13, 11, 8, 5,  # 12:00 to 23:59
)  # fmt: skip
_PEAK_WEIGHT = max(_HOURLY_ORDER_WEIGHTS)
# One order every 12 minutes on average at the evening peak gives about 60 orders a day.
_PEAK_MEAN_GAP_SECONDS = 12 * _MINUTE
_FIRST_ORDER_NUMBER = 100_001
# The mixed file's valid events are other orders, so that both files can be published
# to one sandbox. Their numbers stay apart from the main stream's for streams of up
# to about a million events.
_FIRST_MIXED_ORDER_NUMBER = 500_001
_FIRST_INVALID_ORDER_NUMBER = 900_001


def _next_arrival(rng: _Random, now: int) -> int:
    """Return the time of the next order after ``now``, in seconds after ``START``.

    Candidate gaps are uniform with the peak's mean, and the hour's weight decides
    whether a candidate becomes an order. The gaps avoid ``math.log``, whose last bit
    may differ between C libraries, so that the times are the same on every machine.
    """
    while True:
        now += 1 + int(rng.fraction() * 2 * _PEAK_MEAN_GAP_SECONDS)
        local_hour = (now // _HOUR + 1) % 24
        if rng.fraction() * _PEAK_WEIGHT < _HOURLY_ORDER_WEIGHTS[local_hour]:
            return now


def _event_stream(rng: _Random, *, first_order_number: int, with_example: bool) -> Iterator[Event]:
    """Yield events in time order without end.

    All random draws happen when an order is built, in order of arrival, so the
    stream does not depend on how far it is read.
    """
    # Planned lifecycle events: (seconds after START, tie-breaker, event).
    pending: list[tuple[int, int, Event]] = []
    sequence = 0

    def schedule(order: OrderPlaced, placed: int) -> None:
        nonlocal sequence
        for when, event in _plan_lifecycle(rng, order, placed):
            heapq.heappush(pending, (when, sequence, event))
            sequence += 1

    if with_example:
        example = spec_example_event()
        schedule(example, 0)
        yield example

    order_number = first_order_number
    next_order_at = _next_arrival(rng, 0)
    while True:
        if pending and pending[0][0] <= next_order_at:
            yield heapq.heappop(pending)[2]
            continue
        order = _build_order(rng, order_number, _at(next_order_at))
        schedule(order, next_order_at)
        yield order
        order_number += 1
        next_order_at = _next_arrival(rng, next_order_at)


def generate_events(count: int = DEFAULT_COUNT, *, seed: int = DEFAULT_SEED) -> Iterator[Event]:
    """Return a lazy iterator over ``count`` events in time order, the same for a seed.

    The first event is Hakuna's published example (see ``spec_example_event``). Then
    orders ``ord-100001``, ``ord-100002`` and so on arrive, about 60 a day from
    ``START`` on. Each is followed hours to weeks later by its fulfilments,
    cancellations and refunds, interleaved with other orders. ``count`` cuts one
    endless stream, so a shorter stream is a prefix of a longer one with the same
    seed, and the last orders may stop mid-lifecycle as in a live shop.

    Memory grows with the events planned but not yet yielded, which belong to the
    orders of the last 38 days at most, not with ``count``. Raise ``ValueError`` when
    ``count`` is negative.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    stream = _event_stream(_Random(seed), first_order_number=_FIRST_ORDER_NUMBER, with_example=True)
    return itertools.islice(stream, count)


# Invalid lines ----------------------------------------------------------------------


class InvalidLine(NamedTuple):
    """A JSON line that a shop might send, invalid for one reason.

    ``field`` is the JSON path that ``prepare_event`` reports as
    ``RequestValidationError.field`` for ``line``: ``$`` when the line is not JSON.
    ``line`` has no trailing newline.
    """

    kind: str
    field: str
    line: bytes


def invalid_lines(*, seed: int = DEFAULT_SEED) -> list[InvalidLine]:
    """Build one invalid line of each kind that shops send, the same ones for a seed.

    Each line is a realistic event with one mistake:

    - an uppercase currency or country code, quantity 0 or a missing ``placed_at``;
    - a timestamp without offset, or in epoch seconds as API v1 sent it;
    - an amount in euros as a float instead of an integer in cents;
    - a protection line that references the line item id instead of the product_id,
      or that covers more units than the product line has;
    - an unknown event type, or a line cut off mid-write.
    """
    rng = _Random(f"invalid-lines:{seed}")
    placed_at = START + timedelta(days=1)
    order_numbers = itertools.count(_FIRST_INVALID_ORDER_NUMBER)

    # Every order has a protected product at index 0 and its protection at index 1.
    def new_order() -> dict[str, Any]:
        order = _build_order(rng, next(order_numbers), placed_at, force_protection=True)
        result: dict[str, Any] = msgspec.to_builtins(order)
        return result

    lines: list[InvalidLine] = []

    def add(kind: str, path: str, event: dict[str, Any]) -> None:
        lines.append(InvalidLine(kind, path, msgspec.json.encode(event)))

    event = new_order()
    event["payload"]["order_currency"] = "EUR"
    add("currency-uppercase", "$.payload.order_currency", event)

    event = new_order()
    event["payload"]["customer_billing_address"]["country"] = "DE"
    add("country-uppercase", "$.payload.customer_billing_address.country", event)

    event = new_order()
    event["payload"]["line_items"][0]["quantity"] = 0
    add("quantity-zero", "$.payload.line_items[0].quantity", event)

    # msgspec reports the path of the object that lacks the field.
    event = new_order()
    del event["payload"]["placed_at"]
    add("placed-at-missing", "$.payload.placed_at", event)

    event = new_order()
    event["payload"]["placed_at"] = event["payload"]["placed_at"].removesuffix("Z")
    add("timestamp-without-offset", "$.payload.placed_at", event)

    event = new_order()
    event["payload"]["placed_at"] = int(placed_at.timestamp())
    add("timestamp-epoch-seconds", "$.payload.placed_at", event)

    event = new_order()
    first_line = event["payload"]["line_items"][0]
    first_line["price_amount"] = first_line["price_amount"] / 100
    add("amount-float", "$.payload.line_items[0].price_amount", event)

    event = new_order()
    items = event["payload"]["line_items"]
    items[1]["custom_properties"]["product_reference"] = items[0]["id"]
    add(
        "protection-references-line-item-id",
        "$.payload.line_items[1].custom_properties.product_reference",
        event,
    )

    event = new_order()
    items = event["payload"]["line_items"]
    items[1]["quantity"] = items[0]["quantity"] + 1
    add("protection-exceeds-product-quantity", "$.payload.line_items[1].quantity", event)

    # A shop that invents a type for shipping instead of line_items_fulfilled.
    order = new_order()
    shipped = [
        {"id": item["id"], "quantity": item["quantity"]} for item in order["payload"]["line_items"]
    ]
    fulfilled_at = msgspec.to_builtins(placed_at + timedelta(days=1))
    payload = {
        "order_id": order["payload"]["order_id"],
        "fulfilled_at": fulfilled_at,
        "line_items": shipped,
    }
    add("event-type-unknown", "$.type", {"type": "order_shipped", "payload": payload})

    # A writer that stopped mid-line leaves a truncated JSON object.
    whole = msgspec.json.encode(new_order())
    cut = rng.integer(len(whole) // 3, 2 * len(whole) // 3)
    lines.append(InvalidLine("json-truncated", "$", whole[:cut]))

    return lines


# Files ------------------------------------------------------------------------------


@dataclass
class _SampleSummary:
    """Paths and contents of the written sample files, for the command line to print."""

    events_path: Path
    mixed_path: Path
    counts_by_type: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    protected_orders: int = 0
    orders_by_country: Counter[str] = field(default_factory=Counter)
    mixed_valid: int = 0
    mixed_invalid_kinds: list[str] = field(default_factory=list)

    def count(self, event: Event) -> None:
        self.counts_by_type[_EVENT_TYPE_NAMES[type(event)]] += 1
        if isinstance(event, OrderPlaced):
            self.orders += 1
            self.protected_orders += _is_protected(event)
            self.orders_by_country[event.payload.customer_billing_address.country] += 1


_EVENT_TYPE_NAMES: dict[type[Any], str] = {
    OrderPlaced: "order_placed",
    LineItemsFulfilled: "line_items_fulfilled",
    LineItemsRefunded: "line_items_refunded",
    LineItemsCancelled: "line_items_cancelled",
    OrderCancelled: "order_cancelled",
}


def _is_protected(order: OrderPlaced) -> bool:
    return any(
        not isinstance(item.custom_properties, msgspec.UnsetType)
        and isinstance(item.custom_properties.product_reference, str)
        for item in order.payload.line_items
    )


def _write_sample(directory: Path, count: int, seed: int) -> _SampleSummary:
    directory.mkdir(parents=True, exist_ok=True)
    summary = _SampleSummary(events_path=directory / EVENTS_FILE, mixed_path=directory / MIXED_FILE)

    with summary.events_path.open("wb") as events_file:
        for event in generate_events(count, seed=seed):
            events_file.write(msgspec.json.encode(event) + b"\n")
            summary.count(event)

    valid_count = min(count, MIXED_VALID_LINES)
    mixed_stream = _event_stream(
        _Random(f"mixed-events:{seed}"),
        first_order_number=_FIRST_MIXED_ORDER_NUMBER,
        with_example=False,
    )
    valid_lines = [
        msgspec.json.encode(event) for event in itertools.islice(mixed_stream, valid_count)
    ]

    # One invalid line of each kind per 1,000 valid lines, at seeded positions.
    rng = _Random(f"mixed-file:{seed}")
    kinds = rng.shuffled(invalid_lines(seed=seed))
    invalid_count = 0 if valid_count == 0 else max(1, round(valid_count * len(kinds) / 1000))
    slots = sorted(rng.shuffled(range(valid_count))[:invalid_count])
    invalid_before = dict(zip(slots, kinds[:invalid_count], strict=True))
    with summary.mixed_path.open("wb") as mixed_file:
        for index, line in enumerate(valid_lines):
            if index in invalid_before:
                mixed_file.write(invalid_before[index].line + b"\n")
                summary.mixed_invalid_kinds.append(invalid_before[index].kind)
            mixed_file.write(line + b"\n")
    summary.mixed_valid = valid_count
    return summary


def write_sample(
    directory: Path, *, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED
) -> tuple[Path, Path]:
    """Write ``events.jsonl`` and ``events-with-errors.jsonl`` into ``directory``.

    ``events.jsonl`` contains the ``count`` events of ``generate_events``, one compact
    JSON object per line. ``events-with-errors.jsonl`` contains 1,000 valid events
    (``count`` when smaller) of orders that ``events.jsonl`` does not have, so that
    both files can be published to one sandbox. Between them are the lines of
    ``invalid_lines``, one of each kind per 1,000 valid lines at seeded positions,
    about 1% of the lines. Both files are byte-identical for the same ``count`` and
    seed. Create ``directory`` if missing, overwrite both files, and return their
    paths.
    """
    summary = _write_sample(directory, count, seed)
    return summary.events_path, summary.mixed_path


# Command line -----------------------------------------------------------------------


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hakuna_async.testing.sample",
        description=(
            f"Write seeded sample Hakuna order events: {EVENTS_FILE} (all valid) and "
            f"{MIXED_FILE} ({MIXED_VALID_LINES:,} valid events of other orders with about 1% "
            "invalid lines)."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="directory to write both files into, created if missing (existing files are replaced)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"number of events (lines) in {EVENTS_FILE} (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="integer seed: the same seed and count write the same bytes (default: %(default)s)",
    )
    arguments = parser.parse_args(argv)
    if arguments.count < 0:
        parser.error(f"--count must be 0 or more, got {arguments.count}")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Write the sample files and print their paths, sizes and contents by type."""
    arguments = _parse_arguments(argv)
    summary = _write_sample(arguments.out, arguments.count, arguments.seed)

    events_size = summary.events_path.stat().st_size
    lines = summary.counts_by_type.total()
    print(f"Wrote {summary.events_path}: {lines:,} lines, {events_size:,} bytes")
    for name in _EVENT_TYPE_NAMES.values():
        print(f"  {name:<22} {summary.counts_by_type[name]:>9,}")
    if summary.orders:
        protected = summary.protected_orders / summary.orders
        countries = ", ".join(
            f"{country} {orders / summary.orders:.0%}"
            for country, orders in sorted(summary.orders_by_country.items())
        )
        print(f"  {summary.orders:,} orders, {protected:.1%} with protection")
        print(f"  customers by country: {countries}")

    invalid = len(summary.mixed_invalid_kinds)
    mixed_size = summary.mixed_path.stat().st_size
    print(
        f"Wrote {summary.mixed_path}: {summary.mixed_valid + invalid:,} lines "
        f"({summary.mixed_valid:,} valid, {invalid} invalid), {mixed_size:,} bytes"
    )
    if invalid:
        print(f"  invalid kinds: {', '.join(sorted(summary.mixed_invalid_kinds))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
