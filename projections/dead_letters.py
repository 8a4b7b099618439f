"""The dead-letter listing: every event that could not be applied, with its bytes."""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

from ledger.records import Record, dead_letters_of


class DeadLetterRow(msgspec.Struct, frozen=True):
    journal: str
    position: int
    reason: str
    detail: str
    source: str
    raw: str  # the original bytes, decoded as UTF-8 with replacement for display
    raw_base64: str  # the original bytes, exactly
    event_id: Union[str, None]


def dead_letters(records: Iterable[tuple[str, int, Record]]) -> list[DeadLetterRow]:
    import base64

    rows = []
    for journal, position, record in records:
        for letter in dead_letters_of(record):
            rows.append(
                DeadLetterRow(
                    journal, position, letter.reason, letter.detail, letter.source.text(),
                    letter.raw.decode("utf-8", errors="replace"),
                    base64.b64encode(letter.raw).decode(), letter.event_id,
                )
            )
    return rows
