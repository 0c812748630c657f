"""The one transition table: every path a command can take, and none other."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import IllegalTransition
from ecrlink.payment import FINAL_STATES, OPEN_STATES, TRANSITIONS, Event, State, next_state
from ecrlink.payment.states import walk


def test_a_sale_answered_goes_pending_sent_approved() -> None:
    assert walk(State.PENDING, [Event.SENT, Event.REPLY_APPROVED]) == [State.SENT, State.APPROVED]


def test_what_never_left_is_failed_never_in_doubt() -> None:
    assert next_state(State.PENDING, Event.NOT_SENT) is State.FAILED
    with pytest.raises(IllegalTransition):
        next_state(State.SENT, Event.NOT_SENT)


def test_final_states_never_move() -> None:
    assert {State.APPROVED, State.DECLINED, State.CANCELED,
                            State.AMOUNT_MISMATCH, State.FAILED} == FINAL_STATES
    for state in FINAL_STATES:
        for event in Event:
            with pytest.raises(IllegalTransition, match=state.value):
                next_state(state, event)


def test_a_timeout_cannot_be_a_decline() -> None:
    # the only way from sent to declined is a reply; from in doubt, a proof
    assert {e for e, s in TRANSITIONS[State.SENT].items() if s is State.DECLINED} == {
        Event.REPLY_DECLINED}
    assert {e for e, s in TRANSITIONS[State.IN_DOUBT].items() if s is State.DECLINED} == {
        Event.PROVEN_NOT_APPROVED}


@given(st.lists(st.sampled_from(list(Event)), max_size=6))
def test_any_event_sequence_is_either_legal_or_refused(events: list[Event]) -> None:
    state = State.PENDING
    for event in events:
        if event in TRANSITIONS[state]:
            new = next_state(state, event)
            assert new in OPEN_STATES or new in FINAL_STATES
            state = new
        else:
            with pytest.raises(IllegalTransition):
                next_state(state, event)
