"""What the journal stores: immutable records, msgspec Structs tagged on ``kind``.

A record is one step of the ledger: an ingested wire event (with the transfers
it caused), a dead letter, a command (settle, payout, adjust) or a change of
rules. Money moves only as ``Transfer``s between two buckets, so every posting
balances by construction (double entry, TigerBeetle-style).
"""

from __future__ import annotations

import hashlib
from typing import Generic, Iterable, TypeVar, Union

import msgspec

# Buckets a transfer moves money between. A promoter's balances are
# pending/payable/paid; "expense" is the merchant's commission expense and
# "adjustment" the platform's adjustment account.
EXPENSE = "expense"
PENDING = "pending"
PAYABLE = "payable"
PAID = "paid"
ADJUSTMENT = "adjustment"
_BUCKET_INDEX = {PENDING: 0, PAYABLE: 1, PAID: 2}


class Transfer(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """``amount_minor`` (> 0) moves from ``debit`` to ``credit``."""

    kind: str  # accrual | reversal | settlement | clawback | payout | adjustment
    promoter_id: str
    currency: str
    amount_minor: int
    debit: str
    credit: str
    order_id: Union[str, None] = None
    level: Union[int, None] = None
    merchant_id: Union[str, None] = None
    rules_version: Union[int, None] = None


class GroupedTransfer(Transfer, frozen=True, gc=False, array_like=True):
    """In the engine only: a level-2 transfer of a commission group (SPEC §14)
    with the group's level-1 promoter. A record never stores one: it stores the
    plain ``Transfer`` and the group in its ``groups`` (``detach_groups``), so a
    record without groups keeps the bytes it had before groups were recorded."""

    group: str = ""


def detach_groups(transfers: list[Transfer]) -> tuple[list[Transfer], list[tuple[int, str]]]:
    """``transfers`` as plain Transfers, and (index, group) of each grouped one."""
    groups = [(i, t.group) for i, t in enumerate(transfers) if isinstance(t, GroupedTransfer)]
    if not groups:
        return transfers, []
    plain = [Transfer(t.kind, t.promoter_id, t.currency, t.amount_minor, t.debit, t.credit, t.order_id, t.level,
                      t.merchant_id, t.rules_version) if isinstance(t, GroupedTransfer) else t for t in transfers]
    return plain, groups


def fold_transfer(balances: dict[tuple[str, str], list[int]], transfer: "Transfer") -> list[int]:
    """Apply both legs of ``transfer`` to (promoter, currency) → [pending,
    payable, paid]; return that row. The one definition of a promoter balance:
    the engine's live balances and every projection fold with it."""
    key = (transfer.promoter_id, transfer.currency)
    row = balances.get(key)
    if row is None:
        row = balances[key] = [0, 0, 0]
    i = _BUCKET_INDEX.get(transfer.debit)
    if i is not None:
        row[i] -= transfer.amount_minor
    i = _BUCKET_INDEX.get(transfer.credit)
    if i is not None:
        row[i] += transfer.amount_minor
    return row


def fold_records(records: "Iterable[Record]") -> dict[tuple[str, str], list[int]]:
    """(promoter, currency) → [pending, payable, paid] after ``records``."""
    balances: dict[tuple[str, str], list[int]] = {}
    for record in records:
        for transfer in record_transfers(record):
            fold_transfer(balances, transfer)
    return balances


class Source(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Where raw bytes came from: a file line or a Kafka position."""

    file: Union[str, None] = None
    line: Union[int, None] = None
    topic: Union[str, None] = None
    partition: Union[int, None] = None
    offset: Union[int, None] = None

    def text(self) -> str:
        if self.topic is not None:
            return f"{self.topic}/{self.partition}@{self.offset}"
        return f"{self.file}:{self.line}"


class DeadLetter(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    reason: str
    detail: str
    source: Source
    raw: bytes
    event_id: Union[str, None] = None
    order_id: Union[str, None] = None  # a rejected refund: the order it named


class RulesAdopted(msgspec.Struct, tag="rules", frozen=True, gc=False):
    version: int
    digest: str
    rules_toml: str


class Ingested(msgspec.Struct, tag="ingested", frozen=True, gc=False, omit_defaults=True):
    """An accepted, parked or duplicate wire event and what it caused."""

    outcome: str  # accepted | parked | duplicate
    source: Source
    raw: bytes
    event_id: str
    transfers: list[Transfer] = []
    released: list[DeadLetter] = []  # parked refunds rejected now
    occurred_us: Union[int, None] = None  # the event's instant (projections date entries by it)
    order_id: Union[str, None] = None  # an order event: the order it made known
    # (index in ``transfers``, group): the commission group (its level-1 promoter,
    # SPEC §14) of each level-2 transfer posted per group (scope = "product").
    groups: list[tuple[int, str]] = []


class DeadLettered(msgspec.Struct, tag="dead_letter", frozen=True, gc=False):
    letter: DeadLetter


class Settled(msgspec.Struct, tag="settled", frozen=True, gc=False, omit_defaults=True):
    """The orders one settle made payable. ``limit_orders`` > 0: this record
    settles the first ``limit_orders`` due orders at most (a bulk settle is cut
    into records of a bounded size, each its own transaction); when it holds
    that many, another record with the same as-of may follow. 0: every due
    order (and the field is not stored: records written before it are the same bytes)."""

    as_of: str
    as_of_us: int
    rules_version: int
    order_ids: list[str]
    transfers: list[Transfer]
    limit_orders: int = 0
    # SPEC §16: due orders this record held for review (order_id, reasons),
    # and due orders it left waiting on a hold already in force.
    review: list[tuple[str, list[str]]] = []
    held_orders: list[str] = []
    groups: list[tuple[int, str]] = []  # as Ingested.groups


class PaidOut(msgspec.Struct, tag="paid_out", frozen=True, gc=False):
    as_of: str
    as_of_us: int
    rules_version: int
    transfers: list[Transfer]
    # The store position whose balances it paid (every segment up to it): the
    # audit re-derives the balances there and checks every line (0: unknown).
    balances_at: int = 0
    # SPEC §16: the lines it skipped because their promoter was held:
    # (promoter_id, currency, payable_minor).
    held: list[tuple[str, str, int]] = []


class Adjusted(msgspec.Struct, tag="adjusted", frozen=True, gc=False):
    promoter_id: str
    currency: str
    amount_minor: int
    reason: str
    actor: str
    transfers: list[Transfer]


class NetworkRebuilt(msgspec.Struct, tag="network", frozen=True, gc=False, omit_defaults=True):
    """End of a batch in which late shares changed the promoter network: the
    upline walk ran once, and these are the corrections it caused."""

    transfers: list[Transfer]
    groups: list[tuple[int, str]] = []  # as Ingested.groups (omitted when empty: the bytes of before)


def network_rebuilt(transfers: list[Transfer]) -> NetworkRebuilt:
    plain, groups = detach_groups(transfers)
    return NetworkRebuilt(plain, groups)


class Held(msgspec.Struct, tag="held", frozen=True, gc=False):
    """SPEC §16 `hold order|promoter`: recorded in the order's journal, or the
    treasury for a promoter (see docs/decisions.md)."""

    target: str  # order | promoter
    id: str
    actor: str
    reason: str


class Released(msgspec.Struct, tag="released", frozen=True, gc=False):
    """SPEC §16 `release order|promoter`: lifts every hold in force (an order's
    review hold included) and approves the order."""

    target: str  # order | promoter
    id: str
    actor: str
    reason: str


class Rejected(msgspec.Struct, tag="rejected", frozen=True, gc=False, omit_defaults=True):
    """SPEC §16 `reject order`: the order's commission reversed (from pending)
    or clawed back (from payable) in this record, for good. ``id`` is the
    order's id (not ``order_id``: projections read that as an order made known)."""

    id: str
    actor: str
    reason: str
    transfers: list[Transfer]
    groups: list[tuple[int, str]] = []  # as Ingested.groups


Record = Union[RulesAdopted, Ingested, DeadLettered, Settled, PaidOut, Adjusted, NetworkRebuilt, Held, Released, Rejected]


class Segment(msgspec.Struct, frozen=True, gc=False):
    """What one stored event holds: the records of one batch (one transaction).

    ``first`` is the journal position of the first record; positions number
    records 1, 2, 3… across segments, so every record keeps its own address.
    Storing a batch as one event keeps the store's per-row cost off the hot path.
    """

    first: int
    records: list[Record]
    # When the segment was written (UTC µs, the writer's clock). Metadata for
    # time-travel queries ("balances as recorded at month end"); no decision
    # ever reads it, and replay keeps it as stored.
    recorded_us: int = 0


SEGMENT_TOPIC = "commission_ledger.Segment"

# MessagePack keeps raw bytes as bytes (no base64) and is the fastest msgspec
# codec; `commission-ledger` renders records for humans.
_encoder = msgspec.msgpack.Encoder()
_segment_decoder = msgspec.msgpack.Decoder(Segment)


def encode_record(record: Record) -> bytes:
    return _encoder.encode(record)


class RecordMoney(msgspec.Struct, frozen=True, gc=False):
    """A record as projections see it: its kind, transfers and dead letters.
    Decoding into this skips the raw event bytes, which projections never need."""

    type: str
    transfers: list[Transfer] = []
    letter: Union[DeadLetter, None] = None
    released: list[DeadLetter] = []
    # What statements cite as the cause (see cause_of).
    event_id: Union[str, None] = None
    as_of: Union[str, None] = None
    actor: Union[str, None] = None
    reason: Union[str, None] = None
    # What dates it in event time, and the order an order event made known.
    occurred_us: Union[int, None] = None
    as_of_us: Union[int, None] = None
    order_id: Union[str, None] = None
    outcome: Union[str, None] = None
    # What the audit checks: sources against Kafka positions, payouts
    # against their balances and rules.
    source: Union[Source, None] = None
    rules_toml: Union[str, None] = None
    rules_version: Union[int, None] = None
    balances_at: Union[int, None] = None
    held: list[tuple[str, str, int]] = []  # a payout's skipped lines
    groups: list[tuple[int, str]] = []  # (transfer index, commission group) of level-2 transfers per group
    # A hold, release or rejection: what it names.
    target: Union[str, None] = None
    id: Union[str, None] = None


class RecordDated(RecordMoney, frozen=True, gc=False):
    """RecordMoney plus the raw event (projections.statements)."""

    raw: Union[bytes, None] = None


R = TypeVar("R", RecordMoney, RecordDated)


class SegmentView(msgspec.Struct, Generic[R], frozen=True, gc=False):
    """A stored Segment decoded with lighter records (R)."""

    first: int
    records: list[R]
    recorded_us: int = 0


_money_decoder = msgspec.msgpack.Decoder(SegmentView[RecordMoney])
_dated_decoder = msgspec.msgpack.Decoder(SegmentView[RecordDated])


def decode_segment_money(data: bytes) -> SegmentView[RecordMoney]:
    return _money_decoder.decode(unframe(data)[1])


def decode_segment_dated(data: bytes) -> SegmentView[RecordDated]:
    return _dated_decoder.decode(unframe(data)[1])


def encode_segment(segment: Segment) -> bytes:
    return _encoder.encode(segment)


def decode_segment(data: bytes) -> Segment:
    return _segment_decoder.decode(unframe(data)[1])


# ------------------------------------------------------------ hash chain
# What the store holds for a segment: FRAME_MAGIC, then the unit's chain hash
# SHA-256(predecessor's chain hash ‖ payload), then the payload (the msgpack
# Segment). Every unit so carries the hash of its predecessor's hash and its own
# bytes: changing, removing or reordering anything breaks every later link,
# and an auditor who kept a head (position, hash) can prove its prefix intact.
FRAME_MAGIC = b"CLS\x01"
_FRAME = len(FRAME_MAGIC) + 32


def genesis(journal: str) -> bytes:
    """The chain hash before a journal's first unit (ties a chain to its journal)."""
    return hashlib.sha256(b"commission-ledger journal " + journal.encode()).digest()


def frame(prev_sha256: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """(stored bytes, chain hash) of a unit following ``prev_sha256``."""
    chain = hashlib.sha256(prev_sha256 + payload).digest()
    return FRAME_MAGIC + chain + payload, chain


def unframe(stored: bytes) -> tuple[bytes | None, bytes]:
    """(chain hash, payload); the hash is None for a unit written before chains."""
    if stored[:len(FRAME_MAGIC)] == FRAME_MAGIC:
        return stored[len(FRAME_MAGIC):_FRAME], stored[_FRAME:]
    return None, stored


def record_transfers(record: Record) -> list[Transfer]:
    return getattr(record, "transfers", [])


def without_details(record: Record) -> Record:
    """``record`` with its dead letters' detail texts blanked: the wording of a
    detail may change between versions (it is prose for people), the reason,
    source, bytes and event id may not. What re-execution compares."""
    if isinstance(record, DeadLettered):
        return DeadLettered(msgspec.structs.replace(record.letter, detail=""))
    if isinstance(record, Ingested) and record.released:
        return msgspec.structs.replace(record, released=[msgspec.structs.replace(x, detail="") for x in record.released])
    return record


def dead_letters_of(record: "Record | RecordMoney") -> list[DeadLetter]:
    """The dead letters a record holds: its own, or the parked refunds it rejected."""
    letter = getattr(record, "letter", None)
    if letter is not None:
        return [letter]
    return getattr(record, "released", [])


_CAUSE_KIND = {Ingested: "ingested", Settled: "settled", PaidOut: "paid_out", Adjusted: "adjusted", NetworkRebuilt: "network",
               Held: "held", Released: "released", Rejected: "rejected"}


def record_kind(record: "Record | RecordMoney") -> str | None:
    """ingested | settled | paid_out | adjusted | network | held | released |
    rejected (None for rules records)."""
    return record.type if isinstance(record, RecordMoney) else _CAUSE_KIND.get(type(record))


def command_id(journal: str, position: int) -> str:
    """The id of a recorded command (SPEC §16: a rejection's reversals name it
    as their cause): its journal and position, stable and unique."""
    return f"{journal}:{position}"


def cause_of(record: "Record | RecordMoney") -> str:
    """What posted a record's transfers, in words for statements."""
    kind = record_kind(record)
    if kind == "ingested":
        return f"event {record.event_id}"
    if kind == "settled":
        return f"settle as of {record.as_of}"
    if kind == "paid_out":
        return f"payout as of {record.as_of}"
    if kind == "adjusted":
        return f"adjustment by {record.actor}: {record.reason}"
    if kind == "network":
        return "promoter network re-walked (late shares)"
    if kind == "rejected":
        return f"rejection by {record.actor}: {record.reason}"
    if kind in ("held", "released"):
        return f"{'hold' if kind == 'held' else 'release'} of {record.target} {record.id} by {record.actor}: {record.reason}"
    return kind or type(record).__name__
