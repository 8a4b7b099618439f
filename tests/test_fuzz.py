"""Fuzzing decode_event and ingest with Hypothesis (issue 11, SPEC §9).

Three kinds of input: arbitrary bytes, arbitrary JSON (recursive: deep nesting,
numbers of any size, any Unicode, escapes, lone surrogates), and near-valid
events (a valid share/click/order/refund with one thing mutated). Properties:

- decode_event never raises, returns Decoded or Rejected with a reason of
  schemas.reasons, never reaches its last-resort guard, and says
  ``malformed_json`` exactly when an independent oracle says the bytes are not
  one I-JSON value (fuzz/properties.py, shared with the atheris target);
- a Ledger ingesting any list of such lines never raises, accounts for every
  line (accepted + duplicates + parked + dead letters), and keeps each dead
  letter's exact bytes.

Example counts keep this file well under a minute; findings become named
regression tests in tests/test_hostile_input.py. The atheris run is
tests/test_atheris.py.
"""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.properties import check_decode, is_ijson
from ledger.records import Source
from projections.readmodels import dead_letters
from schemas import reasons
from schemas.decode import Decoded
from tests.helpers import feed, new_ledger

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LEDGER = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ strategies
# Any code point, lone surrogates included (Hypothesis leaves them out by default).
any_char = st.characters() | st.integers(0xD800, 0xDFFF).map(chr)
any_text = st.text(any_char, max_size=12) | st.sampled_from(["", "share", "type", "\ud800", "\udc00", "\x00", "😀", "推客"])
big_int = st.integers(min_value=-(2**80), max_value=2**80) | st.sampled_from([2**53 - 1, 2**53, 2**64, -(2**63) - 1, 10**400])

json_values = st.recursive(
    st.none() | st.booleans() | big_int | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)


def _encode(text: str) -> bytes:
    """JSON text to bytes; lone surrogates in it become (invalid) encoded surrogates."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def json_documents(draw) -> bytes:
    """Any JSON value as text: escaped or raw Unicode, compact or indented,
    optionally wrapped in more arrays/objects (around the 128 limit, or far past it)."""
    value = draw(json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 0, 2])))
    depth = draw(st.sampled_from([0, 0, 0, 1, 126, 127, 128, 129, 500, 3000]))
    if depth:
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
        text = opener * depth + text + closer * depth
    return _encode(text)


AT = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00+08:00", "2026-01-03T12:00:00.5Z"]
ids = st.sampled_from(["1", "2", "3"])


@st.composite
def valid_events(draw) -> dict:
    """A valid wire event from small id pools, so duplicates, conflicts,
    duplicate business ids, parking and unparking all happen in a list."""
    kind = draw(st.sampled_from(["share", "click", "order", "refund", "fulfillment"]))
    n = draw(ids)
    ev = {"type": kind, "event_id": f"{kind[0]}{n}-{draw(ids)}", "occurred_at": draw(st.sampled_from(AT))}
    if kind == "share":
        ev |= {"share_id": f"s{n}", "promoter_id": f"p{draw(ids)}"}
        if draw(st.booleans()):
            ev["parent_share_id"] = f"s{draw(ids)}"
        for key, pool in (("merchant_id", ["m1", "m2", None]), ("product_id", ["k", "k2", None])):  # SPEC §14
            if draw(st.booleans()):
                ev[key] = draw(st.sampled_from(pool))
    elif kind == "click":
        ev |= {"buyer_id": f"b{draw(ids)}", "share_id": f"s{draw(ids)}"}
    elif kind == "order":
        ev |= {"order_id": f"o{n}", "buyer_id": f"b{draw(ids)}", "merchant_id": "m1",
               "lines": [{"sku": "k", "quantity": draw(st.integers(1, 3)), "unit_price": draw(st.sampled_from([0, 100, 10_000]))}]}
        if draw(st.booleans()):
            ev["lines"][0]["product_id"] = draw(st.sampled_from(["k", "k2", None]))
    elif kind == "fulfillment":  # SPEC §15
        ev |= {"order_id": f"o{draw(ids)}", "buyer_id": f"b{draw(ids)}", "stage": draw(st.sampled_from(["shipped", "received"]))}
    else:
        ev |= {"refund_id": f"r{n}", "order_id": f"o{draw(ids)}", "buyer_id": f"b{draw(ids)}",
               "amount": draw(st.sampled_from([1, 100, 10_000, 50_000]))}
    return ev


# Raw JSON value texts that break the wire format. Each is a fragment placed as
# a member's value; ``True`` marks those that are themselves one I-JSON value.
HOSTILE_VALUES: list[tuple[bytes, bool]] = [
    (b'"e\\ud800"', False), (b'"\\udc00x"', False), (b'"\\ude00\\ud83d"', False), (b'"\\ud800\\u0041"', False),
    (b'"\\ud83d\\ude00"', True), (b'"\\\\ud800"', True),  # a real pair; an escaped backslash, then text
    (b'"a\x01b"', False), (b'"\x00"', False), (b'"\x1f"', False), (b'"\\u0000\\u001f"', True), (b'"\x7f\xc2\x80"', True),
    (b'"\xff"', False), (b'"\xed\xa0\x80"', False), (b'"\xc0\xaf"', False), (b'"\xf4\x90\x80\x80"', False),
    (b"NaN", False), (b"Infinity", False), (b"-Infinity", False), (b"nan", False),
    (b"1e400", True), (b"-1e400", True), (b"9" * 5000, True), (b"-" + b"9" * 4301, True), (str(2**53).encode(), True),
    (str(2**64 + 1).encode(), True), (b"1.0", True), (b"1.5", True), (b"-0", True), (b"0.1e-400", True),
    (b"null", True), (b"true", True), (b"false", True), (b"[]", True), (b"{}", True), (b'"1"', True), (b'""', True),
    (b'"' + b"x" * 129 + b'"', True), (b'"' + b"x" * 100_000 + b'"', True),
    (b"[" * 126 + b"]" * 126, True), (b"[" * 127 + b"]" * 127, True),  # with the event: 127 and 128 deep
    (b"[" * 128 + b"]" * 128, False), (b"[" * 5000 + b"]" * 5000, False), (b'{"a":' * 200 + b"1" + b"}" * 200, False),
    (b'"[[[[{{{{"', True),  # brackets inside a string are not nesting
]
hostile_values = st.sampled_from(HOSTILE_VALUES)
TRAILING = [b" x", b"{}", b"\x00", b"]", b",", b" \n\t", b"\xff", b"//", b" null"]


def _member(key: bytes, value: bytes) -> bytes:
    return key + b":" + value


@st.composite
def near_valid(draw) -> tuple[bytes, str, bool]:
    """A valid event with one mutation: (bytes, mutation name, still one I-JSON value?)."""
    ev = draw(valid_events())
    members = [(json.dumps(k).encode(), json.dumps(v).encode()) for k, v in ev.items()]
    kind = draw(st.sampled_from(["replace", "unknown", "duplicate", "trailing", "truncate", "drop", "invalid-utf8"]))
    ijson = True
    if kind in ("replace", "unknown", "duplicate"):
        value, ijson = draw(hostile_values)
        if kind == "replace":
            i = draw(st.integers(0, len(members) - 1))
            members[i] = (members[i][0], value)
        elif kind == "unknown":
            members.insert(draw(st.integers(0, len(members))), (b'"x_extra"', value))
        else:  # the same name twice: the last one wins
            i = draw(st.integers(0, len(members) - 1))
            twin = (members[i][0], value)
            members.insert(i + 1 if draw(st.booleans()) else i, twin)
    raw = b"{" + b",".join(_member(k, v) for k, v in members) + b"}"
    if kind == "trailing":
        tail = draw(st.sampled_from(TRAILING))
        raw += tail
        ijson = not tail.strip()
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
        ijson = False
    elif kind == "drop":
        del members[draw(st.integers(0, len(members) - 1))]
        raw = b"{" + b",".join(_member(k, v) for k, v in members) + b"}"
    elif kind == "invalid-utf8":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"])) + raw[at:]
        ijson = False
    return raw, kind, ijson


lines = st.one_of(
    valid_events().map(lambda e: json.dumps(e).encode()),
    near_valid().map(lambda t: t[0]),
    json_documents(),
    st.binary(max_size=64),
)


# ------------------------------------------------------------------- decoding
@FAST
@given(st.binary(max_size=512))
def test_decode_arbitrary_bytes(raw):
    check_decode(raw)


@FAST
@given(json_documents())
def test_decode_arbitrary_json(raw):
    check_decode(raw)


@FAST
@given(near_valid())
def test_decode_near_valid_events(case):
    raw, kind, ijson = case
    result = check_decode(raw)
    assert is_ijson(raw) == ijson, (kind, raw[:200])  # the strategy's own labels agree with the oracle
    if not ijson:
        assert result.reason == reasons.MALFORMED_JSON, (kind, result)


@FAST
@given(valid_events(), hostile_values.filter(lambda v: v[1]))
def test_valid_event_with_any_ijson_unknown_field_decodes(ev, hostile):
    """An unknown field never spoils a valid event, whatever I-JSON value it holds."""
    raw = json.dumps(ev).encode()[:-1] + b',"x_extra":' + hostile[0] + b"}"
    assert isinstance(check_decode(raw), Decoded)


# --------------------------------------------------------------------- ingest
def _row_line(row) -> int:
    file, _, line = row.source.rpartition(":")
    return int(line)


# What a parked event can become when its order arrives (SPEC §6, §15).
RELEASED_REASONS = (reasons.REFUND_BUYER_MISMATCH, reasons.REFUND_EXCEEDS_ORDER, reasons.FULFILLMENT_BUYER_MISMATCH)


@LEDGER
@given(st.lists(lines, max_size=25))
def test_ingest_any_lines_as_one_batch(raws):
    ledger = new_ledger()
    counts = feed(ledger, raws)  # never raises
    rows = dead_letters(ledger.store.store).items
    assert len(rows) == counts.dead_letters
    assert sum(counts.reasons.values()) == counts.dead_letters and set(counts.reasons) <= {r.reason for r in rows}
    sources = [_row_line(r) for r in rows]
    assert len(set(sources)) == len(sources)  # one dead letter per line at most
    for row, line in zip(rows, sources):
        assert base64.b64decode(row.raw_base64) == raws[line - 1]  # exact bytes
    # A parked refund or fulfillment rejected when its order arrives is counted
    # parked, then dead (SPEC §6, §15): only those lines are counted twice.
    released = counts.total - len(raws)
    assert 0 <= released <= sum(r.reason in RELEASED_REASONS for r in rows)


@LEDGER
@given(st.lists(lines, max_size=25))
def test_ingest_line_by_line_accounts_for_every_line(raws):
    """Each line is exactly one of accepted, duplicate, parked or dead letter."""
    ledger = new_ledger()
    seen = 0
    for number, raw in enumerate(raws, 1):
        counts = ledger.ingest([(raw, Source(file="fuzz", line=number))])
        rows = dead_letters(ledger.store.store).items
        new, seen = rows[seen:], len(rows)
        own = [r for r in new if r.source == f"fuzz:{number}"]
        released = [r for r in new if r.source != f"fuzz:{number}"]
        assert len(own) <= 1 and len(new) == counts.dead_letters
        assert counts.accepted + counts.duplicates + counts.parked + len(own) == 1, (counts, raw[:200])
        for row in own:
            assert base64.b64decode(row.raw_base64) == raw
        for row in released:  # an earlier parked refund or fulfillment, rejected now, with its own bytes
            assert row.reason in RELEASED_REASONS
            assert base64.b64decode(row.raw_base64) == raws[_row_line(row) - 1]
