"""What the engine keeps, as msgspec Structs (the Struct is also the stored
form, see ``ledger.engine.tables``): one order's state, a buyer's clicks and
unsettled orders, the journal's own row; and the outcome of one input."""

from __future__ import annotations

from sys import intern
from typing import NamedTuple, Union

import msgspec

from ledger.attribution import ClickRef
from ledger.config import Rules
from ledger.records import DeadLetter, Source, Transfer
from schemas.events import Order, order_currency

ACCEPTED = "accepted"
PARKED = "parked"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"


class Outcome(NamedTuple):
    status: str  # accepted | parked | duplicate | dead_letter
    event_id: str | None
    transfers: list[Transfer]
    dead_letter: DeadLetter | None = None  # when status is dead_letter
    released: list[DeadLetter] = []  # parked refunds (or fulfillments) rejected by this event


class Params(NamedTuple):
    """One rules version, compiled for the hot path (durations in µs)."""

    model: str
    window_us: int
    lock_us: int
    deny_self_referral: bool
    rates_bp: tuple[int, int, int, int]  # level1/level2 default rate, level1/level2 cap
    order_cap_bp: int
    order_cap_minor: int | None
    scope: str  # any | merchant | product (SPEC §14)
    receipt_clock: bool  # clock = "receipt" (SPEC §15)
    return_window_us: int
    auto_receive_us: int
    review_self_referral: bool = False  # SPEC §16
    review_amount_over_minor: int = 0

    @classmethod
    def of(cls, rules: Rules) -> "Params":
        return cls(
            rules.model, rules.window_us, rules.attribution_lock_us, rules.self_referral == "deny",
            (rules.level1_rate_bp, rules.level2_rate_bp, rules.level1_cap_bp, rules.level2_cap_bp),
            rules.order_cap_bp, rules.order_cap_amount_minor,
            rules.scope, rules.clock == "receipt", rules.return_window_us, rules.auto_receive_after_us,
            rules.self_referral == "review", rules.review_amount_over_minor,
        )


class ShareRef(NamedTuple):
    occurred_us: int
    event_id: str
    share_id: str
    promoter_id: str
    parent_share_id: str | None
    merchant_id: str | None = None  # SPEC §14: what the share can earn on (None: anything)
    product_id: str | None = None


class Upline(NamedTuple):
    promoter_id: str  # Q, the level-2 beneficiary of P's orders
    since_us: int  # the binding share's occurred_us
    event_id: str  # the binding share's event_id
    share_id: str  # the binding share


class Beneficiary(NamedTuple):
    promoter_id: str
    amount_minor: int  # before refunds


class Decision(NamedTuple):
    """Who an order pays and how much before refunds, and why (SPEC §3–§5)."""

    click: Union[ClickRef, None]  # the winning click (or the binding's), None: unattributed
    level1: Union[Beneficiary, None]
    level2: Union[Beneficiary, None]
    upline: Union[Upline, None]  # the level-1 promoter's upline binding, even one dated after the order
    capped_minor: tuple[int, int]  # (L1, L2) after the order cap, before self-referral
    self_referral: Union[str, None]  # "level1" | "level2": what self_referral = "deny" zeroed


NO_DECISION = Decision(None, None, None, None, (0, 0), None)

Posted = Union[tuple[str, int], None]  # (promoter_id, amount_minor) posted for one level


class LineShare(NamedTuple):
    """What a line brings to its group under ``scope = "product"`` (SPEC §14)."""

    product_id: str  # ℓ.product_id, else ℓ.sku
    commissionable_minor: int  # a
    level1_minor: int  # floor(a × r1 / 10000)
    level2_minor: int


class Group(NamedTuple):
    """A commission group (SPEC §14): the lines whose winning click's share
    belongs to one promoter, with §5 applied to them on their own."""

    lines: tuple[int, ...]  # indexes of its lines in the order
    clicks: tuple[ClickRef, ...]  # each of those lines' winning click
    commissionable_minor: int  # C_g
    order_cap_minor: int  # K_g
    level1: Beneficiary
    level2: Union[Beneficiary, None]
    upline: Union[Upline, None]
    capped_minor: tuple[int, int]  # (L1, L2) after K_g, before self-referral
    self_referral: Union[str, None]


class OrderState(msgspec.Struct, array_like=True, gc=False):
    """What the ledger keeps of an order: ids, instant and amounts, not its lines."""

    order_id: str
    event_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_us: int
    rules_version: int
    commissionable_minor: int  # C
    level1_minor: int  # Σ floor(a × r1 / 10000), before the order cap
    level2_minor: int
    order_cap_minor: int  # K
    refunded_minor: int = 0  # R
    refunds: tuple[tuple[str, int], ...] = ()  # (refund_id, amount_minor) applied
    settled: bool = False
    decision: Decision = NO_DECISION
    posted1: Posted = None  # what is currently posted per level
    posted2: Posted = None
    # Issue 20 (trailing, so rows written before decode with the defaults).
    lines: tuple[LineShare, ...] = ()  # scope = "product" only: per line
    groups: tuple[Group, ...] = ()  # scope = "product": the decision (``decision`` stays NO_DECISION)
    posted: tuple[tuple[int, str, int], ...] = ()  # scope = "product": (level, promoter, amount) posted
    receipt_clock: bool = False  # clock = "receipt" under the order's rules (SPEC §15)
    shipped_us: Union[int, None] = None  # earliest accepted shipped fulfillment
    received_us: Union[int, None] = None  # earliest accepted received fulfillment
    due_us: Union[int, None] = None  # receipt clock: when it is due (its key in the due index), None: not yet
    # SPEC §16: out of the settlement indexes while a hold is in force (a fulfillment
    # or refund that moves ``due_us`` then moves no key; a release puts it back).
    withdrawn: bool = False
    # The group (its level-1 promoter) of each entry of ``posted`` (SPEC §14):
    # one upline can be level 2 of two groups, posted apart. Empty in rows
    # written before (each level-1 entry is its own group; see posted_entries).
    posted_groups: tuple[str, ...] = ()

    @classmethod
    def new(cls, order: Order, occurred_us: int, rules_version: int, totals: tuple[int, int, int, int]) -> "OrderState":
        # Interned: one copy per buyer, merchant and currency, not one per order.
        return cls(order.order_id, order.event_id, intern(order.buyer_id), intern(order.merchant_id),
                   intern(order_currency(order)), occurred_us, rules_version, *totals)


class HoldNote(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One SPEC §16 step of an order or promoter, as explain and `holds` show it."""

    action: str  # hold | review | release | reject
    actor: str  # who; "settle" for a review hold
    reason: str  # the text given; a review hold's reasons joined by ","
    position: int  # the journal position of the record


class OrderHolds(msgspec.Struct, array_like=True, gc=False):
    """An order's holds, review, approval and rejection (SPEC §16)."""

    notes: list[HoldNote] = []  # every step, in order
    holds: int = 0  # `hold order` records in force (since the last release)
    review: list[str] = []  # the review hold's reasons, while in force
    approved: bool = False
    rejected: bool = False

    def in_force(self) -> bool:
        return self.holds > 0 or bool(self.review)

    def notes_in_force(self) -> list[HoldNote]:
        """The hold and review notes since the last release or rejection."""
        start = 0
        for i, note in enumerate(self.notes):
            if note.action in ("release", "reject"):
                start = i + 1
        return [n for n in self.notes[start:] if n.action in ("hold", "review")] if self.in_force() else []


class OrderRef(NamedTuple):
    """An unsettled order as its buyer's row lists it: enough to tell whether
    a click can change it without loading it."""

    occurred_us: int
    order_id: str
    rules_version: int


class BuyerRow(msgspec.Struct, array_like=True, gc=False):
    """A buyer's row: the known-share clicks, the recent ones sorted (older
    ones are in cold rows, see ``ledger.engine.clicks``), and the unsettled
    orders (``ledger.engine.orders``). One row: every click reads both."""

    clicks: list[ClickRef] = []
    # (occurred_us, event_id) ≥ every click of this buyer in cold rows, or None.
    # The clicks here after it, plus the last binding start before it for each
    # customer_lock period in ``locks``, decide exactly what all the clicks would
    # decide for any order dated after it.
    spilled_until: Union[tuple[int, str], None] = None
    cold_rows: int = 0  # cold rows of this buyer
    locks: tuple[int, ...] = ()  # lock periods (µs) whose last binding start stayed here
    orders: list[OrderRef] = []  # unsettled orders, in arrival order


class ParkedClick(NamedTuple):
    buyer_id: str
    click: ClickRef


class ParkedRefund(NamedTuple):
    raw: bytes  # the refund event, decoded again when its order arrives
    source: Source


ParkedFulfillment = ParkedRefund  # the same: raw event and source, decoded when the order arrives


class JournalMeta(msgspec.Struct, gc=False):
    """The journal's own row: where its state stands, and small counters."""

    version: int = 0  # segments the state reflects
    position: int = 0  # records the state reflects
    head_sha256: bytes = b""  # hash of the last segment (the chain head)
    rules_toml: list[str] = []  # the rules versions, oldest first
    watermark_us: Union[int, None] = None  # latest click or order instant
    parked_clicks: int = 0
    parked_refunds: int = 0
    parked_fulfillments: int = 0  # SPEC §15 (issue 20)
    awaiting_receipt: int = 0  # receipt-clock orders unsettled, not received, not fully refunded
    state_format: int = 0  # ledger.statestore.STATE_FORMAT when written; 0: before the format had a number
