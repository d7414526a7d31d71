"""When to retry a failed attempt, and how long to wait before the next one.

Rules:

- Retried: connection errors, timeouts, and the statuses 408, 429, 500, 502, 503 and
  504 (and any other 5xx). Never retried: other 4xx, including 409, which means the
  idempotency key was used for a different body and a retry would fail the same way.
- Every attempt of one call sends the same body and the same idempotency key, so a
  retried POST is applied at most once by Hakuna.
- The wait before retry ``n`` (1-based) is exponential backoff with "equal jitter":
  half of ``initial_wait * 2 ** (n - 1)`` (capped at ``max_wait``) plus a random part
  up to the other half. A retry therefore never follows at once, even when the
  server asks for no wait.
- A server-given wait (``Retry-After``) is a minimum: the wait is the larger of it and
  the backoff. Zero, negative, past dates and unparsable values count as "no wait
  given". A wait above ``max_retry_after`` is not waited out: the call fails at once
  and the error carries the wait (``RateLimitError.retry_after``).
- The client's total deadline bounds all of it: when the next wait would end past the
  deadline, the call fails with the last error instead of sleeping.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from datetime import UTC

import backoff

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    ``max_retries`` is the number of retries after the first attempt (so at most
    ``max_retries + 1`` requests per call); waits are in seconds.
    """

    max_retries: int = 2
    initial_wait: float = 0.5
    max_wait: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}.")
        if not self.initial_wait > 0 or not self.max_wait >= self.initial_wait:
            raise ValueError(
                "Expected 0 < initial_wait <= max_wait, "
                f"got {self.initial_wait!r} and {self.max_wait!r}."
            )

    def with_max_retries(self, max_retries: int | None) -> RetryPolicy:
        """Return this policy with another ``max_retries`` (``None`` keeps it)."""
        if max_retries is None or max_retries == self.max_retries:
            return self
        return RetryPolicy(
            max_retries=max_retries,
            initial_wait=self.initial_wait,
            max_wait=self.max_wait,
            max_retry_after=self.max_retry_after,
        )

    @staticmethod
    def is_retryable_status(status: int) -> bool:
        """Tell whether an HTTP status is worth another attempt."""
        return status in RETRYABLE_STATUSES or status >= 500

    def backoff_wait(self, retry_number: int) -> float:
        """Return the jittered exponential wait before retry ``retry_number`` (1-based)."""
        ceiling = _expo_value(self.initial_wait, self.max_wait, retry_number)
        half = ceiling / 2
        return half + backoff.full_jitter(half)

    def wait_before_retry(self, retry_number: int, retry_after: float | None) -> float:
        """Return the wait before retry ``retry_number``, honouring a server-given minimum."""
        wait = self.backoff_wait(retry_number)
        if retry_after is not None and retry_after > wait:
            return retry_after
        return wait


def _expo_value(initial_wait: float, max_wait: float, retry_number: int) -> float:
    # backoff.expo yields 1, 2, 4, ... times the factor, capped at max_value; its first
    # value is for the first retry.
    waits = backoff.expo(base=2, factor=initial_wait, max_value=max_wait)
    waits.send(None)
    value = initial_wait
    for _ in range(retry_number):
        value = next(waits)
    return float(value)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds to wait from ``now``.

    Accepted forms: delta seconds (``120``; a decimal fraction is accepted too) and an
    HTTP-date in IMF-fixdate, RFC 850 or asctime form. Return ``None`` when there is
    no usable wait: the header is missing, unparsable, zero, negative, or a date that
    has passed. Huge values are returned as they are; the policy decides about them.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None

    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until_http_date(text, time.time() if now is None else now)

    if seconds is None or math.isnan(seconds) or seconds <= 0:
        return None
    return seconds


def _seconds_until_http_date(text: str, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # An HTTP-date is always GMT; parsedate_to_datetime leaves "-0000" naive.
        return moment.replace(tzinfo=UTC).timestamp() - now
    return moment.timestamp() - now
