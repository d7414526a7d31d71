"""The ``hakuna_async`` logger, and ``HAKUNA_LOG`` for quick diagnosis.

The library only emits records, and never the API key or any other header but the
idempotency key:

- DEBUG: every HTTP attempt, with method, path, status (or the failure), duration,
  attempt number and idempotency key;
- INFO: each retry (method, path, failed attempt, wait, idempotency key) and each
  error status that is not retried;
- WARNING: each call given up after its retries or at its deadline.

Nothing is printed unless the application configures logging. Setting
``HAKUNA_LOG=debug``, ``info`` or ``warning`` attaches a stderr handler at that level
when the first client is created, for when the application configures no logging.
The records still propagate, so the handlers of an application that configures
logging too receive each record twice.
"""

from __future__ import annotations

import logging
import os
import warnings

logger = logging.getLogger("hakuna_async")
# As the logging HOWTO advises for libraries: without this, Python's last-resort
# handler would print WARNING records to stderr in applications that configure no
# logging. Applications that configure logging still receive every record.
logger.addHandler(logging.NullHandler())

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_configured = False


def configure_from_environment() -> None:
    """Attach a stderr handler if ``HAKUNA_LOG`` requests one (once per process)."""
    global _configured
    if _configured:
        return
    _configured = True

    setting = os.environ.get("HAKUNA_LOG", "").strip().lower()
    if not setting:
        return
    level = _LEVELS.get(setting)
    if level is None:
        warnings.warn(
            f"Ignoring HAKUNA_LOG={setting!r}: expected debug, info or warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
