"""The retry delays while head office is unreachable: doubling, capped, jittered."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ecrlink.journal.sync import Backoff


@given(
    base=st.floats(0.01, 5), cap=st.floats(0.1, 120), failures=st.integers(1, 80),
    seed=st.integers(0, 2**32),
)
def test_delays_double_up_to_the_cap_and_are_jittered(
    base: float, cap: float, failures: int, seed: int
) -> None:
    backoff = Backoff(base, cap, random.Random(seed))
    for n in range(failures):
        ceiling = min(cap, base * 2**n)
        delay = backoff.next()
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() <= min(cap, base)


def test_stores_cut_off_together_do_not_retry_together() -> None:
    delays = {round(Backoff(0.5, 30, random.Random(seed)).next(), 6) for seed in range(20)}
    assert len(delays) == 20
