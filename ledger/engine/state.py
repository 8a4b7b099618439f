"""What the engine keeps: one order's state, one rules version compiled, the
outcome of one input. Plain data; the components that own it are next door."""

from __future__ import annotations

from sys import intern
from typing import NamedTuple

from ledger.attribution import ClickRef
from ledger.config import Rules
from ledger.network import Upline
from ledger.records import DeadLetter, Source, Transfer
from schemas.events import Order, Refund, order_currency

ACCEPTED = "accepted"
PARKED = "parked"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"


class Outcome(NamedTuple):
    status: str  # accepted | parked | duplicate | dead_letter
    event_id: str | None
    transfers: list[Transfer]
    dead_letter: DeadLetter | None = None  # when status is dead_letter
    released: list[DeadLetter] = []  # parked refunds rejected by this event


class Params(NamedTuple):
    """One rules version, compiled for the hot path (durations in µs)."""

    model: str
    window_us: int
    lock_us: int
    deny_self_referral: bool
    rates_bp: tuple[int, int, int, int]  # level1/level2 default rate, level1/level2 cap
    order_cap_bp: int
    order_cap_minor: int | None

    @classmethod
    def of(cls, rules: Rules) -> "Params":
        return cls(
            rules.model, rules.window_us, rules.attribution_lock_us, rules.self_referral == "deny",
            (rules.level1_rate_bp, rules.level2_rate_bp, rules.level1_cap_bp, rules.level2_cap_bp),
            rules.order_cap_bp, rules.order_cap_amount_minor,
        )


class Beneficiary(NamedTuple):
    promoter_id: str
    amount_minor: int  # before refunds


class Decision(NamedTuple):
    """Who an order pays and how much before refunds, and why (SPEC §3–§5)."""

    click: ClickRef | None  # the winning click (or the binding's), None: unattributed
    level1: Beneficiary | None
    level2: Beneficiary | None
    upline: Upline | None  # the level-1 promoter's upline binding, even one dated after the order
    capped_minor: tuple[int, int]  # (L1, L2) after the order cap, before self-referral
    self_referral: str | None  # "level1" | "level2": what self_referral = "deny" zeroed


NO_DECISION = Decision(None, None, None, None, (0, 0), None)


class ParkedRefund(NamedTuple):
    refund: Refund
    raw: bytes
    source: Source


class OrderState:
    """What the ledger keeps of an order: ids, instant and amounts, not its lines."""

    __slots__ = (
        "order_id", "event_id", "buyer_id", "merchant_id", "currency", "occurred_us",
        "rules_version", "commissionable_minor", "level1_minor", "level2_minor", "order_cap_minor",
        "refunded_minor", "refunds", "settled", "decision", "posted1", "posted2",
    )

    def __init__(self, order: Order, occurred_us: int, rules_version: int, totals: tuple[int, int, int, int]):
        self.order_id = order.order_id
        self.event_id = order.event_id
        # Interned: one copy per buyer, merchant and currency, not one per order.
        self.buyer_id = intern(order.buyer_id)
        self.merchant_id = intern(order.merchant_id)
        self.currency = intern(order_currency(order))
        self.occurred_us = occurred_us
        self.rules_version = rules_version
        # C; Σ floor(a × r / 10000) per level, before the order cap; K
        self.commissionable_minor, self.level1_minor, self.level2_minor, self.order_cap_minor = totals
        self.refunded_minor = 0  # R
        self.refunds: tuple[tuple[str, int], ...] = ()  # (refund_id, amount_minor) applied
        self.settled = False
        self.decision = NO_DECISION
        # What is currently posted per level: (promoter_id, amount_minor) or None.
        self.posted1: tuple[str, int] | None = None
        self.posted2: tuple[str, int] | None = None
