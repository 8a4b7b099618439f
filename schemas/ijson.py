"""Bytes → one I-JSON value (RFC 7493), or ``NotIJSON`` (SPEC §9 ``malformed_json``). No I/O.

What is *not* one I-JSON value here — each is ``malformed_json``:

- an empty value (a Kafka tombstone, a message without a value) or whitespace only;
- invalid UTF-8 anywhere (overlong forms, encoded surrogates, bytes past U+10FFFF);
- an escaped lone surrogate (``"\\ud800"``, ``"\\udc00"``, a low before a high) in any
  string, member names included;
- a raw control character (U+0000–U+001F) inside a string (escaped ones are fine);
- ``NaN``, ``Infinity``, ``-Infinity`` and any other non-JSON token;
- trailing data after the value (whitespace is not data);
- arrays/objects nested more than ``MAX_DEPTH`` (128) deep: the top-level value is
  depth 1, so 128 levels are fine and 129 are not.

The fast path is one msgspec decode, which enforces all of the above except the
depth itself; the depth is checked first, without recursion, and only when the
input is longer than 257 bytes and holds more than 128 ``[``/``{`` (no deeper
value can exist otherwise), so ordinary events pay one ``len``.
msgspec 0.22 rejects escaped lone surrogates on its own (tests/test_hostile_input.py
pins it, the fuzzers check it), so the fast path needs no surrogate scan.

Where RFC 7493 and SPEC §9's list differ, the decisions (issue 11), each written
again where it is implemented:

1. Numbers beyond the double range or beyond 2^53 stay valid (RFC 7493: SHOULD
   NOT). SPEC §1's integer rules apply to known fields only; an unknown field may
   hold any number (``_note_float``, ``_parse_int``).
2. Duplicate member names are accepted and the last one wins (RFC 7493: MUST
   NOT), as msgspec, orjson and Python's json all read them (``parse``).
3. Unicode noncharacters (U+FDD0–U+FDEF, U+xFFFE/U+xFFFF) are accepted (RFC 7493:
   MUST NOT): SPEC §9 names surrogates and control characters only, and a
   noncharacter is a valid scalar value that every store and encoder keeps
   (``parse``).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

import msgspec
import orjson

MAX_DEPTH: Final = 128

# Integers with more digits than this are not turned into Python ints: int()
# of a long digit string is quadratic (CPython's own limit is 4300 digits too).
MAX_INT_DIGITS: Final = 4300


class NotIJSON(ValueError):
    """Not one I-JSON value; the message says which rule, in one line."""


class LastParse:
    """What the last ``parse`` saw, for the content fingerprint (schemas.decode)."""

    __slots__ = ("saw_float", "saw_huge_int")

    def __init__(self) -> None:
        self.saw_float = False
        self.saw_huge_int = False


last = LastParse()


def _note_float(text: str) -> float:
    last.saw_float = True
    # Decision 1 (issue 11): a float beyond the double range becomes ±inf. RFC
    # 7493 says numbers SHOULD NOT exceed it; SPEC §9 does not list them and §1's
    # rules apply to known fields only, so an unknown field may hold 1e400. In a
    # known field any float is a schema_violation.
    return float(text)


def _parse_int(text: str) -> Any:
    # Decision 1 (issue 11): an integer beyond 2^53 or beyond any float is still
    # valid (msgspec itself returns Python ints up to 4300 digits). In an unknown
    # field it is ignored like any other value, in a known field it is a
    # schema_violation (SPEC §1). One too long for int() is kept as its exact
    # text (an orjson.Fragment), so the content fingerprint stays exact.
    if len(text) - (text[0] == "-") > MAX_INT_DIGITS:
        last.saw_huge_int = True
        return orjson.Fragment(text)
    return int(text)


_decoder = msgspec.json.Decoder(float_hook=_note_float)

# One JSON string, or an unterminated one up to the end of the input. Possessive
# quantifiers and the optional closing quote keep it linear: a failed string is
# never re-scanned from a later quote.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the four
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / −1 as signed bytes


def nesting_depth(raw: bytes) -> int:
    """The deepest array/object nesting in ``raw`` (the top-level value is 1),
    counted without recursion: strings are cut out, the brackets left are summed.
    Exact for valid JSON; for invalid JSON never less than what a parser would
    descend before it stops."""
    steps = _STRING.sub(b"", raw).translate(_STEPS, _BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


# Each escape of a JSON string, left to right, so that an escaped backslash
# followed by "u" is not taken for a \u escape; group 1 is the hex of a
# surrogate code unit.
_ESCAPE = re.compile(rb"\\(?:u([dD][89a-fA-F][0-9a-fA-F]{2})|u[0-9a-fA-F]{4}|.)", re.DOTALL)


def lone_surrogate_escape(raw: bytes) -> re.Match | None:
    """The first escaped surrogate that is not half of a pair (a high one
    directly followed by a low one), or None. Exact for valid JSON, whose every
    backslash starts an escape inside a string; it reads the text, not a parsed
    value, so a string that a duplicate name later replaces counts too."""
    high: re.Match | None = None
    for escape in _ESCAPE.finditer(raw):
        unit = escape.group(1)
        if high is not None:
            if unit is not None and escape.start() == high.end() and unit[1] in b"cdefCDEF":
                high = None
                continue
            return high
        if unit is not None:
            if unit[1] in b"cdefCDEF":
                return escape
            high = escape
    return high


_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")


def _detail(raw: bytes, exc: Exception) -> str:
    """One line naming the I-JSON rule ``raw`` breaks (best effort; the reason
    code is malformed_json whatever this says)."""
    if isinstance(exc, UnicodeDecodeError):  # its offset is within one string: find the byte
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as whole:
            return f"invalid UTF-8 at byte {whole.start}"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if b"\\u" in raw:
        lone = lone_surrogate_escape(raw)
        if lone is not None:
            return f"escaped lone surrogate {lone.group().decode()} at byte {lone.start()}"
    offset = _BYTE_OFFSET.search(message)
    if offset is not None:
        at = int(offset.group(1))
        if at < len(raw) and raw[at] < 0x20:
            return f"raw control character U+{raw[at]:04X} at byte {at}"
    if not raw.strip(b" \t\r\n"):
        return "no JSON value (whitespace only)"
    return message[:200]


def _reject_constant(name: str) -> Any:
    raise NotIJSON(f"{name} is not JSON")


def _parse_slow(raw: bytes) -> Any:
    """The few I-JSON values msgspec declines: integers with more digits than it
    converts. Python's json enforces the same rules as msgspec except lone
    surrogates (it accepts them), which are looked for in the text after."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_parse_int, parse_float=_note_float,
                           parse_constant=_reject_constant)
    except UnicodeDecodeError as bad_utf8:  # one name per exception type (mypyc types each name once)
        raise NotIJSON(_detail(raw, bad_utf8)) from None
    except ValueError as bad_json:
        raise NotIJSON(_detail(raw, bad_json)) from None
    if b"\\u" in raw and lone_surrogate_escape(raw) is not None:
        raise NotIJSON(_detail(raw, ValueError("escaped lone surrogate")))
    return value


def _may_nest_too_deep(raw: bytes) -> bool:
    """Whether ``raw`` could nest deeper than MAX_DEPTH: it needs more openers
    than that, and as many closers (two C scans; most events fail the length test)."""
    return len(raw) > 2 * MAX_DEPTH + 1 and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def typed_decode_suffices(raw: bytes) -> bool:
    """Whether a *typed* msgspec decode of ``raw`` (into the event Structs, as
    schemas.decode's fast path does) would reject everything ``parse`` rejects.

    A typed decode skips what it does not map to a field (unknown members, and
    the values it scans past while looking for the ``type`` tag). While skipping,
    msgspec 0.22 (``json_skip`` in its ``_core.c``) still checks the JSON
    grammar, trailing data, raw control characters and every escape in strings
    (a lone surrogate escape is an error), and refuses ``NaN``/``Infinity``;
    numbers of any size pass, as here (decision 1). Two things it does not
    check in skipped content, so they are checked here, cheaply:

    - UTF-8: skipped strings and unknown member names are passed over byte by
      byte, never decoded. ASCII input cannot hold invalid UTF-8 (one C scan);
      other input is decoded once.
    - depth: skipping recurses up to Python's recursion limit, not 128. The
      same byte test as ``parse`` (length, then the count of ``[`` and ``{``)
      leaves ordinary events out; the rest take the careful path.

    tests/test_hostile_input.py pins each of these behaviours of msgspec.
    """
    if _may_nest_too_deep(raw):
        return False
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse(raw: bytes) -> Any:
    """Parse one I-JSON value; raise NotIJSON (→ malformed_json) when it is not.

    Decision 2 (issue 11): duplicate member names are accepted and the last one
    wins. RFC 7493 says MUST NOT, but SPEC §9's list does not name them, and
    last-wins is what msgspec, orjson and Python's json all give.
    Decision 3: noncharacters are accepted; nothing here looks for them.
    """
    last.saw_float = False
    last.saw_huge_int = False
    if not raw:
        raise NotIJSON("empty value (a Kafka tombstone or an empty message)")
    # Cheap byte tests first: nesting deeper than 128 needs at least 129 openers
    # and their 129 closers, so shorter input (most events) or fewer openers
    # cannot hold it. (Shorter invalid input nests at most 257 deep: msgspec
    # stops on it long before any recursion limit.)
    if _may_nest_too_deep(raw):
        depth = nesting_depth(raw)
        if depth > MAX_DEPTH:
            raise NotIJSON(f"arrays/objects nested {depth} deep (at most {MAX_DEPTH})")
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as invalid:  # a number msgspec will not hold
        if "out of range" not in str(invalid):
            raise NotIJSON(_detail(raw, invalid)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as malformed:
        raise NotIJSON(_detail(raw, malformed)) from None
    return _parse_slow(raw)
