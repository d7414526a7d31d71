"""Fault injection for the sandbox: planned misbehaviour for the next matching requests.

A test adds a rule with ``sandbox.faults.add(fault, path=..., method=..., times=...)``,
or a seeded random rule with ``sandbox.faults.add_random(faults, probability=..., seed=...)``.
Each incoming request takes the first rule whose path and method match (a random rule
matches only when its draw hits), and a counted rule is used up after ``times``
requests. The five fault types cover what a client must survive on a real network.
``Respond`` sends an error status and ``Delay`` a slow response. ``Drop`` closes the
connection without a response (a FIN, after the whole request was read), ``Reset``
resets it (an RST), and ``StallBody`` stops sending the response body midway.

``RawHTTPServer`` accepts ``Respond`` and ``Reset`` too, for what aiohttp.web cannot do.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
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
    "RandomFaultRule",
    "Reset",
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
class Reset:
    """Reset the TCP connection (an RST, through ``SO_LINGER`` 0) without sending any response.

    With ``after_handling=False`` the connection is reset as soon as the request line
    and headers have arrived, before the body is read: nothing is handled or stored,
    and the recorded request has an empty body. With ``after_handling=True`` the
    request is read and handled (an event is stored) before the reset, so the client
    cannot tell whether the request took effect.
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


Fault: TypeAlias = Respond | Delay | Drop | Reset | StallBody
_FAULT_TYPES = (Respond, Delay, Drop, Reset, StallBody)


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


@dataclass(slots=True)
class RandomFaultRule:
    """A fault drawn at random for each request with ``method`` and ``path``, until ``clear()``.

    Each matching request draws once from ``generator``: with ``probability`` it takes
    one of ``faults``, each equally likely. The same seed and the same order of requests
    give the same faults.
    """

    faults: tuple[Fault, ...]
    probability: float
    path: str
    method: str | None
    generator: random.Random

    def draw(self) -> Fault | None:
        """Return the fault for one request, or ``None`` when the draw misses."""
        # Two draws per request whatever the outcome, so that one request's result
        # never shifts the choices made for the requests after it.
        hit = self.generator.random() < self.probability
        choice = self.faults[int(self.generator.random() * len(self.faults))]
        return choice if hit else None


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
        self._rules: list[FaultRule | RandomFaultRule] = []
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
        _check_fault(fault)
        _check_path(path)
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

    def add_random(
        self,
        faults: Sequence[Fault],
        *,
        probability: float,
        seed: int,
        path: str = "/events",
        method: str | None = None,
    ) -> RandomFaultRule:
        """Apply one of ``faults`` to each matching request with ``probability``, until ``clear()``.

        The choice among ``faults`` is uniform, so list a fault twice to make it twice
        as likely. Draws come from ``random.Random(seed)`` in the order requests
        arrive: the faults are reproducible as long as that order is. Rules added
        before this one are tried first, and a request that the draw misses goes on to
        the rules after it.
        """
        chosen = tuple(faults)
        if not chosen:
            raise ValueError("add_random needs at least one fault.")
        for fault in chosen:
            _check_fault(fault)
        _check_path(path)
        if not (isinstance(probability, int | float) and 0 <= probability <= 1):
            raise ValueError(f"Fault probability must be from 0 to 1, got {probability!r}.")

        rule = RandomFaultRule(
            faults=chosen,
            probability=float(probability),
            path=path,
            method=None if method is None else method.upper(),
            generator=random.Random(seed),
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
    def pending(self) -> tuple[FaultRule | RandomFaultRule, ...]:
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

            if isinstance(rule, RandomFaultRule):
                fault = rule.draw()
                if fault is None:
                    continue
            else:
                fault = rule.fault
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        del self._rules[index]
            self.applied.append(
                AppliedFault(fault=fault, method=method, path=path, applied_at=datetime.now(UTC))
            )
            return fault
        return None


def _check_fault(fault: object) -> None:
    if not isinstance(fault, _FAULT_TYPES):
        raise TypeError(
            "Expected a Respond, Delay, Drop, Reset or StallBody fault, "
            f"got {type(fault).__name__}."
        )


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"Fault path must start with '/', got {path!r}.")
