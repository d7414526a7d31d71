"""Fault injection for the sandbox: planned misbehaviour for the next matching requests.

A test adds a rule with ``sandbox.faults.add(fault, path=..., method=..., times=...)``.
Each incoming request takes the first rule whose path and method match, and the rule
is used up after ``times`` requests. The four fault types cover what a client must
survive on a real network: an error status (``Respond``), a slow response (``Delay``), a
connection closed without a response (``Drop``) and a response body that stops
arriving (``StallBody``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

__all__ = [
    "AppliedFault",
    "Delay",
    "Drop",
    "Fault",
    "FaultInjector",
    "FaultRule",
    "Respond",
    "StallBody",
]


@dataclass(frozen=True)
class Respond:
    """Send this status instead of handling the request, so nothing is stored.

    ``body`` is sent as given: a mapping as JSON, ``str`` as UTF-8 text, ``bytes``
    unchanged. Without a body the sandbox sends a JSON error with error_code
    ``injected_fault``. A ``Content-Type`` in ``headers`` overrides the default type.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(
                f"Respond status must be an HTTP status from 100 to 599, got {self.status}."
            )


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before handling the request normally.

    The request is handled even when the client has given up in the meantime, so
    a client timeout during a delay can still store an event.
    """

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Delay seconds must be 0 or more, got {self.seconds}.")


@dataclass(frozen=True)
class Drop:
    """Close the TCP connection without sending any response.

    With ``after_handling=False`` the request is not handled and nothing is stored.
    With ``after_handling=True`` the request is handled (an event is stored and its
    idempotency key remembered) and only the response is lost, so the client cannot
    tell whether the request took effect.
    """

    after_handling: bool = False


@dataclass(frozen=True)
class StallBody:
    """Handle the request, send the status, headers and the first half of the body, then stall.

    The ``Content-Length`` header announces the whole body, so the client waits for
    the rest. After ``seconds`` (or when the sandbox stops) the rest of the body is
    sent, unless the client has closed the connection by then.
    """

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"StallBody seconds must be 0 or more, got {self.seconds}.")


Fault: TypeAlias = Respond | Delay | Drop | StallBody


@dataclass(slots=True)
class FaultRule:
    """A planned fault for the next ``remaining`` requests with ``method`` and ``path``.

    A ``method`` of ``None`` matches every method, and a ``remaining`` of ``None``
    means no limit.
    """

    fault: Fault
    path: str
    method: str | None
    remaining: int | None


@dataclass(frozen=True, slots=True)
class AppliedFault:
    """One request that a fault was applied to."""

    fault: Fault
    method: str
    path: str
    applied_at: datetime


class FaultInjector:
    """The fault rules of one sandbox, and the faults applied so far."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self.applied: list[AppliedFault] = []

    def add(
        self,
        fault: Fault,
        *,
        path: str = "/events",
        method: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """Apply ``fault`` to the next ``times`` requests for exactly ``path`` and ``method``.

        ``path`` is the request path without the query string, for example
        ``/orders/ord-1/plan-connections``. ``method`` ``None`` matches every method and
        ``times`` ``None`` applies the fault until ``clear()``. Rules are tried in the
        order they were added, and one request takes at most one fault.
        """
        if not isinstance(fault, Respond | Delay | Drop | StallBody):
            raise TypeError(
                f"Expected a Respond, Delay, Drop or StallBody fault, got {type(fault).__name__}."
            )
        if not path.startswith("/"):
            raise ValueError(f"Fault path must start with '/', got {path!r}.")
        if times is not None and times < 1:
            raise ValueError(f"Fault times must be 1 or more (or None for no limit), got {times}.")

        rule = FaultRule(
            fault=fault,
            path=path,
            method=None if method is None else method.upper(),
            remaining=times,
        )
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every pending rule. The ``applied`` history is kept until ``reset()``."""
        self._rules.clear()

    def reset(self) -> None:
        """Remove every pending rule and forget the applied faults."""
        self._rules.clear()
        self.applied.clear()

    @property
    def pending(self) -> tuple[FaultRule, ...]:
        """The rules that still apply to future requests."""
        return tuple(self._rules)

    def applied_count(self, fault_type: type[Fault] | None = None) -> int:
        """Count the requests that a fault (of ``fault_type``, if given) was applied to."""
        if fault_type is None:
            return len(self.applied)
        return sum(1 for applied in self.applied if isinstance(applied.fault, fault_type))

    def take(self, method: str, path: str) -> Fault | None:
        """Return the fault for this request and use up one application of its rule."""
        if not self._rules:
            return None

        for index, rule in enumerate(self._rules):
            if rule.path != path or (rule.method is not None and rule.method != method):
                continue

            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self._rules[index]
            self.applied.append(
                AppliedFault(
                    fault=rule.fault, method=method, path=path, applied_at=datetime.now(UTC)
                )
            )
            return rule.fault
        return None
