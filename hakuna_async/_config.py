"""Client settings: environments, timeouts and the checks that make them safe."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

# yarl is aiohttp's URL type and is installed with it. Parsing with it here makes the
# host that is checked the same host that aiohttp connects to.
from yarl import URL

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
# A base URL is visible ASCII only: no space, tab, CR, LF or other control character,
# which urllib would strip silently but could change how the URL is read.
_URL_CHARACTERS = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits in seconds.

    ``connect`` bounds opening a connection, TLS included. ``read`` bounds each wait
    for data from the server, so a server that stalls mid-body times out too.
    ``total`` is the deadline of a whole call, which counts every attempt and every
    wait between attempts. None of them may be ``None``, so a call never waits
    forever.
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
    # The key itself is never shown in these messages.
    if not isinstance(key, str):
        raise ConfigurationError(f"The API key must be a str, got {type(key).__name__}.")
    if not _HEADER_VALUE.match(key) or key != key.strip():
        raise ConfigurationError(
            "The API key contains whitespace at its ends, a control character such as "
            "CR or LF, or a non-ASCII character; copy it again from the Merchant Console."
        )
    return key


def resolve_base_url(
    base_url: str | None, environment: str | None, *, allow_insecure_http: bool
) -> str:
    """Pick the base URL: ``base_url``, then ``HAKUNA_BASE_URL``, then the environment.

    The environment comes from the argument or ``HAKUNA_ENVIRONMENT`` and defaults to
    ``production``. The result has no trailing slash. Plain ``http://`` is accepted
    only for loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``) unless
    ``allow_insecure_http`` is true, because the API key would travel in clear text.
    The URL is parsed with yarl, as aiohttp parses it, so that the host checked here
    is the host connected to.
    """
    url = base_url or os.environ.get("HAKUNA_BASE_URL")
    if not url:
        name = environment or os.environ.get("HAKUNA_ENVIRONMENT") or "production"
        if name not in ENVIRONMENTS:
            raise ConfigurationError(
                f"Unknown environment {name!r}: use 'production' or 'sandbox', or pass base_url."
            )
        url = ENVIRONMENTS[name]

    if not isinstance(url, str):
        raise ConfigurationError(f"The base URL must be a str, got {type(url).__name__}.")
    if "@" in urlsplit(url).netloc:
        # Not shown: the user information may contain a password.
        raise ConfigurationError(
            "Invalid base URL: remove the user name and password before the host. The "
            "API key is sent in the Authorization header."
        )
    if not _URL_CHARACTERS.match(url):
        raise ConfigurationError(
            f"Invalid base URL {url!r}: it contains whitespace, a control character or a "
            "non-ASCII character; percent-encode the path and write the host in ASCII."
        )
    try:
        parts = URL(url)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(f"Invalid base URL {url!r}: {error}.") from None
    if parts.scheme not in ("http", "https") or not parts.host or port is None:
        raise ConfigurationError(
            f"Invalid base URL {url!r}: expected http(s)://host[:port][/prefix]."
        )
    if "?" in url or "#" in url:
        raise ConfigurationError(f"Invalid base URL {url!r}: remove the query or fragment.")
    if any(unquote(segment) in (".", "..") for segment in urlsplit(url).path.split("/")):
        raise ConfigurationError(
            f"Invalid base URL {url!r}: remove the '.' and '..' segments from the path."
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.host):
        raise ConfigurationError(
            f"Rejected plain http:// base URL {url!r}: the API key would be sent unencrypted. "
            "Use https://, or pass allow_insecure_http=True if this network is trusted."
        )
    return url.rstrip("/")


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` if it is safe as an HTTP header value.

    Raise ``RequestValidationError`` for anything but printable ASCII, so that CR or
    LF can never start a new header line, and for whitespace at either end, which
    HTTP parsers strip.
    """
    if (
        not isinstance(value, str)
        or not value
        or not _HEADER_VALUE.match(value)
        or value != value.strip()
    ):
        value_text = repr(value)
        if len(value_text) > 80:
            value_text = value_text[:77] + "..."
        raise RequestValidationError(
            f"{name} header",
            [
                FieldError(
                    name,
                    "expected non-empty printable ASCII without CR, LF or whitespace at "
                    f"either end, got {value_text}",
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
