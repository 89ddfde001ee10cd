"""Coupons: a code and the percentage it takes off each category."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional


@dataclass(frozen=True)
class Coupon:
    code: str
    description: str
    rates: Dict[str, int] = field(default_factory=dict)  # category -> percent off


COUPONS: Dict[str, Coupon] = {
    "WELCOME5": Coupon(
        "WELCOME5",
        "5% off everything for new customers",
        {"books": 5, "games": 5, "kitchen": 5, "gift-cards": 5},
    ),
    "SPRING10": Coupon(
        "SPRING10",
        "10% off books, games and kitchen",
        {"books": 10, "games": 10, "kitchen": 10},
    ),
    "READER20": Coupon(
        "READER20",
        "20% off books",
        {"books": 20, "games": 0, "kitchen": 0, "gift-cards": 0},
    ),
}


class UnknownCoupon(LookupError):
    """A coupon code that does not exist."""


def find_coupon(code: Optional[str]) -> Optional[Coupon]:
    """The coupon for ``code``; ``None`` when no code was given."""
    if not code:
        return None
    try:
        return COUPONS[code.strip().upper()]
    except KeyError:
        raise UnknownCoupon(f"no coupon {code!r}") from None


__all__ = [
    "COUPONS",
    "Coupon",
    "UnknownCoupon",
    "find_coupon",
]  # at the end: the docs cite this module's line numbers
