"""Bytes → validated event, or a dead-letter reason (SPEC §1, §9). No I/O.

The fast path is one generic msgspec decode plus ``msgspec.convert`` into the
tagged union. Only when that fails do we walk the SPEC §9 order by hand to find
the *first* applicable reason code, so the fast path never decides a reason.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Union

import msgspec
import orjson

from schemas import reasons
from schemas.events import (
    EVENT_TYPES,
    MAX_SAFE_INT,
    Event,
    Order,
    line_discount,
)
from schemas.timestamps import parse_timestamp_us

# Did the last parse_json see a float? Floats (and bools) are the only values
# whose JSON text can differ while Python == holds (1 == 1.0 == True), so only
# then does the fingerprint take the slower exact path.
_saw_float = [False]


def _note_float(text: str) -> float:
    _saw_float[0] = True
    return float(text)


_json_decoder = msgspec.json.Decoder(float_hook=_note_float)


class Decoded(msgspec.Struct, frozen=True, gc=False):
    """A valid event with its instant and content fingerprint."""

    event: Event
    occurred_us: int
    fingerprint: bytes


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """An event that fails SPEC §1; ``event_id`` is set when it could be read."""

    reason: str
    detail: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Parse UTF-8 JSON. Raises ValueError when it is not (→ malformed_json).

    msgspec is the fast path; Python's json module is the fallback for the few
    inputs that are valid JSON but that msgspec declines (escaped lone
    surrogates, numbers beyond float range), so no valid JSON is dead-lettered.
    """
    _saw_float[0] = False
    try:
        return _json_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, parse_float=_note_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(str(exc).splitlines()[0][:200]) from None


class _NotFinite(ValueError):
    pass


def _python_equality_form(value: Any) -> Any:
    """Map a parsed JSON value to one whose JSON text is equal exactly when the
    values are equal under Python ``==`` (``1 == 1.0 == True``)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotFinite
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _python_equality_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_python_equality_form(v) for v in value]
    return value


def _sorted_json(value: Any) -> bytes:
    """Compact JSON with sorted keys; one serialiser for every path, so equal
    values always give equal bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def content_fingerprint(obj: dict) -> bytes:
    """Digest of the parsed JSON value: key order and whitespace ignored, no
    defaults filled in, and equal exactly when the values are equal under
    Python ``==`` (SPEC §8 "same content"). Call right after parse_json(obj)."""
    canonical = _sorted_json(obj)
    if _saw_float[0] or b"true" in canonical or b"false" in canonical:
        try:
            canonical = _sorted_json(_python_equality_form(obj))
        except _NotFinite:  # only from the json fallback (e.g. 1e400 → inf)
            canonical = b"!" + json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(canonical, digest_size=16).digest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _post_checks(event: Event) -> str | None:
    """Field rules msgspec constraints cannot express; None when all hold."""
    if isinstance(event, Order):
        total = 0
        for i, line in enumerate(event.lines):
            gross = line.quantity * line.unit_price
            if line_discount(line) > gross:
                return f"lines[{i}].discount exceeds quantity × unit_price"
            total += gross
        if total > MAX_SAFE_INT:
            return "Σ quantity × unit_price exceeds 2^53 − 1"
    return None


def _classify(obj: Any, convert_error: str) -> Rejected:
    """The first SPEC §9 reason that applies to a parsed value that failed."""
    if not isinstance(obj, dict):
        return Rejected(reasons.SCHEMA_VIOLATION, "event is not a JSON object")
    type_name = obj.get("type")
    if not isinstance(type_name, str) or type_name not in EVENT_TYPES:
        return Rejected(reasons.UNKNOWN_TYPE, f"type {type_name!r} is not one of share, click, order, refund"[:200])
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        return Rejected(reasons.SCHEMA_VIOLATION, "event_id must be a string of 1-128 characters")
    version = obj.get("schema_version")
    if version is not None:
        if not _is_int(version):
            return Rejected(reasons.SCHEMA_VIOLATION, "schema_version must be an integer")
        if version != 1:
            return Rejected(reasons.UNSUPPORTED_SCHEMA_VERSION, f"schema_version {version} is not supported"[:200])
    occurred_at = obj.get("occurred_at")
    if occurred_at is None:
        return Rejected(reasons.SCHEMA_VIOLATION, "occurred_at is required")
    if not isinstance(occurred_at, str) or parse_timestamp_us(occurred_at) is None:
        return Rejected(reasons.INVALID_TIMESTAMP, f"occurred_at {occurred_at!r} is not an RFC 3339 timestamp"[:200])
    return Rejected(reasons.SCHEMA_VIOLATION, convert_error)


def decode_event(raw: bytes) -> Union[Decoded, Rejected]:
    """Decode and validate one wire event. Never raises for bad input."""
    try:
        obj = parse_json(raw)
    except ValueError as exc:
        return Rejected(reasons.MALFORMED_JSON, str(exc) or "not UTF-8 JSON")
    if not isinstance(obj, dict):
        return _classify(obj, "")
    type_name = obj.get("type")
    event_type = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if event_type is None:
        return _classify(obj, "")
    try:
        event = msgspec.convert(obj, event_type)
    except msgspec.ValidationError as exc:
        return _classify(obj, str(exc)[:200])
    if event.schema_version is not None and event.schema_version != 1:
        return _classify(obj, "")
    occurred_us = parse_timestamp_us(event.occurred_at)
    if occurred_us is None:
        return _classify(obj, "")
    problem = _post_checks(event)
    if problem is not None:
        return Rejected(reasons.SCHEMA_VIOLATION, problem)
    return Decoded(event, occurred_us, content_fingerprint(obj))
