"""Ledger events out (SPEC §13): the message ``commission-ledger relay``
publishes to ``commission-ledger-events``, one per money movement.

The Struct is the schema: ``ledger-events.schema.json`` beside this file is
``msgspec.json.schema(LedgerEvent)`` (plus a ``$schema``/``$id`` header), shipped
in the package so that consumers in other languages can validate, and a test
regenerates it so it can never drift from this Struct.

A message moves ``amount_minor`` (> 0) of one promoter's money in one currency
from the bucket ``from`` to the bucket ``to``. A promoter's buckets are
``pending``, ``payable`` and ``paid``; the counter-accounts are ``merchant``
(the merchant's commission expense) and ``platform`` (manual adjustments). For
every promoter and currency, Σ ``amount_minor`` into a bucket minus Σ out of
it is that bucket's balance in ``commission-ledger payouts``. ``event_id`` is
``<journal>:<position>:<n>``: the journal (which may itself contain ``:``),
the position of the ledger record, and the index of the movement within that
record — the same on every delivery, so consumers deduplicate on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec

from schemas.events import Id

SCHEMA_FILE = Path(__file__).with_name("ledger-events.schema.json")
SCHEMA_ID = "urn:commission-ledger:schema:ledger-events"

# transfer kind (ledger.records.Transfer.kind) → message type
TYPES = {
    "accrual": "commission.accrued",
    "reversal": "commission.reversed",
    "settlement": "commission.settled",
    "clawback": "commission.clawed_back",
    "payout": "payout.paid",
    "adjustment": "adjustment.posted",
}
# ledger bucket → bucket on the wire
BUCKETS = {"pending": "pending", "payable": "payable", "paid": "paid", "expense": "merchant", "adjustment": "platform"}

# Patterns here are written for every regex dialect (ECMAScript's too: ajv), so
# no \A/\Z anchors.
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217-style code: 3 capital letters")]
EventType = Literal[
    "commission.accrued", "commission.reversed", "commission.settled",
    "commission.clawed_back", "payout.paid", "adjustment.posted",
]
Bucket = Annotated[
    Literal["pending", "payable", "paid", "merchant", "platform"],
    msgspec.Meta(description="pending, payable, paid: the promoter's balances; merchant: the merchant's "
                             "commission expense; platform: the platform's adjustment account"),
]
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$",
        extra_json_schema={"format": "date-time"},
        description="RFC 3339, UTC, microseconds: YYYY-MM-DDTHH:MM:SS.ffffffZ",
    ),
]
EventId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^.+:[1-9][0-9]*:[0-9]+$",
        description="<journal>:<position>:<n>, stable across deliveries: deduplicate on it",
    ),
]


class LedgerEvent(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=False,
    rename={"from_": "from"},
):
    """One money movement recorded in the commission ledger (SPEC §13)."""

    type: EventType
    event_id: EventId
    promoter_id: Id
    currency: Currency
    amount_minor: Annotated[int, msgspec.Meta(ge=1, description="minor units (fen for CNY), > 0")]
    from_: Bucket
    to: Bucket
    order_id: Union[Id, None] = None
    merchant_id: Union[Id, None] = None
    level: Union[Literal[1, 2], None] = None
    rules_version: Union[Annotated[int, msgspec.Meta(ge=1)], None] = None
    cause_event_id: Union[
        Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                    description="the input event (SPEC §1 event_id) that caused this movement, "
                                                "or the command (a rejection, SPEC §16: <journal>:<position>)")],
        None,
    ] = None
    event_time: Union[
        Annotated[Timestamp, msgspec.Meta(description="event time: the input event's occurred_at, or the as-of "
                                                      "of the settle or payout (absent for adjustments)")],
        None,
    ] = None
    recorded_at: Union[Annotated[Timestamp, msgspec.Meta(description="when the ledger recorded it")], None] = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LedgerEvent)


def encode(event: LedgerEvent) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> LedgerEvent:
    return _decoder.decode(data)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a message, generated from ``LedgerEvent``."""
    generated = msgspec.json.schema(LedgerEvent)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "commission-ledger ledger event",
        **generated,
    }


def schema_text() -> str:
    """What ``ledger-events.schema.json`` holds (sorted keys, two-space indent)."""
    import json

    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def shipped_schema() -> str:
    return SCHEMA_FILE.read_text(encoding="utf-8")


if __name__ == "__main__":  # python -m schemas.outbound > schemas/ledger-events.schema.json
    import sys

    sys.stdout.write(schema_text())
