"""The one transition table of a journaled command: every state change lives here.

Like h11's ``_state.py``: states, the events that move them, and one table. The
journal refuses any write that is not a transition in ``TRANSITIONS`` (it calls
:func:`next_state`), so a payment can never go from ``approved`` back to ``in_doubt``,
be approved twice, or be "declined" by a timeout.

::

    pending ──SENT──────────▶ sent ──REPLY_APPROVED──▶ approved
       │                        ├────REPLY_DECLINED──▶ declined
       │                        ├────REPLY_CANCELED──▶ canceled
       │                        ├────REPLY_MISMATCH──▶ amount_mismatch
       │                        ├────REFUSED─────────▶ failed     (busy / not a terminal)
       │                        ├────QUERY_FAILED────▶ failed     (last trans: charges nothing)
       │                        └────LOST────────────▶ in_doubt
       ├──NOT_SENT──────────▶ failed        (provably never reached the terminal)
       ├──QUERY_FAILED──────▶ failed
       └──LOST──────────────▶ in_doubt      (a crash leftover: it may have been sent)

    in_doubt / pending ──PROVEN_APPROVED─────▶ approved         (by last trans, the
                       ──PROVEN_NOT_APPROVED─▶ declined          cashier or the bank's
                       ──PROVEN_MISMATCH─────▶ amount_mismatch   statement)

``sent`` is written in the same commit as what follows it (the history keeps both
steps), so a sale still costs two commits: ``pending`` before the first byte, the
answer after. ``declined`` reached by ``PROVEN_NOT_APPROVED`` means "not approved":
nothing was charged. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .._exceptions import IllegalTransition

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "TRANSITIONS",
    "Event",
    "State",
    "next_state",
    "walk",
]


class State(enum.StrEnum):
    """Where a journaled command stands."""

    PENDING = "pending"
    """Written down before sending; may or may not have left (a crash leaves these)."""
    SENT = "sent"
    """The request left for the terminal; no answer yet."""
    APPROVED = "approved"
    DECLINED = "declined"
    """Declined by the bank or the terminal; after recovery: proven not approved."""
    CANCELED = "canceled"
    AMOUNT_MISMATCH = "amount_mismatch"
    """Approved for another amount than requested: ``charged_amount`` says how much."""
    IN_DOUBT = "in_doubt"
    """May have reached the terminal, no valid answer: nobody knows yet."""
    FAILED = "failed"
    """Nothing was charged: it never reached the terminal, or the terminal refused it."""


class Event(enum.StrEnum):
    """What happened to a command; the table says where it leads."""

    SENT = "sent"
    NOT_SENT = "not_sent"
    REPLY_APPROVED = "reply_approved"
    REPLY_DECLINED = "reply_declined"
    REPLY_CANCELED = "reply_canceled"
    REPLY_MISMATCH = "reply_mismatch"
    REFUSED = "refused"
    """The terminal (503 busy) or something that is not a terminal refused it."""
    QUERY_FAILED = "query_failed"
    """A command that charges nothing (``last trans``) got no usable answer."""
    LOST = "lost"
    """No valid answer, and it may have reached the terminal."""
    PROVEN_APPROVED = "proven_approved"
    PROVEN_NOT_APPROVED = "proven_not_approved"
    PROVEN_MISMATCH = "proven_mismatch"


_PROOFS = {
    Event.PROVEN_APPROVED: State.APPROVED,
    Event.PROVEN_NOT_APPROVED: State.DECLINED,
    Event.PROVEN_MISMATCH: State.AMOUNT_MISMATCH,
}

TRANSITIONS: dict[State, dict[Event, State]] = {
    State.PENDING: {
        Event.SENT: State.SENT,
        Event.NOT_SENT: State.FAILED,
        Event.QUERY_FAILED: State.FAILED,
        Event.LOST: State.IN_DOUBT,
        **_PROOFS,
    },
    State.SENT: {
        Event.REPLY_APPROVED: State.APPROVED,
        Event.REPLY_DECLINED: State.DECLINED,
        Event.REPLY_CANCELED: State.CANCELED,
        Event.REPLY_MISMATCH: State.AMOUNT_MISMATCH,
        Event.REFUSED: State.FAILED,
        Event.QUERY_FAILED: State.FAILED,
        Event.LOST: State.IN_DOUBT,
    },
    State.IN_DOUBT: dict(_PROOFS),
    State.APPROVED: {},
    State.DECLINED: {},
    State.CANCELED: {},
    State.AMOUNT_MISMATCH: {},
    State.FAILED: {},
}

OPEN_STATES = frozenset({State.PENDING, State.SENT, State.IN_DOUBT})
"""States whose outcome is not known yet."""
FINAL_STATES = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


def next_state(state: State, event: Event) -> State:
    """Where ``event`` takes ``state``; ``IllegalTransition`` if the table has no such move."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(
            f"{event.value} is not a transition from {state.value}"
        ) from None


def walk(state: State, events: Iterable[Event]) -> list[State]:
    """The states ``events`` lead through from ``state`` (each step checked)."""
    path: list[State] = []
    for event in events:
        state = next_state(state, event)
        path.append(state)
    return path
