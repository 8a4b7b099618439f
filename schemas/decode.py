"""Bytes → validated event, or a dead-letter reason (SPEC §1, §9). No I/O.

``decode_event`` never raises: whatever the bytes, it returns ``Decoded`` or a
``Rejected`` with a reason code of ``schemas.reasons``.

Two paths (issue 13):

- The fast path is one typed msgspec decode of the bytes straight into the
  tagged union ``Event``, after the two I-JSON checks such a decode skips
  (``ijson.typed_decode_suffices``: nesting depth, UTF-8 inside skipped
  strings), then the checks a Struct cannot express (schema_version, the
  timestamp, an order's sums). It only ever *accepts*: any failure, whatever
  it is, goes to the careful path.
- The careful path (``_decode_careful``) is the reference: ``ijson.parse``
  decides ``malformed_json``, ``msgspec.convert`` the schema, and
  ``_classify`` walks the SPEC §9 order to find the *first* applicable reason.
  It alone decides every reason code and detail.

The content fingerprint (SPEC §8) is not computed here: ``Decoded.fingerprint()``
(or ``fingerprint(raw)``) computes it when the engine needs it, when an event
id comes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Union

import msgspec
import orjson

from schemas import ijson, reasons
from schemas.events import (
    EVENT_TYPES,
    MAX_SAFE_INT,
    Event,
    Order,
    line_discount,
)
from schemas.decoded import Decoded, Rejected
from schemas.timestamps import parse_timestamp_us

log = logging.getLogger(__name__)

# How often decode_event's last-resort guard turned an unexpected exception into
# a dead letter: a bug each time (the fuzz tests assert it stays 0).
unexpected_errors = 0


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


_INF = orjson.Fragment(b"1e999")  # no finite float is written so; 1e999 parses to inf
_MINUS_INF = orjson.Fragment(b"-1e999")
_INT64 = range(-(2**63), 2**64)  # what orjson writes itself


def _exact_form(value: Any) -> Any:
    """``_python_equality_form`` for values holding an integer too long for
    int() (an ``orjson.Fragment`` of its digits): everything orjson cannot write
    becomes the Fragment of its exact JSON text, so one serialiser covers it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if value in (float("inf"), float("-inf")):
            return _INF if value > 0 else _MINUS_INF
        if not value.is_integer():
            return value
        value = int(value)
    if isinstance(value, int):
        return value if value in _INT64 else orjson.Fragment(str(value).encode())
    if isinstance(value, dict):
        return {k: _exact_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact_form(v) for v in value]
    return value


def _sorted_json(value: Any) -> bytes:
    """Compact JSON with sorted keys; one serialiser for every path, so equal
    values always give equal bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_fingerprint(obj: dict) -> bytes:
    """Digest of the parsed JSON value: key order and whitespace ignored, no
    defaults filled in, and equal exactly when the values are equal under
    Python ``==`` (SPEC §8 "same content"). Call right after ijson.parse gave ``obj``."""
    if ijson.last.saw_huge_int:  # malformed_json before issue 11: no stored fingerprint to keep
        canonical = b"#" + orjson.dumps(_exact_form(obj), option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(canonical, digest_size=16).digest()
    canonical = _sorted_json(obj)
    if ijson.last.saw_float or b"true" in canonical or b"false" in canonical:
        try:
            canonical = _sorted_json(_python_equality_form(obj))
        except _NotFinite:  # a float beyond the double range (e.g. 1e400 → inf)
            canonical = b"!" + json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(canonical, digest_size=16).digest()


def fingerprint(raw: bytes) -> bytes:
    """The content fingerprint of the event in ``raw`` (one I-JSON value, as
    every accepted or stored event is): ``content_fingerprint`` of its parsed value."""
    return content_fingerprint(ijson.parse(raw))


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


def _show(value: Any) -> str:
    """A value for a one-line detail: its repr, cut; never an address."""
    if isinstance(value, orjson.Fragment):
        return "an integer too long to show"
    return repr(value)[:100]


def _classify(obj: Any, convert_error: str) -> Rejected:
    """The first SPEC §9 reason that applies to a parsed value that failed."""
    if not isinstance(obj, dict):
        return Rejected(reasons.SCHEMA_VIOLATION, "event is not a JSON object")
    type_name = obj.get("type")
    if not isinstance(type_name, str) or type_name not in EVENT_TYPES:
        return Rejected(reasons.UNKNOWN_TYPE, f"type {_show(type_name)} is not one of share, click, order, refund, fulfillment")
    event_id = obj.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        return Rejected(reasons.SCHEMA_VIOLATION, "event_id must be a string of 1-128 characters")
    version = obj.get("schema_version")
    if version is not None:
        if isinstance(version, orjson.Fragment):  # an integer too long for int()
            return Rejected(reasons.UNSUPPORTED_SCHEMA_VERSION, "schema_version is not 1")
        if not _is_int(version):
            return Rejected(reasons.SCHEMA_VIOLATION, "schema_version must be an integer")
        if version != 1:
            return Rejected(reasons.UNSUPPORTED_SCHEMA_VERSION, f"schema_version {version} is not supported"[:200])
    occurred_at = obj.get("occurred_at")
    if occurred_at is None:
        return Rejected(reasons.SCHEMA_VIOLATION, "occurred_at is required")
    if not isinstance(occurred_at, str) or parse_timestamp_us(occurred_at) is None:
        return Rejected(reasons.INVALID_TIMESTAMP, f"occurred_at {_show(occurred_at)} is not an RFC 3339 timestamp")
    return Rejected(reasons.SCHEMA_VIOLATION, convert_error)


_typed = msgspec.json.Decoder(Event)


def decode_event(raw: bytes | None) -> Union[Decoded, Rejected]:
    """Decode and validate one wire event. Never raises, whatever the bytes
    (``None``, a Kafka tombstone's value, is an empty value)."""
    if raw is None:
        raw = b""
    decoded = decode_fast(raw)
    return decoded if decoded is not None else _decode_careful(raw)


def decode_fast(raw: bytes) -> Decoded | None:
    """The fast path: the event when one typed decode and the checks after it
    accept ``raw``; None when the careful path must decide (it only ever accepts)."""
    try:
        if ijson.typed_decode_suffices(raw):
            event = _typed.decode(raw)
            if event.schema_version is None or event.schema_version == 1:
                occurred_us = parse_timestamp_us(event.occurred_at)
                if occurred_us is not None and _post_checks(event) is None:
                    return Decoded(event, occurred_us, raw)
    except Exception:  # the fast path failed (whatever the reason): the careful path decides
        pass
    return None


def _decode_careful(raw: bytes) -> Union[Decoded, Rejected]:
    """The reference decode: the first SPEC §9 reason, or the event."""
    try:
        try:
            obj = ijson.parse(raw)
        except ijson.NotIJSON as not_ijson:  # one name per exception type (mypyc types each name once)
            return Rejected(reasons.MALFORMED_JSON, str(not_ijson))
        if not isinstance(obj, dict):
            return _classify(obj, "")
        type_name = obj.get("type")
        event_type = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
        if event_type is None:
            return _classify(obj, "")
        try:
            event = msgspec.convert(obj, event_type)
        except msgspec.ValidationError as invalid:
            return _classify(obj, str(invalid)[:200])
        if event.schema_version is not None and event.schema_version != 1:
            return _classify(obj, "")
        occurred_us = parse_timestamp_us(event.occurred_at)
        if occurred_us is None:
            return _classify(obj, "")
        problem = _post_checks(event)
        if problem is not None:
            return Rejected(reasons.SCHEMA_VIOLATION, problem)
        return Decoded(event, occurred_us, raw)
    except Exception as exc:  # last resort: a bug, never bad input (tests/test_fuzz.py)
        global unexpected_errors
        unexpected_errors += 1
        log.error("decode_event: unexpected %s (a bug: the event is dead-lettered)", type(exc).__name__, exc_info=True)
        return Rejected(reasons.SCHEMA_VIOLATION, _describe(exc))


def _describe(exc: BaseException) -> str:
    """``<ExceptionType>: <message>``, one line, never raising itself."""
    try:
        message = str(exc).splitlines()[0] if str(exc) else ""
    except Exception:
        message = "(unprintable)"
    return f"{type(exc).__name__}: {message}"[:200]
