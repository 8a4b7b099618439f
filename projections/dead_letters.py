"""The dead-letter listing: every event that could not be applied, with its bytes."""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

from ledger.records import DeadLettered, Ingested, Record


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
        letters = [record.letter] if isinstance(record, DeadLettered) else (
            record.released if isinstance(record, Ingested) else []
        )
        for letter in letters:
            rows.append(
                DeadLetterRow(
                    journal, position, letter.reason, letter.detail, letter.source.text(),
                    letter.raw.decode("utf-8", errors="replace"),
                    base64.b64encode(letter.raw).decode(), letter.event_id,
                )
            )
    return rows
