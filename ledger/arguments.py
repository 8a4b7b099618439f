"""A command's arguments, checked on the way in: the as-of time parsed once,
an adjustment's fields bounded."""

from __future__ import annotations

from typing import NamedTuple

from ledger.errors import CommandError
from schemas.events import MAX_SAFE_INT
from schemas.timestamps import parse_timestamp_us


def parse_as_of(text: str) -> int:
    """An as-of timestamp's instant (µs); CommandError when it is not RFC 3339."""
    instant = parse_timestamp_us(text)
    if instant is None:
        raise CommandError(f"--as-of {text!r} is not an RFC 3339 timestamp (e.g. 2026-01-31T16:00:00Z)")
    return instant


class AsOf(NamedTuple):
    """A command's as-of time: the text as given (recorded) and its instant,
    parsed once on the way in."""

    text: str
    instant_us: int

    @classmethod
    def parse(cls, text: str) -> "AsOf":
        return cls(text, parse_as_of(text))


def validate_adjustment(promoter_id: str, currency: str, amount_minor: int, reason: str) -> None:
    if not 1 <= len(promoter_id) <= 128:
        raise CommandError("promoter id must be 1-128 characters")
    if len(currency) != 3 or not currency.isascii() or not currency.isupper() or not currency.isalpha():
        raise CommandError(f"currency {currency!r} must be three capital letters")
    if amount_minor == 0 or abs(amount_minor) > MAX_SAFE_INT:
        raise CommandError("amount must be a non-zero integer of minor units, |amount| ≤ 2^53 − 1")
    if not reason.strip():
        raise CommandError("--reason must not be empty")


def validate_command_text(target_id: str, reason: str, actor: str) -> None:
    """A SPEC §16 command's id (1–128 characters), reason (1–500) and actor."""
    if not 1 <= len(target_id) <= 128:
        raise CommandError("the id must be 1-128 characters")
    if not 1 <= len(reason) <= 500:
        raise CommandError("--reason must be 1-500 characters")
    if not actor:
        raise CommandError("the actor must not be empty")
