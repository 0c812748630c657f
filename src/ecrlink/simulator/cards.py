"""Test cards the simulated terminal 'reads', deterministic by seed, never stored whole.

Each card is built from a well-known test range (Napas 9704, VISA 4, Mastercard 5,
JCB 35), completed with seeded digits and a Luhn check digit; the full PAN exists only
inside :func:`_make_card` and is reduced there to its first 6 and last 4 digits. So no
reply, log line, state file or statement can ever hold an unmasked card number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["TestCard", "card_pool", "luhn_check_digit"]

_CARDHOLDER_WIDTH = 26
"""Serial captures pad the cardholder name with spaces to 26 characters."""


@dataclass(frozen=True, slots=True)
class TestCard:
    """One card as the terminal knows it after reading it: masked, plus its EMV data."""

    bin6: str
    last4: str
    length: int
    card_type: str
    cardholder: str
    card_input: str
    """``S`` swipe, ``C`` chip (contactless too), ``F`` fallback to swipe."""
    emv_app_name: str | None = None
    emv_aid: str | None = None
    expire_date: str = "XXXX"
    grouped: bool = False
    """Domestic cards are printed in groups of four (``9704 XXXX XXXX 6163``)."""

    @property
    def card_no(self) -> str:
        """The number as the terminal's reply shows it: first 4 and last 4 digits."""
        hidden = "X" * (self.length - 8)
        if self.grouped:
            groups = [hidden[i : i + 4] for i in range(0, len(hidden), 4)]
            return " ".join((self.bin6[:4], *groups, self.last4))
        return self.bin6[:4] + hidden + self.last4

    @property
    def statement_card_no(self) -> str:
        """The number as a bank statement shows it: first 6 and last 4 digits."""
        return self.bin6 + "*" * (self.length - 10) + self.last4


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit that completes ``digits`` into a valid card number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these become the odd positions once the check is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class _Profile:
    prefix: str
    length: int
    card_type: str
    card_input: str
    emv_app_name: str | None = None
    emv_aid: str | None = None
    grouped: bool = False


# Test ranges published by the schemes and by Napas's sandbox; a real terminal at a
# Vietnamese shop sees mostly domestic cards, so Napas appears more than once.
_PROFILES = (
    _Profile("970400", 16, "DEBIT CARD", "S", grouped=True),
    _Profile("970436", 16, "DEBIT CARD", "C", "NAPAS", "A0000007271010", grouped=True),
    _Profile("411111", 16, "VISA", "C", "VISA CREDIT", "A0000000031010"),
    _Profile("555555", 16, "MASTER", "C", "MASTERCARD", "A0000000041010"),
    _Profile("356600", 16, "JCB", "C", "JCB CREDIT", "A0000000651010"),
    _Profile("400000", 16, "VISA", "F"),
    _Profile("970418", 19, "DEBIT CARD", "S", grouped=True),
    _Profile("510510", 16, "MASTER", "C", "MASTERCARD PAYPASS", "A0000000041010"),
)

_NAMES = (
    "NGUYEN/VAN AN",
    "TRAN/THI BICH NGOC",
    "LE/HOANG NAM",
    "PHAM/MINH CHAU",
    "VO/THANH TUNG",
    "DANG/THU HA",
    "BUI/QUOC BAO",
    "HOANG/MAI LINH",
)


def _make_card(profile: _Profile, name: str, rng: random.Random) -> TestCard:
    body = profile.prefix + "".join(
        str(rng.randrange(10)) for _ in range(profile.length - len(profile.prefix) - 1)
    )
    pan = body + luhn_check_digit(body)
    card = TestCard(
        bin6=pan[:6],
        last4=pan[-4:],
        length=len(pan),
        card_type=profile.card_type,
        cardholder=name.ljust(_CARDHOLDER_WIDTH),
        card_input=profile.card_input,
        emv_app_name=profile.emv_app_name,
        emv_aid=profile.emv_aid,
        grouped=profile.grouped,
    )
    del pan  # the only place a full card number ever exists
    return card


def card_pool(seed: int) -> tuple[TestCard, ...]:
    """The terminal's cards for ``seed``: one per profile, same seed → same cards."""
    rng = random.Random(f"ecrlink-cards-{seed}")
    return tuple(
        _make_card(profile, name, rng) for profile, name in zip(_PROFILES, _NAMES, strict=True)
    )
