"""What ``decode_event`` must do with any bytes (SPEC §9): the properties that
both the atheris target (fuzz/fuzz_decode.py) and the Hypothesis tests
(tests/test_fuzz.py) check, and an independent oracle for "one I-JSON value".
Since issue 13 also: the typed fast path gives exactly the careful path's
outcome (reason and detail, or event, instant and fingerprint).

No atheris import here, so the test suite can use it without the fuzzer.
"""

from __future__ import annotations

import json
from typing import Any, Union

import msgspec

from schemas import decode as decode_module
from schemas import reasons
from schemas.decode import Decoded, Rejected, decode_event

REASONS = frozenset(v for k, v in vars(reasons).items() if k.isupper() and isinstance(v, str))
MAX_DEPTH = 128


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Members(list):
    """An object as the list of all its (name, value) pairs: a member that a
    duplicate name replaces still counts (its strings must be I-JSON too)."""


def _depth_and_surrogates(value: Any) -> tuple[int, bool]:
    """The nesting depth of a parsed value (top level 1) and whether any string,
    member names included, holds a surrogate code point. Iterative."""
    deepest, lone = 0, False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            lone = lone or any(0xD800 <= ord(c) <= 0xDFFF for c in item)
        elif isinstance(item, _Members):
            deepest = max(deepest, depth)
            stack.extend((k, depth) for k, _ in item)
            stack.extend((v, depth + 1) for _, v in item)
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest, lone


def is_ijson(raw: bytes) -> bool:
    """Independent oracle (Python's json, strict UTF-8): is ``raw`` one I-JSON
    value as SPEC §9 reads RFC 7493? Numbers of any size and duplicate names
    count as valid (the two decisions of issue 11)."""
    try:
        text = raw.decode("utf-8")  # strict: no overlong forms, no encoded surrogates
        value = json.loads(text, parse_constant=_no_constants, parse_int=lambda s: 0, parse_float=lambda s: 0.0,
                           object_pairs_hook=_Members)
    except (ValueError, RecursionError):  # json's strict mode rejects raw control characters
        return False
    depth, lone = _depth_and_surrogates(value)
    return depth <= MAX_DEPTH and not lone


def check_decode(raw: bytes, *, oracle: bool = True) -> Union[Decoded, Rejected]:
    """decode_event(raw) and assert every property; returns the result."""
    before = decode_module.unexpected_errors
    result = decode_event(raw)
    assert decode_module.unexpected_errors == before, f"last-resort guard reached: {result!r}"
    assert type(result) in (Decoded, Rejected), result
    careful = decode_module._decode_careful(raw)  # the reference path (issue 13): the fast path decides nothing else
    assert type(careful) is type(result), (result, careful)
    if type(result) is Rejected:
        assert result.reason in REASONS, result
        assert isinstance(result.detail, str) and "\n" not in result.detail, result
        assert (result.reason, result.detail) == (careful.reason, careful.detail), (result, careful)
    else:
        msgspec.json.encode(result.event)  # every string is encodable: nothing reaches a record to crash it
        assert (result.event, result.occurred_us, result.raw) == (careful.event, careful.occurred_us, raw), (result, careful)
        assert result.fingerprint() == decode_module.fingerprint(raw) == careful.fingerprint()
    if oracle:
        malformed = type(result) is Rejected and result.reason == reasons.MALFORMED_JSON
        assert malformed == (not is_ijson(raw)), f"oracle disagrees: {result!r}"
    return result
