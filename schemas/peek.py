"""A glance at one or two fields of raw wire bytes, without validating the event.

Publishing (which topic, which key) and the consumer's event-time ordering of
shares must handle any bytes, garbage included: garbage is routed and ordered
here, then rejected with its reason by the full decode (``schemas.decode``).
So these never raise and never decide validity.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas import ijson
from schemas.timestamps import parse_timestamp_us


def _object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in ``raw``, or None (not JSON, not UTF-8, not an object)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses numbers past a double (1e400, 400-digit integers),
        # which the decoder accepts in any field it ignores: ask the decoder's
        # parser before calling the bytes unreadable (rare, so its cost is too).
        try:
            obj = ijson.parse(raw)
        except ijson.NotIJSON:
            return None
    return obj if isinstance(obj, dict) else None


def route_key(raw: bytes) -> tuple[bool, bytes | None]:
    """``(is_share, key)`` for publishing (SPEC §1): a share is keyed by its
    ``promoter_id``, any other message by its ``buyer_id``; the key is None when
    that field is not a string, or the bytes are not a JSON object."""
    obj = _object(raw)
    if obj is None:
        return False, None
    is_share = obj.get("type") == "share"
    key = obj.get("promoter_id" if is_share else "buyer_id")
    return is_share, key.encode() if isinstance(key, str) else None


def event_time_key(raw: bytes) -> tuple[int, str] | None:
    """``(occurred_at in µs since the epoch, event_id)`` of a raw event, or None
    when either is unreadable (the timestamp must be valid per SPEC §1)."""
    obj = _object(raw)
    if obj is None:
        return None
    occurred_at, event_id = obj.get("occurred_at"), obj.get("event_id")
    if not isinstance(occurred_at, str) or not isinstance(event_id, str):
        return None
    instant = parse_timestamp_us(occurred_at)
    return None if instant is None else (instant, event_id)
