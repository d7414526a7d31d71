"""When to retry a failed attempt, and how long to wait before the next one.

Rules (``tests/test_retry_policy.py`` checks each of them):

- Retried: connection errors (refused, reset, closed before the response was complete),
  timeouts, and the statuses 408, 429 and every 5xx. Never retried: every other
  status, including 409, which means the idempotency key was used for a different
  body, so a retry would fail the same way.
- Every attempt of one call sends the same body and the same idempotency key, so a
  retried POST is applied at most once by Hakuna. A call makes at most
  ``max_retries + 1`` attempts.
- The wait before retry ``n`` (1-based) is exponential backoff with "equal jitter":
  the ceiling is ``initial_wait * 2 ** (n - 1)``, capped at ``max_wait``, and the wait
  is drawn uniformly from half the ceiling to the ceiling. A retry therefore never
  follows at once, even when the server asks for no wait.
- ``Retry-After`` is read on every retried status, as delay seconds (ASCII digits,
  a decimal fraction is accepted too) or as an HTTP-date in any of the three forms
  of RFC 9110, section 5.6.7: IMF-fixdate, RFC 850 (its two-digit year is read as at
  most 50 years ahead) and asctime, always GMT. A date becomes a wait against the
  local wall clock when the response arrives. It has a resolution of one second,
  so "three seconds ahead" may mean a little over two.
- Zero, negative values, dates that are not in the future and unparsable values
  (including other time zones and numbers such as ``1e3`` or ``inf``) count as "no
  wait given": the backoff alone applies.
- A positive server-given wait is a minimum, which jitter only lengthens: the wait
  is that value plus a random extra of up to half the backoff ceiling (so that calls
  told the same wait do not all return at the same instant), and at least the
  backoff.
- A server-given wait above ``max_retry_after`` is not waited out: the call fails at
  once with the last error, and ``RateLimitError.retry_after`` carries the wait.
- The call's deadline (``Timeout.total``) bounds all of it, measured on the event
  loop's clock from the start of the call: each attempt may use only the time left,
  and when the next wait would end at or past the deadline, the call fails at once
  with the last error instead of sleeping.
- Cancellation is never caught: a call cancelled during an attempt or a wait (by
  ``task.cancel()``, ``asyncio.wait_for`` or ``asyncio.timeout``) stops at once and
  sends nothing more.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import backoff

from ._errors import ConfigurationError

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    ``max_retries`` is the number of retries after the first attempt (so at most
    ``max_retries + 1`` requests per call). Waits are in seconds. Raise
    ``ConfigurationError`` for a negative count or wait.
    """

    max_retries: int = 2
    initial_wait: float = 0.5
    max_wait: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, got {self.max_retries!r}."
            )
        if not self.initial_wait > 0 or not self.max_wait >= self.initial_wait:
            raise ConfigurationError(
                "Expected 0 < initial_wait <= max_wait, "
                f"got {self.initial_wait!r} and {self.max_wait!r}."
            )
        if not self.max_retry_after >= 0:
            raise ConfigurationError(
                f"max_retry_after must be 0 or more seconds, got {self.max_retry_after!r}."
            )

    def with_max_retries(self, max_retries: int | None) -> RetryPolicy:
        """Return this policy with another ``max_retries`` (``None`` keeps it)."""
        if max_retries is None or max_retries == self.max_retries:
            return self
        return replace(self, max_retries=max_retries)

    @staticmethod
    def is_retryable_status(status: int) -> bool:
        """Tell whether an HTTP status is worth another attempt."""
        return status in RETRYABLE_STATUSES or status >= 500

    def backoff_ceiling(self, retry_number: int) -> float:
        """Return the longest backoff before retry ``retry_number`` (1-based)."""
        # backoff.expo yields 1, 2, 4, ... times the factor, capped at max_value, after
        # a first send(None) that yields nothing.
        waits = backoff.expo(base=2, factor=self.initial_wait, max_value=self.max_wait)
        waits.send(None)
        value = self.initial_wait
        for _ in range(retry_number):
            value = next(waits)
        return float(value)

    def backoff_wait(self, retry_number: int) -> float:
        """Return a jittered wait from half the ceiling to the ceiling before a retry."""
        half = self.backoff_ceiling(retry_number) / 2
        return half + backoff.full_jitter(half)

    def wait_before_retry(self, retry_number: int, retry_after: float | None) -> float:
        """Return the wait before retry ``retry_number``, never shorter than ``retry_after``."""
        wait = self.backoff_wait(retry_number)
        if retry_after is None:
            return wait
        spread = backoff.full_jitter(self.backoff_ceiling(retry_number) / 2)
        return max(wait, retry_after + spread)


# RFC 9110 defines delay-seconds as 1*DIGIT. A decimal fraction is accepted as well.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")

_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "(?P<month>" + "|".join(_MONTHS) + ")"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
# The three HTTP-date forms of RFC 9110, section 5.6.7. They are case-sensitive.
_IMF_FIXDATE = re.compile(rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT")
_RFC850_DATE = re.compile(
    rf"{_LONG_DAY}, (?P<day>[0-9]{{2}})-{_MONTH}-(?P<short_year>[0-9]{{2}}) {_TIME} GMT"
)
# asctime pads a one-digit day with a space ("Nov  6"). One space is accepted too.
_ASCTIME_DATE = re.compile(
    rf"{_DAY} {_MONTH} {{1,2}}(?P<day>[0-9]{{1,2}}) {_TIME} (?P<year>[0-9]{{4}})"
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds to wait from ``now``.

    ``now`` is a POSIX timestamp and defaults to ``time.time()``. Return ``None`` when
    there is no usable wait: the header is missing, unparsable, zero, negative, or a
    date that is not in the future. Huge values are returned as they are (up to
    ``inf`` for a number too large for a float), because the policy decides about them.
    """
    if value is None:
        return None
    text = value.strip(" \t")
    if _DELAY_SECONDS.fullmatch(text):
        seconds: float | None = float(text)
    else:
        seconds = _seconds_until_http_date(text, time.time() if now is None else now)

    if seconds is None or seconds <= 0:
        return None
    return seconds


def _seconds_until_http_date(text: str, now: float) -> float | None:
    match = _IMF_FIXDATE.fullmatch(text) or _ASCTIME_DATE.fullmatch(text)
    if match is not None:
        year = int(match["year"])
    else:
        match = _RFC850_DATE.fullmatch(text)
        if match is None:
            return None
        year = _full_year(int(match["short_year"]), datetime.fromtimestamp(now, UTC).year)

    try:
        moment = datetime(
            year,
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            # A leap second (60) is read as the last whole second before it.
            min(int(match["second"]), 59),
            tzinfo=UTC,
        )
    except ValueError:
        return None  # For example 31 Feb or 25:00:00.
    return moment.timestamp() - now


def _full_year(short_year: int, this_year: int) -> int:
    """Expand an RFC 850 two-digit year to the year at most 50 years after ``this_year``.

    RFC 9110 reads a year that appears more than 50 years in the future as the most
    recent past year with the same last two digits.
    """
    year = this_year - this_year % 100 + short_year
    if year > this_year + 50:
        year -= 100
    elif year <= this_year - 50:
        year += 100
    return year
