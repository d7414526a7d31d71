"""The ``hakuna_async`` logger, and ``HAKUNA_LOG`` for quick diagnosis.

The library only emits records: retries and give-ups (INFO and WARNING) with the
method, path, attempt and idempotency key. Setting ``HAKUNA_LOG=debug`` or
``HAKUNA_LOG=info`` attaches a stderr handler at that level when the first client
is created, for when no logging is configured in the application.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("hakuna_async")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_configured = False


def configure_from_environment() -> None:
    """Attach a stderr handler if ``HAKUNA_LOG`` asks for one (once per process)."""
    global _configured
    if _configured:
        return
    _configured = True

    setting = os.environ.get("HAKUNA_LOG", "").strip().lower()
    level = _LEVELS.get(setting)
    if level is None:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
