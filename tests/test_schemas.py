"""SPEC §1 (wire format), §8 (duplicates) and §9 (bad input): timestamps, decoding,
reason codes and their order, content fingerprints, and the ingest outcomes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from fuzz.corpus import corpus_digest, decode_corpus, outcome_bytes, timestamp_corpus
from schemas import Decoded, Rejected, decode_event, format_timestamp_us, parse_timestamp_us
from schemas import decode as decode_module
from schemas import ijson, reasons, timestamps
from schemas.decode import _decode_careful, content_fingerprint, decode_fast, fingerprint
from schemas.events import Click, Order, Refund, Share, line_discount, order_currency
from tests.helpers import balances, click, dead_reasons, feed, new_ledger, order, refund, share

MAX = 2**53 - 1


# ------------------------------------------------------------------ timestamps
def _oracle_us(text: str) -> int:
    """Independent reference: datetime's idea of the instant, in µs."""
    dt = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:34:56Z",
        "2026-03-01T12:34:56z",
        "2026-03-01t12:34:56Z",
        "2026-03-01t12:34:56z",
        "2026-03-01T12:34:56+08:00",
        "2026-03-01T12:34:56-05:30",
        "2026-03-01T12:34:56+00:00",
        "2026-03-01T12:34:56-00:00",
        "2026-03-01T12:34:56+23:59",
        "2026-03-01T12:34:56.1Z",
        "2026-03-01T12:34:56.12Z",
        "2026-03-01T12:34:56.123Z",
        "2026-03-01T12:34:56.1234Z",
        "2026-03-01T12:34:56.12345Z",
        "2026-03-01T12:34:56.123456Z",
        "2026-03-01T12:34:56.123456+08:00",
        "2024-02-29T00:00:00Z",  # leap day
        "2000-02-29T23:59:59Z",  # divisible by 400: leap
        "2026-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_valid_timestamps(text):
    assert parse_timestamp_us(text) == _oracle_us(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:34:56",  # no offset
        "2026-03-01T12:34:56.1234567Z",  # 7 fraction digits
        "2026-03-01T12:34:56.Z",  # dot without digits
        "2026-03-01T23:59:60Z",  # leap second
        "2025-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",  # divisible by 100, not 400
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",  # month 13
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-03-01T24:00:00Z",  # hour 24
        "2026-03-01T12:60:00Z",
        "2026-03-01 12:34:56Z",  # space separator
        "2026-03-01_12:34:56Z",
        "２０２６-03-01T12:34:56Z",  # full-width digits
        "2026-03-01T12:34:５６Z",
        "2026-03-01T12:34:56+24:00",  # offset hour 24
        "2026-03-01T12:34:56+08:60",
        "2026-03-01T12:34:56+0800",
        "2026-03-01T12:34:56+08",
        "0000-01-01T00:00:00Z",  # year 0
        "2026-03-01T12:34:56Z trailing",
        "2026-03-01T12:34:56Zx",
        "2026-03-01T12:34:56Z\n",
        " 2026-03-01T12:34:56Z",
        "2026-3-01T12:34:56Z",
        "2026-03-01T12:34Z",
        "20260301T123456Z",
        "2026-03-01",
        "",
    ],
)
def test_invalid_timestamps(text):
    assert parse_timestamp_us(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1970-01-01T00:00:00.5Z", 500_000),
        ("1970-01-01T00:00:01.000010Z", 1_000_010),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("1970-01-01T08:00:00+08:00", 0),
        ("1970-01-02T00:00:00Z", 86_400_000_000),
        ("2026-01-01T00:00:00Z", 1_767_225_600_000_000),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000_000),
    ],
)
def test_exact_microseconds(text, expected):
    assert parse_timestamp_us(text) == expected


@pytest.mark.parametrize(
    "a, b",
    [
        ("2026-01-15T02:00:00Z", "2026-01-15T10:00:00+08:00"),
        ("2026-01-15T02:00:00Z", "2026-01-14T21:00:00-05:00"),
        ("2026-01-15T02:00:00.25z", "2026-01-15t07:30:00.250000+05:30"),
        ("2026-01-01T00:00:00Z", "2025-12-31T23:00:00-01:00"),  # crosses a year
        ("2026-01-15T02:00:00-00:00", "2026-01-15T02:00:00+00:00"),
    ],
)
def test_same_instant_in_two_offsets(a, b):
    assert parse_timestamp_us(a) == parse_timestamp_us(b) is not None


@pytest.mark.parametrize(
    "us, text",
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1, "1970-01-01T00:00:00.000001Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (1_709_164_800_000_000, "2024-02-29T00:00:00.000000Z"),
    ],
)
def test_format_timestamp(us, text):
    assert format_timestamp_us(us) == text
    assert parse_timestamp_us(text) == us


# The digest of main's parse_timestamp_us (the pattern, before issue 13) over
# timestamp_corpus(): 3000 generated texts of every valid shape, each also mutated once.
TIMESTAMP_CORPUS_DIGEST = "a1c78278826bacf0a0a6639aee67d84b"


def test_timestamp_fast_path_gives_the_pattern_s_answer_for_every_text():
    """The sliced fast path (issue 13) against the pattern it replaced on the hot
    path, the datetime oracle and main's results; each text twice, so the second
    parse takes the fast path whenever the first cached its hour."""
    texts = list(timestamp_corpus())
    results = []
    fast = 0
    for text in texts:
        careful = timestamps._parse_careful(text)
        first, second = parse_timestamp_us(text), parse_timestamp_us(text)
        assert first == second == careful, text
        if careful is not None:
            assert careful == _oracle_us(text), text
            fast += text[:13] in timestamps._hour_cache
        results.append(str(careful))
    assert hashlib.blake2b("\n".join(results).encode(), digest_size=16).hexdigest() == TIMESTAMP_CORPUS_DIGEST
    valid = sum(r != "None" for r in results)
    assert 2000 < valid < 4000 and fast == valid  # both kinds well represented; every valid one had a cached hour


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:34:56.Z", "2026-03-01T12:34:56.1234567Z", "2026-03-01T12:34:56.+08:00", "2026-03-01T12:34:56.1+0800",
        "2026-03-01T12:34:56.1+08:00Z", "2026-03-01T12:34:56+08:00 ", "2026-03-01T12:34:56.٣Z", "2026-03-01T12:34:56.1 Z",
        "2026-03-01T12:34:5６Z", "2026-03-01T12:3４:56Z", "2026-03-01T12:34:56.12345６Z", "2026-03-01T12:34:56ZZ",
        "2026-03-01T12:34:56.1z+08:00", "2026-03-01T12:34:56.1:08:00", "2026-03-01T12:34:56.1-08-00",
        "2026-03-01T12:34:56-", "2026-03-01T12:34:56.", "2026-03-01T12", "2026-03-01T12:34:56.1+8:00",
    ],
)
def test_timestamp_fast_path_rejects_what_the_pattern_rejects(text):
    parse_timestamp_us("2026-03-01T12:34:56Z")  # the hour is cached: the fast path sees every one of these
    assert text[:13] in timestamps._hour_cache
    assert parse_timestamp_us(text) is None and timestamps._parse_careful(text) is None


def test_a_fraction_of_thousands_of_digits_is_invalid_not_a_crash():
    """Found by atheris (crash-48c69d56…): the fast path called int() on a
    5,805-digit fraction before checking its length, and CPython's 4,300-digit
    limit raised ValueError, which decode_event caught as a bug."""
    parse_timestamp_us("2026-02-15T02:00:00Z")  # the hour is cached: the fast path sees it
    for zone in ("Z", "+08:00"):
        text = "2026-02-15T02:00:00.123" + "9" * 5_805 + zone
        assert parse_timestamp_us(text) is None
    raw = ('{"type":"click","event_id":"e-c1","occurred_at":"2026-02-15T02:00:00.1' + "9" * 5_000
           + 'Z","buyer_id":"b","share_id":"s"}').encode()
    rejected = decode_event(raw)
    assert isinstance(rejected, Rejected) and rejected.reason == reasons.INVALID_TIMESTAMP


def test_hour_cache_keeps_real_hours_only_and_is_emptied_when_full(monkeypatch):
    monkeypatch.setattr(timestamps, "_hour_cache", {})
    monkeypatch.setattr(timestamps, "_HOUR_CACHE_MAX", 3)
    assert parse_timestamp_us("2025-02-29T00:00:00Z") is None and timestamps._hour_cache == {}
    assert parse_timestamp_us("2026-03-01T24:00:00Z") is None and timestamps._hour_cache == {}
    for hour in range(5):
        assert parse_timestamp_us(f"2026-03-01T{hour:02d}:00:00Z") == _oracle_us(f"2026-03-01T{hour:02d}:00:00Z")
    assert list(timestamps._hour_cache) == ["2026-03-01T03", "2026-03-01T04"]  # emptied at 3, refilled


# -------------------------------------------------------------------- decoding
AT = "2026-01-15T10:00:00+08:00"
AT_US = 1_768_442_400_000_000
SHARE = {"type": "share", "event_id": "e-s1", "occurred_at": AT, "share_id": "s1", "promoter_id": "p1"}
CLICK = {"type": "click", "event_id": "e-c1", "occurred_at": AT, "buyer_id": "b1", "share_id": "s1"}
LINE = {"sku": "sku1", "quantity": 2, "unit_price": 500}
ORDER = {"type": "order", "event_id": "e-o1", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1",
         "merchant_id": "m1", "lines": [LINE]}
REFUND = {"type": "refund", "event_id": "e-r1", "occurred_at": AT, "refund_id": "r1", "order_id": "o1",
          "buyer_id": "b1", "amount": 100}
BASES = {"share": SHARE, "click": CLICK, "order": ORDER, "refund": REFUND}

MISSING = object()


def ev(base: dict, **changes) -> bytes:
    """``base`` with fields replaced (``MISSING`` removes one), as JSON bytes."""
    obj = {**base, **changes}
    obj = {k: v for k, v in obj.items() if v is not MISSING}
    return json.dumps(obj, ensure_ascii=False).encode()


def order_line(**changes) -> bytes:
    line = {k: v for k, v in {**LINE, **changes}.items() if v is not MISSING}
    return ev(ORDER, lines=[line])


def _id(value) -> str | None:
    """Readable test ids: the start of the raw bytes."""
    return value[:60].decode("utf-8", "replace") if isinstance(value, bytes) else None


def _same_as_careful(raw: bytes, result) -> None:
    """The fast path never decides: every outcome is the careful path's."""
    assert outcome_bytes(result) == outcome_bytes(_decode_careful(raw))


def reason(raw: bytes) -> str:
    result = decode_event(raw)
    assert isinstance(result, Rejected), result
    _same_as_careful(raw, result)
    return result.reason


def decoded(raw: bytes) -> Decoded:
    result = decode_event(raw)
    assert isinstance(result, Decoded), result
    assert result.raw is raw
    _same_as_careful(raw, result)
    return result


@pytest.mark.parametrize("name", ["share", "click", "order", "refund"])
def test_valid_events_decode(name):
    result = decoded(ev(BASES[name]))
    assert type(result.event) is {"share": Share, "click": Click, "order": Order, "refund": Refund}[name]
    assert result.event.event_id == BASES[name]["event_id"]
    assert result.occurred_us == AT_US


@pytest.mark.parametrize(
    "raw, code",
    [
        # malformed_json: not UTF-8 JSON
        (b'{"type":"share","event_id":"\xff\xfe","occurred_at":"2026-01-15T02:00:00Z"}', "malformed_json"),
        (b"\xff" + ev(SHARE), "malformed_json"),
        (ev(SHARE)[:-1], "malformed_json"),  # truncated
        (b'{"type":"share"', "malformed_json"),
        (b"", "malformed_json"),
        (b"{'type': 'share'}", "malformed_json"),
        (b'{"type":"share","x":NaN}', "malformed_json"),
        # schema_violation: not an object
        (b"[1]", "schema_violation"),
        (b"null", "schema_violation"),
        (b'"share"', "schema_violation"),
        (b"42", "schema_violation"),
        (b'[{"type":"gift"}]', "schema_violation"),
        # unknown_type
        (ev(SHARE, type=MISSING), "unknown_type"),
        (ev(SHARE, type=5), "unknown_type"),
        (ev(SHARE, type="gift"), "unknown_type"),
        (ev(SHARE, type="Share"), "unknown_type"),
        (ev(SHARE, type=None), "unknown_type"),
        (ev(SHARE, type=True), "unknown_type"),
        (ev(SHARE, type=["share"]), "unknown_type"),
        (ev(SHARE, type={"name": "share"}), "unknown_type"),
        # schema_violation: bad event_id
        (ev(SHARE, event_id=MISSING), "schema_violation"),
        (ev(SHARE, event_id=""), "schema_violation"),
        (ev(SHARE, event_id="x" * 129), "schema_violation"),
        (ev(SHARE, event_id="😀" * 129), "schema_violation"),
        (ev(SHARE, event_id=42), "schema_violation"),
        (ev(SHARE, event_id=None), "schema_violation"),
        # unsupported_schema_version / schema_violation when not an integer
        (ev(SHARE, schema_version=2), "unsupported_schema_version"),
        (ev(ORDER, schema_version=0), "unsupported_schema_version"),
        (ev(CLICK, schema_version=-1), "unsupported_schema_version"),
        (ev(SHARE, schema_version="1"), "schema_violation"),
        (ev(SHARE, schema_version=1.0), "schema_violation"),
        (ev(SHARE, schema_version=True), "schema_violation"),
        # invalid_timestamp
        (ev(SHARE, occurred_at="2026-01-15 02:00:00Z"), "invalid_timestamp"),
        (ev(CLICK, occurred_at="2026-01-15T02:00:00"), "invalid_timestamp"),
        (ev(ORDER, occurred_at="2025-02-29T00:00:00Z"), "invalid_timestamp"),
        (ev(REFUND, occurred_at="yesterday"), "invalid_timestamp"),
        (ev(SHARE, occurred_at=1_768_442_400), "invalid_timestamp"),
    ],
    ids=_id,
)
def test_reason_codes(raw, code):
    assert reason(raw) == code


@pytest.mark.parametrize(
    "raw",
    [
        # required field null or missing
        ev(CLICK, buyer_id=None),
        ev(CLICK, buyer_id=MISSING),
        ev(SHARE, promoter_id=MISSING),
        ev(ORDER, merchant_id=None),
        ev(ORDER, lines=MISSING),
        ev(REFUND, amount=None),
        order_line(sku=MISSING),
        order_line(quantity=None),
        # integers: not booleans, not 1.0, ≤ 2^53 − 1
        order_line(quantity=0),
        order_line(quantity=-1),
        order_line(quantity=1.0),
        order_line(quantity=True),
        order_line(quantity="1"),
        order_line(unit_price=-1),
        order_line(unit_price=2**53),
        order_line(unit_price=1.5),
        order_line(discount=-1),
        order_line(discount=1001),  # > quantity × unit_price = 1000
        order_line(quantity=1, unit_price=0, discount=1),
        order_line(level1_rate_bp=10001),
        order_line(level2_rate_bp=-1),
        order_line(level1_rate_bp=True),
        ev(ORDER, shipping=-1),
        ev(ORDER, shipping=1.0),
        ev(REFUND, amount=0),
        ev(REFUND, amount=-5),
        ev(REFUND, amount=2**53),
        # currency: three capital letters
        ev(ORDER, currency="cny"),
        ev(ORDER, currency="CNYY"),
        ev(ORDER, currency="CN"),
        ev(ORDER, currency="C1Y"),
        ev(ORDER, currency="ÇNY"),
        # lines
        ev(ORDER, lines=[]),
        ev(ORDER, lines=LINE),
        ev(ORDER, lines=[LINE, "x"]),
        ev(ORDER, lines=[{"sku": "a", "quantity": 1, "unit_price": 2**52},
                         {"sku": "b", "quantity": 1, "unit_price": 2**52}]),  # Σ = 2^53
        order_line(quantity=2, unit_price=2**52),  # one line, q × p = 2^53
        # ids: strings of 1–128 characters
        ev(SHARE, share_id="x" * 129),
        ev(SHARE, share_id=""),
        ev(SHARE, share_id=7),
        ev(SHARE, parent_share_id="x" * 129),
        ev(SHARE, parent_share_id=""),
        ev(SHARE, target=5),
        ev(CLICK, buyer_id="b" * 129),
        ev(ORDER, order_id="o" * 129),
        ev(ORDER, merchant_id=""),
        order_line(sku="s" * 129),
        ev(REFUND, refund_id="r" * 129),
        ev(REFUND, order_id=12),
    ],
    ids=_id,
)
def test_other_field_rules_are_schema_violations(raw):
    assert reason(raw) == "schema_violation"


@pytest.mark.parametrize(
    "raw, code",
    [
        (b'\xff{"type":"gift"}', "malformed_json"),
        (b'[{"type":"gift","event_id":""}]', "schema_violation"),
        (ev(SHARE, type="gift", event_id=""), "unknown_type"),
        (ev(SHARE, type=MISSING, event_id=5, occurred_at="bad"), "unknown_type"),
        (ev(SHARE, event_id="", schema_version=2), "schema_violation"),  # bad event_id first
        (ev(SHARE, event_id="x" * 129, occurred_at="bad"), "schema_violation"),
        (ev(SHARE, schema_version=2, occurred_at="bad"), "unsupported_schema_version"),
        (ev(ORDER, schema_version=2, lines=[]), "unsupported_schema_version"),
        (ev(SHARE, schema_version="2", occurred_at="bad"), "schema_violation"),
        (ev(ORDER, occurred_at="bad", lines=[{**LINE, "quantity": 0}]), "invalid_timestamp"),
        (ev(CLICK, occurred_at="2026-01-15T02:00:00", buyer_id=MISSING), "invalid_timestamp"),
        (ev(REFUND, occurred_at="2026-01-15T02:00:00", amount=0), "invalid_timestamp"),
    ],
    ids=_id,
)
def test_first_applicable_reason(raw, code):
    assert reason(raw) == code


def test_optional_nulls_are_absent():
    share_ev = decoded(ev(SHARE, parent_share_id=None, target=None, schema_version=None)).event
    assert share_ev.parent_share_id is None and share_ev.target is None
    order_ev = decoded(ev(ORDER, currency=None, shipping=None, schema_version=None,
                          lines=[{**LINE, "discount": None, "level1_rate_bp": None, "level2_rate_bp": None}])).event
    assert order_currency(order_ev) == "CNY"
    assert line_discount(order_ev.lines[0]) == 0
    assert order_ev.lines[0].level1_rate_bp is None


@pytest.mark.parametrize(
    "raw",
    [
        ev(SHARE, schema_version=1),
        ev(SHARE, parent_share_id="s0", target="https://example.com/p?x=1"),
        ev(SHARE, target=""),
        ev(ORDER, currency="USD", shipping=0),
        ev(ORDER, currency="XYZ", shipping=MAX),
        order_line(quantity=1, unit_price=0),
        order_line(quantity=1, unit_price=MAX),
        order_line(discount=1000),  # = quantity × unit_price
        order_line(level1_rate_bp=0, level2_rate_bp=10000),
        ev(ORDER, lines=[{"sku": "a", "quantity": 1, "unit_price": 2**52},
                         {"sku": "b", "quantity": 1, "unit_price": 2**52 - 1}]),  # Σ = 2^53 − 1
        ev(REFUND, amount=1),
        ev(REFUND, amount=MAX),
    ],
)
def test_boundary_values_are_valid(raw):
    decoded(raw)


def test_unknown_fields_are_ignored():
    plain = decoded(ev(CLICK))
    extra = decoded(ev(CLICK, referrer={"nested": [1, 2.5, None]}, note=None, campaign="spring"))
    assert extra.event == plain.event
    assert decoded(order_line(color="red")).event == decoded(ev(ORDER)).event


@pytest.mark.parametrize("field", ["event_id", "share_id", "promoter_id", "parent_share_id"])
def test_128_code_point_ids_are_valid(field):
    value = "😀" * 128  # 128 code points, 512 UTF-8 bytes
    result = decoded(ev(SHARE, **{field: value}))
    assert getattr(result.event, field) == value


def test_128_char_sku_and_order_ids_are_valid():
    result = decoded(ev(ORDER, order_id="订" * 128, buyer_id="b" * 128, lines=[{**LINE, "sku": "s" * 128}]))
    assert result.event.order_id == "订" * 128


# ---------------------------------------------------------------- fingerprints
def fp(raw: bytes | str) -> bytes:
    return decoded(raw.encode() if isinstance(raw, str) else raw).fingerprint()


def test_fingerprint_ignores_key_order_and_whitespace():
    a = json.dumps(ORDER, separators=(",", ":"))
    b = json.dumps(dict(reversed(list(ORDER.items()))), indent=4)
    c = json.dumps({**ORDER, "lines": [dict(reversed(list(LINE.items())))]}, sort_keys=True, indent="\t")
    d = json.dumps(ORDER, ensure_ascii=True).replace("o1", "\\u006f1")  # an escape is the same string
    assert fp(a) == fp(b) == fp(c) == fp(d)


@pytest.mark.parametrize("base", [SHARE, {**SHARE, "target": "分享链接"}, {**SHARE, "target": "a\x7f"}],
                         ids=["ascii", "non-ascii-target", "del-char-target"])
def test_fingerprint_uses_python_equality(base):
    """1 == 1.0 == True: the parsed values are equal, so the content is the same."""
    one, one_float, true = fp(ev(base, x=1)), fp(ev(base, x=1.0)), fp(ev(base, x=True))
    assert one == one_float == true


@pytest.mark.parametrize(
    "a, b",
    [
        (ev(SHARE, x=1), ev(SHARE, x=2)),
        (ev(SHARE, x=1), ev(SHARE, x="1")),
        (ev(SHARE, x=1), ev(SHARE, x=1.5)),
        (ev(SHARE, x=[1]), ev(SHARE, x=1)),
        (ev(SHARE, x=None), ev(SHARE)),  # null unknown field vs absent
        (ev(SHARE, target=None), ev(SHARE)),  # optional null vs absent: no defaults filled in
        (ev(SHARE, promoter_id="p2"), ev(SHARE)),
        (order_line(discount=0), ev(ORDER)),  # discount 0 vs absent
        (ev(ORDER, currency="CNY"), ev(ORDER)),
        (ev(ORDER, shipping=0), ev(ORDER)),
        (ev(SHARE, schema_version=1), ev(SHARE)),
        (ev(SHARE, target="分享"), ev(SHARE, target="分亨")),
    ],
)
def test_fingerprint_differs_for_different_content(a, b):
    assert fp(a) != fp(b)


# Fingerprints computed by main's decode_event (before issue 13, when every
# event's fingerprint was computed while decoding) for the inputs below.
S = b'{"type":"share","event_id":"e-s1","occurred_at":"2026-01-15T02:00:00Z","share_id":"s1","promoter_id":"p1"'
O = (b'{"type":"order","event_id":"e-o1","occurred_at":"2026-01-15T02:00:00Z","order_id":"o1","buyer_id":"b1",'
     b'"merchant_id":"m1","lines":[{"sku":"k","quantity":1,"unit_price":100}]')
MAIN_FINGERPRINTS = [
    ("plain", S + b"}", "4377cc2f10e2d8d158fd9ec6cd624728"),
    ("reordered-spaced", b'{ "promoter_id" : "p1", "share_id":"s1",\n"occurred_at":"2026-01-15T02:00:00Z",'
                         b'"event_id":"e-s1","type":"share" }', "4377cc2f10e2d8d158fd9ec6cd624728"),
    ("float-1.0", S + b',"x":1.0}', "80a947b54df0b0afd6c89144aac806eb"),
    ("int-1", S + b',"x":1}', "80a947b54df0b0afd6c89144aac806eb"),
    ("true", S + b',"x":true}', "80a947b54df0b0afd6c89144aac806eb"),
    ("false", S + b',"x":false}', "ddef225131de1e7cba1180abeb7e1aeb"),
    ("float-1.5", S + b',"x":1.5}', "0224f50ba6129eed6eee43e50716da10"),
    ("float-tiny", S + b',"x":-2.25e-3}', "c02a35ce4d689c172505701c7d06a9e3"),
    ("float-1e400", S + b',"x":1e400}', "6be5b25c6ea6cb26c7cabff33d69baa7"),
    ("float-minus-1e400", S + b',"x":-1e400}', "7b15d12c801746cd9898c86ecd38cb0b"),
    ("int-2^64", S + b',"x":18446744073709551616}', "0f8a1521830cddae187774d41c886f0a"),
    ("float-2^64", S + b',"x":18446744073709551616.0}', "0f8a1521830cddae187774d41c886f0a"),
    ("int-4300-digits", S + b',"x":' + b"9" * 4300 + b"}", "582e94276f3fbe2661295eb7bcca0622"),
    ("int-5000-digits", S + b',"x":' + b"9" * 5000 + b"}", "aa2af60b7e5bb9a3a787a8dc6ce06026"),
    ("huge-and-inf", S + b',"x":[' + b"9" * 5000 + b',1e400,true]}', "f6ac0b238012777ec7c0c7296a9c0953"),
    ("nested-unknown", S + b',"meta":{"b":[1,{"c":false,"d":null}],"a":{"z":1.25,"y":"\\u00e9"}}}',
     "6c466c8dd8ebcc2ffde3a95b3ec10f14"),
    ("nested-unknown-reordered", S + b',"meta":{"a":{"y":"\xc3\xa9","z":1.25},"b":[1,{"d":null,"c":false}]}}',
     "6c466c8dd8ebcc2ffde3a95b3ec10f14"),
    ("duplicate-unknown", S + b',"x":1,"x":2}', "55ec4c7fb48d010e7cb60f1e840d56ee"),
    ("duplicate-known", S.replace(b'"promoter_id":"p1"', b'"promoter_id":"p0","promoter_id":"p1"') + b"}",
     "4377cc2f10e2d8d158fd9ec6cd624728"),
    ("duplicate-type", b'{"type":"gift",' + S[1:] + b"}", "4377cc2f10e2d8d158fd9ec6cd624728"),
    ("escapes-names-values", b'{"typ\\u0065":"share","event_id":"e-s1","occurred_at":"2026-01-15T02:00:00Z",'
                             b'"share_id":"s\\u0031","promoter_id":"p1","\\u540d":"\\ud83d\\ude00\\n\\u0000"}',
     "088a937ef7b686a33b4d05f03de6f3a0"),
    ("raw-unicode", S + ',"名":"😀\\n\\u0000"}'.encode(), "088a937ef7b686a33b4d05f03de6f3a0"),
    ("non-ascii-target", S + ',"target":"分享链接"}'.encode(), "607075cca15cc0f49fdd83f0f398a4a6"),
    ("del-char", S + b',"target":"a\x7f"}', "136074942af78a2876783587eafb114e"),
    ("order", O + b"}", "17ed01b3bb18e568f814247a1a90b7fd"),
    ("order-defaults-explicit", O.replace(b'"unit_price":100', b'"unit_price":100,"discount":0')
     + b',"currency":"CNY","shipping":0}', "fe6b190db034d4f30c65758327a9461e"),
    ("order-float-unknown-in-line", O.replace(b'"unit_price":100', b'"unit_price":100,"weight":0.5,"gift":true') + b"}",
     "d0325be75941763fe3688d83bd4d9ed4"),
    ("null-unknown", S + b',"x":null}', "1e62fb0ec0a1e4e99ae864267c81b076"),
    ("schema_version-1", S + b',"schema_version":1}', "d84e525a095229ff6645a11e498aef1f"),
]


@pytest.mark.parametrize("name, raw, expected", MAIN_FINGERPRINTS, ids=[c[0] for c in MAIN_FINGERPRINTS])
def test_fingerprint_on_demand_is_main_s_fingerprint(name, raw, expected):
    """Computed when asked (issue 13), the bytes are those main computed while
    decoding: the method, the module function and content_fingerprint agree."""
    result = decoded(raw)
    assert result.fingerprint().hex() == expected
    assert fingerprint(raw).hex() == expected
    assert content_fingerprint(ijson.parse(raw)).hex() == expected


def test_fingerprint_is_computed_only_when_asked_and_then_kept(monkeypatch):
    calls = []
    real = decode_module.fingerprint  # what Decoded.fingerprint calls (looked up at each call)
    monkeypatch.setattr(decode_module, "fingerprint", lambda raw: calls.append(raw) or real(raw))
    result = decode_event(ev(SHARE, x=[1.5, True]))
    assert isinstance(result, Decoded) and result._fingerprint is None and calls == []  # decoding computed none
    first = result.fingerprint()
    assert first == real(result.raw) and len(calls) == 1 and result._fingerprint is first
    assert result.fingerprint() is first and len(calls) == 1


# The digest of main's decode_event (before issue 13) over decode_corpus(): about
# 6500 inputs (the synthetic stream, and valid events with unknown fields of any
# value, duplicate names, escapes, bad values, bad timestamps, cuts, bad bytes);
# for each, its reason and detail, or its event, instant and fingerprint.
# Issue 20 appended ~1,750 inputs of SPEC §14/§15 (shares with merchant and
# product ids, lines with product ids, fulfillments) and names the fifth type in
# unknown_type's detail; the inputs of before, with the four-type detail, still
# give main's digest 88e039aeb1988c71fe43f5ec7aa76361.
DECODE_CORPUS_DIGEST = "a30eea0ef5dc672248d114bdbb0e16d5"


def test_every_outcome_and_fingerprint_is_main_s():
    inputs = list(decode_corpus())
    assert len(inputs) > 8000
    assert corpus_digest(decode_event, inputs) == DECODE_CORPUS_DIGEST
    assert corpus_digest(_decode_careful, inputs) == DECODE_CORPUS_DIGEST


def test_fast_path_takes_ordinary_events_and_decides_nothing_else():
    """Most of the corpus is decided on the fast path only when it is a valid
    event; everything else reaches the careful path."""
    results = [(raw, decode_event(raw), decode_fast(raw)) for raw in decode_corpus()]
    assert all(f is None or f == r for _, r, f in results)  # the fast path only ever accepts, as decode_event
    rejected = [raw for raw, r, _ in results if isinstance(r, Rejected)]
    assert rejected and all(f is None for _, r, f in results if isinstance(r, Rejected))
    fast = [raw for raw, r, f in results if isinstance(r, Decoded) and f is not None]
    assert len(fast) > 3000
    assert any(b"x_extra" in raw or b'"x":' in raw for raw in fast)  # unknown fields stay on the fast path


# ------------------------------------------------------ ingest (end to end, §8)
T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-02T00:00:00Z"
T2 = "2026-01-03T00:00:00Z"


def test_redelivered_identical_event_is_a_duplicate():
    ledger = new_ledger()
    events = [share("s1", "p1", T0), click("b1", "s1", T1, event_id="c1"), order("o1", "b1", T2, amount=10_000)]
    first = feed(ledger, events)
    assert (first.accepted, first.duplicates, first.dead_letters) == (3, 0, 0)
    # redelivered with other key order and whitespace: same parsed content
    again = feed(ledger, [json.dumps(dict(reversed(list(e.items()))), indent=2) for e in events])
    assert (again.accepted, again.duplicates, again.parked, again.dead_letters) == (0, 3, 0, 0)
    assert dead_reasons(ledger) == []
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


def test_same_event_id_other_content_is_conflicting_duplicate():
    ledger = new_ledger()
    feed(ledger, [share("s1", "p1", T0), click("b1", "s1", T1), order("o1", "b1", T2, amount=10_000)])
    counts = feed(ledger, [order("o1", "b1", T2, amount=20_000)])  # same event_id e-o1
    assert (counts.accepted, counts.duplicates, counts.dead_letters) == (0, 0, 1)
    assert counts.reasons == {"conflicting_duplicate": 1}
    # a field with its default value is still other content
    feed(ledger, [order("o1", "b1", T2, amount=10_000, currency="CNY")])
    assert dead_reasons(ledger) == ["conflicting_duplicate", "conflicting_duplicate"]
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


def test_conflicting_duplicate_claims_nothing_each_delivery_is_a_dead_letter():
    ledger = new_ledger()
    feed(ledger, [share("s1", "p1", T0)])
    other = share("s1", "p2", T0)  # same event_id e-s1
    for _ in range(3):
        counts = feed(ledger, [other])
        assert counts.reasons == {"conflicting_duplicate": 1} and counts.duplicates == 0
    assert dead_reasons(ledger) == ["conflicting_duplicate"] * 3


@pytest.mark.parametrize(
    "second",
    [
        order("o1", "b1", T2, amount=50_000, event_id="e-o1-again"),
        order("o1", "b2", T1, amount=10_000, event_id="e-o1-again"),
    ],
)
def test_second_order_id_is_duplicate_business_id_and_first_kept(second):
    ledger = new_ledger()
    counts = feed(ledger, [share("s1", "p1", T0), click("b1", "s1", T1), click("b2", "s1", T1),
                           order("o1", "b1", T2, amount=10_000), second])
    assert counts.reasons == {"duplicate_business_id": 1}
    assert counts.accepted == 4
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


def test_second_share_and_refund_ids_are_duplicate_business_id():
    ledger = new_ledger()
    counts = feed(ledger, [
        share("s1", "p1", T0), share("s1", "p2", T0, event_id="e-s1-again"),
        click("b1", "s1", T1), order("o1", "b1", T2, amount=10_000),
        refund("r1", "o1", "b1", 2_000), refund("r1", "o1", "b1", 1_000, event_id="e-r1-again"),
    ])
    assert counts.reasons == {"duplicate_business_id": 2}
    assert dead_reasons(ledger) == ["duplicate_business_id", "duplicate_business_id"]
    # p1 keeps the share; one refund of 2000: floor(1500 × 8000 / 10000) = 1200
    assert balances(ledger) == {("p1", "CNY"): (1200, 0, 0)}


def test_duplicate_business_id_keeps_event_id_but_schema_violation_does_not():
    ledger = new_ledger()
    feed(ledger, [share("s1", "p1", T0), click("b1", "s1", T1), order("o1", "b1", T2, amount=10_000)])
    dup = order("o1", "b1", T2, amount=30_000, event_id="e-dup")
    bad = order("o2", "b1", T2, lines=[{"sku": "x", "quantity": 0, "unit_price": 1}], event_id="e-bad")
    assert feed(ledger, [dup]).reasons == {"duplicate_business_id": 1}
    for _ in range(2):
        counts = feed(ledger, [dup])
        assert (counts.duplicates, counts.dead_letters) == (1, 0)
    for _ in range(3):
        counts = feed(ledger, [bad])
        assert (counts.duplicates, counts.dead_letters, counts.reasons) == (0, 1, {"schema_violation": 1})
    assert dead_reasons(ledger) == ["duplicate_business_id"] + ["schema_violation"] * 3
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


def test_good_events_around_bad_lines_are_all_applied():
    lines = [
        b"\xff\xfe not utf-8",
        share("s1", "p1", T0),
        b'{"type":"click"',
        share("s2", "p2", T0, parent="s1"),
        b"[1]",
        click("b1", "s2", T1),
        {"type": "gift", "event_id": "g1"},
        order("o1", "b1", T2, amount=10_000),
        {**share("s9", "p9", T0), "event_id": ""},
        click("b3", "s1", T1),
        {**click("b3", "s1", T1), "schema_version": 2},
        order("o3", "b3", T2, lines=[{"sku": "a", "quantity": 3, "unit_price": 1_000, "discount": 500,
                                     "level1_rate_bp": 2500, "level2_rate_bp": 0}]),
        {**click("b4", "s1", T1), "occurred_at": "2026-01-02 00:00:00Z"},
        order("o4", "b1", T2, amount=0, currency="usd"),
        order("o5", "b1", T2, lines=[{"sku": "a", "quantity": 1, "unit_price": 4_000, "level1_rate_bp": 3000}],
              currency="USD"),
    ]
    ledger = new_ledger()
    counts = feed(ledger, lines)
    assert counts.accepted == 7
    assert counts.reasons == {"malformed_json": 2, "schema_violation": 3, "unknown_type": 1,
                              "unsupported_schema_version": 1, "invalid_timestamp": 1}
    assert dead_reasons(ledger) == ["malformed_json", "malformed_json", "schema_violation", "unknown_type",
                                    "schema_violation", "unsupported_schema_version", "invalid_timestamp",
                                    "schema_violation"]
    # o1: 10000 via s2 (p2, upline p1): L1 = 1500, L2 = 500
    # o3: C = 2500; r1 = min(2500, cap 2000) → 500; L2 rate 0 (no upline anyway)
    # o5 (USD): C = 4000, r1 = min(3000, 2000) → 800; L2 = 200 to p1
    assert balances(ledger) == {
        ("p1", "CNY"): (500 + 500, 0, 0),
        ("p1", "USD"): (200, 0, 0),
        ("p2", "CNY"): (1500, 0, 0),
        ("p2", "USD"): (800, 0, 0),
    }


def test_redelivery_with_equal_values_is_a_duplicate():
    """1 and 1.0 are equal parsed values (§8 "same content"), also next to non-ASCII text."""
    ledger = new_ledger()
    first = {**share("s1", "p1", T0), "target": "分享", "x": 1}
    feed(ledger, [first])
    counts = feed(ledger, [{**first, "x": 1.0}, {**first, "x": True}])
    assert (counts.duplicates, counts.dead_letters) == (2, 0)
    assert dead_reasons(ledger) == []


def test_non_string_type_is_dead_lettered_not_a_crash():
    ledger = new_ledger()
    counts = feed(ledger, [share("s1", "p1", T0), {"type": ["order"], "event_id": "x1"},
                           {"type": {"k": 1}, "event_id": "x2"}, click("b1", "s1", T1),
                           order("o1", "b1", T2, amount=10_000)])
    assert counts.accepted == 3
    assert counts.reasons == {"unknown_type": 2}
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}
