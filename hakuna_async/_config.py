"""Client settings: environments, timeouts and the checks that make them safe."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ._errors import ConfigurationError, FieldError, RequestValidationError

__all__ = [
    "ENVIRONMENTS",
    "Timeout",
    "check_header_value",
    "resolve_api_key",
    "resolve_base_url",
]

Environment = Literal["production", "sandbox"]

#: Base URLs published by Hakuna. The sandbox is a path prefix with its own API keys.
ENVIRONMENTS: dict[str, str] = {
    "production": "https://api.hellohakuna.com/",
    "sandbox": "https://api.hellohakuna.com/sandbox/",
}

# RFC 9110 field values: visible ASCII, space and tab. CR and LF would let a value
# start a new header line.
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits in seconds.

    ``connect`` bounds opening a connection (including TLS), ``read`` bounds each wait
    for data from the server (so a server that stalls mid-body times out too), and
    ``total`` is the deadline of a whole call: every attempt and every wait between
    attempts. None of them may be ``None``: a call never waits forever.
    """

    connect: float = 10.0
    read: float = 30.0
    total: float = 90.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigurationError(
                    f"Timeout.{name} must be a positive number of seconds, got {value!r}."
                )

    @classmethod
    def of(cls, value: float | Timeout) -> Timeout:
        """Accept a ``Timeout`` or a number of seconds for the whole call."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            total = float(value)
            return cls(
                connect=min(DEFAULT_TIMEOUT.connect, total),
                read=min(DEFAULT_TIMEOUT.read, total),
                total=total,
            )
        raise ConfigurationError(
            "timeout must be a positive number of seconds or a hakuna_async.Timeout, "
            f"got {value!r}."
        )


DEFAULT_TIMEOUT = Timeout()


def resolve_api_key(api_key: str | None) -> str:
    """Return the API key from the argument or ``HAKUNA_API_KEY``, checked for safety."""
    key = api_key if api_key is not None else os.environ.get("HAKUNA_API_KEY")
    if not key:
        raise ConfigurationError(
            "No API key: pass api_key=... or set HAKUNA_API_KEY. Keys are managed in "
            "Hakuna's Merchant Console; sandbox and production keys differ."
        )
    if not _HEADER_VALUE.match(key) or key != key.strip():
        # The key itself is never shown.
        raise ConfigurationError(
            "The API key contains whitespace at its ends or a control character such as "
            "CR or LF; copy it again from the Merchant Console."
        )
    return key


def resolve_base_url(
    base_url: str | None, environment: str | None, *, allow_insecure_http: bool
) -> str:
    """Pick the base URL: ``base_url``, then ``HAKUNA_BASE_URL``, then the environment.

    The environment comes from the argument or ``HAKUNA_ENVIRONMENT`` and defaults to
    ``production``. The result has no trailing slash. Plain ``http://`` is accepted
    only for loopback hosts unless ``allow_insecure_http`` is true, because the API
    key would travel in clear text.
    """
    url = base_url or os.environ.get("HAKUNA_BASE_URL")
    if not url:
        name = environment or os.environ.get("HAKUNA_ENVIRONMENT") or "production"
        if name not in ENVIRONMENTS:
            raise ConfigurationError(
                f"Unknown environment {name!r}: use 'production' or 'sandbox', or pass base_url."
            )
        url = ENVIRONMENTS[name]

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"Invalid base URL {url!r}: expected http(s)://host[:port][/prefix]."
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"Invalid base URL {url!r}: remove the query or fragment.")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"Refusing plain http:// base URL {url!r}: the API key would be sent unencrypted. "
            "Use https://, or pass allow_insecure_http=True if this network is trusted."
        )
    return url.rstrip("/")


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` if it is safe as an HTTP header value.

    Raise ``RequestValidationError`` for anything but printable ASCII, so that CR or
    LF can never start a new header line.
    """
    if not isinstance(value, str) or not value or not _HEADER_VALUE.match(value):
        raise RequestValidationError(
            f"{name} header",
            [
                FieldError(
                    name, f"expected non-empty printable ASCII without CR or LF, got {value!r}"
                )
            ],
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
