"""Idempotency keys derived from an event's content, so that a rerun sends the same keys.

A batch job that is killed and run again must not publish anything twice. With a
random key per call, the events that were in flight when the job died would be sent
again under new keys and stored twice. A key derived from the event itself is the
same in every run, so Hakuna replays the first response instead.

The rule: the key is a name-based UUID version 8 (RFC 9562) made from SHA-256 over
a namespace UUID and the event's canonical JSON (the bytes the client sends: fields
in schema order, no whitespace). The namespace comes from ``key_namespace`` when given,
otherwise from the base URL and a SHA-256 fingerprint of the API key, so that two
merchants or two environments never share keys.

Limits: two byte-identical events are one event (publish a correction with a new
timestamp, not the same content twice), and a different API key or namespace gives
different keys (pass a fixed ``key_namespace`` to keep keys stable across key
rotation).
"""

from __future__ import annotations

import hashlib
import os
import uuid

__all__ = ["derive_idempotency_key", "key_namespace_uuid", "new_idempotency_key"]

# Random bytes are read from the OS in blocks, because one read per key costs more
# than formatting the key. After fork the child must not reuse the parent's block.
_BLOCK_KEYS = 256
_random_block = b""
_random_offset = 0


def _forget_random_block() -> None:
    global _random_block, _random_offset
    _random_block, _random_offset = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_random_block)


def new_idempotency_key() -> str:
    """Return a random UUID version 4, as ``str(uuid.uuid4())`` does, but faster.

    The bytes come from ``os.urandom``, as for ``uuid.uuid4``.
    """
    global _random_block, _random_offset
    if _random_offset >= len(_random_block):
        _random_block, _random_offset = os.urandom(16 * _BLOCK_KEYS), 0
    start = _random_offset
    _random_offset = start + 16
    return _format_uuid(_random_block[start : start + 16].hex(), version="4")


def _format_uuid(digits: str, *, version: str) -> str:
    """Format the first 32 hex digits as a UUID with ``version`` and the RFC 9562 variant."""
    # The version is the 13th hex digit; the variant bits 10 start the 17th.
    variant = "89ab"[int(digits[16], 16) & 3]
    return (
        f"{digits[:8]}-{digits[8:12]}-{version}{digits[13:16]}-"
        f"{variant}{digits[17:20]}-{digits[20:32]}"
    )


def key_namespace_uuid(
    *, api_key: str, base_url: str, key_namespace: str | None = None
) -> uuid.UUID:
    """Return the namespace UUID of derived keys for one merchant and environment."""
    if key_namespace is not None:
        if not key_namespace:
            raise ValueError("key_namespace must be a non-empty string, or None for the default.")
        name = f"hakuna-async:namespace:{key_namespace}"
    else:
        fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
        name = f"hakuna-async:{base_url}:{fingerprint}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name)


def derive_idempotency_key(body: bytes, namespace: uuid.UUID) -> str:
    """Return the idempotency key for an event's canonical JSON ``body``.

    The key is a name-based UUID version 8 as RFC 9562 describes it (section 5.8 and
    its SHA-256 example): the first 16 bytes of SHA-256 over the namespace's 16 bytes
    followed by ``body``, with the version and variant bits set.
    """
    digits = hashlib.sha256(namespace.bytes + body).hexdigest()
    return _format_uuid(digits, version="8")
