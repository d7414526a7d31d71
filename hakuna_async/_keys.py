"""Idempotency keys derived from an event's content, so that a rerun sends the same keys.

A batch job that is killed and run again must not publish anything twice. With a
random key per call, the events that were in flight when the job died would be sent
again under new keys and stored twice. A key derived from the event itself is the
same in every run, so Hakuna replays the first response instead.

The rule: the key is a UUID version 5 whose name is the SHA-256 of the event's
canonical JSON (the bytes the client sends: fields in schema order, no whitespace),
inside a namespace UUID. The namespace comes from ``key_namespace`` when given,
otherwise from the base URL and a SHA-256 fingerprint of the API key, so that two
merchants or two environments never share keys.

Limits: two byte-identical events are one event (publish a correction with a new
timestamp, not the same content twice), and a different API key or namespace gives
different keys (pass a fixed ``key_namespace`` to keep keys stable across key
rotation).
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["derive_idempotency_key", "key_namespace_uuid"]


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
    """Return the idempotency key for an event's canonical JSON ``body``."""
    return str(uuid.uuid5(namespace, hashlib.sha256(body).hexdigest()))
