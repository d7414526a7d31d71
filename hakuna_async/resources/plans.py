"""Plans: which protection plans Hakuna offers for a product."""

from __future__ import annotations

from .._config import Timeout
from .._errors import FieldError, RequestValidationError
from ..models import PlanMatch
from ..models._operations import MATCH_PLANS
from ._base import Resource, validate_query


class Plans(Resource):
    """``client.plans``."""

    async def match(
        self,
        *,
        product_id: str,
        product_brand: str,
        product_title: str,
        product_category: str,
        product_price_amount: int,
        product_price_currency: str,
        user_session_id: str,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> PlanMatch:
        """Find the protection plans for a product.

        ``product_price_amount`` is the unit price in minor units (cents), for example
        ``112900`` for 1,129.00; ``product_price_currency`` a lowercase ISO 4217 code.
        Each plan's ``merchant_product_id`` is the protection product to add to the
        cart, and its ``product_reference`` goes into that line's
        ``custom_properties.product_reference``. Raise ``NotFoundError`` when no plan
        matches.
        """
        if (
            isinstance(product_price_amount, bool)
            or not isinstance(product_price_amount, int)
            or product_price_amount < 0
        ):
            raise RequestValidationError(
                "arguments of client.plans.match",
                [
                    FieldError(
                        "$.product_price_amount",
                        "expected an int >= 0 in minor units (cents), for example 112900 "
                        f"for 1,129.00 (value: {product_price_amount!r})",
                    )
                ],
            )
        query = validate_query(
            MATCH_PLANS,
            {
                "product_id": product_id,
                "product_brand": product_brand,
                "product_title": product_title,
                "product_category": product_category,
                "product_price_amount": str(product_price_amount),
                "product_price_currency": product_price_currency,
                "user_session_id": user_session_id,
            },
            "client.plans.match",
        )
        result: PlanMatch = await self._client.request(
            MATCH_PLANS, query=query, timeout=timeout, max_retries=max_retries
        )
        return result
