"""The dead-letter listing: every event that could not be applied, with its
bytes (rows of ``projections.readmodels.dead_letters``)."""

from __future__ import annotations

from typing import Union

import msgspec


class DeadLetterRow(msgspec.Struct, frozen=True):
    journal: str
    position: int
    reason: str
    detail: str
    source: str
    raw: str  # the original bytes, decoded as UTF-8 with replacement for display
    raw_base64: str  # the original bytes, exactly
    event_id: Union[str, None]


class DeadLetterItem(DeadLetterRow, frozen=True):
    """A dead letter as the HTTP list shows it: ``raw``/``raw_base64`` hold at
    most the first bytes of the payload (``raw_truncated``); the whole of it is
    at ``/v1/dead-letters/{n}/raw``."""

    n: int  # its number: the paging cursor and its address
    raw_size: int  # bytes in the whole payload
    raw_truncated: bool
