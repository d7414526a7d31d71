"""Hand-written types that the generated models refer to by name."""

from datetime import datetime
from typing import Annotated, TypeAlias

from msgspec import Meta

# RFC 3339 requires an offset. msgspec accepts naive datetimes without tz=True, and
# Hakuna would read a naive timestamp in an unknown zone.
AwareDatetime: TypeAlias = Annotated[
    datetime,
    Meta(description="An RFC 3339 timestamp with a UTC offset.", tz=True),
]
