"""A payment attempt, pure: its states, how it is proven, and its flow.

``states`` holds the one transition table (the journal enforces it), ``proof``
decides what ``last trans`` proves about a payment whose answer was lost, and
``flow`` is the whole attempt written once as generators that yield the effects
they need (send, pause, journal) for the blocking and asyncio drivers to carry out.
"""

from .proof import Attempt, Judgement, Mark, Verdict, judge
from .states import FINAL_STATES, OPEN_STATES, TRANSITIONS, Event, State, next_state

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "TRANSITIONS",
    "Attempt",
    "Event",
    "Judgement",
    "Mark",
    "State",
    "Verdict",
    "judge",
    "next_state",
]
