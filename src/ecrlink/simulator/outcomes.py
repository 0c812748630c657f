"""What the simulated terminal does with a sale: by magic amount, or by script.

The last three digits of the amount pick the outcome (see ``MAGIC_AMOUNTS``); a queue
of scripted outcomes, when not empty, overrides that rule for the next sale. Outcome
names are the strings users type: ``approve``, ``decline:NN``, ``cancel``,
``no_answer``, ``lost_reply``, ``truncated``.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .._exceptions import ConfigError

__all__ = [
    "MAGIC_AMOUNTS",
    "Behaviour",
    "Plan",
    "Script",
    "parse_plan",
    "plan_for_amount",
]


class Behaviour(enum.StrEnum):
    """How the terminal behaves for one sale."""

    APPROVE = "approve"
    DECLINE = "decline"
    CANCEL = "cancel"
    """The customer pressed Cancel: ``status: CANCELED``, nothing charged."""
    NO_ANSWER = "no_answer"
    """The terminal never answers and charges nothing; the ECR must time out."""
    LOST_REPLY = "lost_reply"
    """Approved by the bank, then the reply is lost (HTTP close / serial silence)."""
    TRUNCATED = "truncated"
    """Approved by the bank, then half a reply that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One outcome: a behaviour and, for approvals and declines, the return code."""

    behaviour: Behaviour
    return_code: str = "00"

    @property
    def name(self) -> str:
        """The outcome as a user writes it (``decline:51``)."""
        if self.behaviour is Behaviour.DECLINE:
            return f"decline:{self.return_code}"
        return self.behaviour.value


APPROVE = Plan(Behaviour.APPROVE)

MAGIC_AMOUNTS: dict[int, Plan] = {
    51: Plan(Behaviour.DECLINE, "51"),
    55: Plan(Behaviour.DECLINE, "55"),
    5: Plan(Behaviour.DECLINE, "05"),
    91: Plan(Behaviour.DECLINE, "91"),
    999: Plan(Behaviour.CANCEL),
    998: Plan(Behaviour.NO_ANSWER),
    997: Plan(Behaviour.LOST_REPLY),
    996: Plan(Behaviour.TRUNCATED),
}
"""Last three digits of the amount → outcome; every other amount is approved."""


def plan_for_amount(amount: int) -> Plan:
    """The outcome the amount asks for (``150_051`` → declined 51)."""
    return MAGIC_AMOUNTS.get(amount % 1000, APPROVE)


def parse_plan(text: str) -> Plan:
    """Parse an outcome name; raise ``ConfigError`` naming what is wrong."""
    if not isinstance(text, str):
        raise ConfigError(f"outcome must be a string, not {type(text).__name__}")
    name, sep, code = text.strip().partition(":")
    if name == "decline":
        if not sep or len(code) != 2 or not code.isascii() or not code.isdigit():
            raise ConfigError(f"outcome {text!r}: write decline:NN with a 2-digit return code")
        if code == "00":
            raise ConfigError(f"outcome {text!r}: 00 is an approval, write 'approve'")
        return Plan(Behaviour.DECLINE, code)
    if not sep:
        try:
            behaviour = Behaviour(name)
        except ValueError:
            pass
        else:
            if behaviour is not Behaviour.DECLINE:
                return Plan(behaviour)
    names = ", ".join(b.value if b is not Behaviour.DECLINE else "decline:NN" for b in Behaviour)
    raise ConfigError(f"unknown outcome {text!r}; use one of {names}")


class Script:
    """A queue of outcomes for the next sales; safe to fill from any thread."""

    def __init__(self) -> None:
        self._queue: deque[Plan] = deque()
        self._lock = threading.Lock()

    def extend(self, outcomes: Iterable[str | Plan]) -> None:
        """Queue outcomes; if one is invalid, none is queued (``ConfigError``)."""
        if isinstance(outcomes, str | bytes):
            raise ConfigError("script takes a list of outcomes, not one string")
        plans = [o if isinstance(o, Plan) else parse_plan(o) for o in outcomes]
        with self._lock:
            self._queue.extend(plans)

    def next(self) -> Plan | None:
        """Take the next scripted outcome, or None if the script is empty."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def pending(self) -> list[str]:
        """The queued outcomes' names, next first."""
        with self._lock:
            return [p.name for p in self._queue]

    def clear(self) -> None:
        """Forget every queued outcome."""
        with self._lock:
            self._queue.clear()
