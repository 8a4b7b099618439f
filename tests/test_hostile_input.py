"""Hostile input never stops the ledger (issue 11, SPEC §9).

Decoding: every I-JSON rule of ``malformed_json``, the two decisions where RFC
7493 and SPEC §9 differ, and the regression tests the fuzzers left behind
(``test_regression_*``: each with the exact input that was found). Ingest: the
issue's three-line reproduction, and ``commission-ledger ingest`` over a
realistic stream with hostile lines spliced in.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import msgspec
import pytest

from devkit.synthetic import generate
from fuzz.properties import check_decode, is_ijson
from schemas import decode as decode_module
from schemas import ijson
from schemas.decode import Decoded, Rejected, decode_event, decode_fast
from tests.interpreted import interpreted_copy
from schemas.events import Click
from tests.helpers import balances, click, dead_reasons, feed, new_ledger, order, share

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
AT = "2026-01-15T02:00:00Z"
SHARE = b'{"type":"share","event_id":"e-s1","occurred_at":"2026-01-15T02:00:00Z","share_id":"s1","promoter_id":"p1"'
CLICK = b'{"type":"click","event_id":"e-c1","occurred_at":"2026-01-15T02:00:00Z","buyer_id":"b1","share_id":"s1"'
ORDER = (b'{"type":"order","event_id":"e-o1","occurred_at":"2026-01-15T02:00:00Z","order_id":"o1","buyer_id":"b1",'
         b'"merchant_id":"m1","lines":[{"sku":"k","quantity":1,"unit_price":100}]')


def with_field(base: bytes, name: str, value: bytes) -> bytes:
    """``base`` (an event without its closing brace) plus one member, as raw text."""
    return base + b',"' + name.encode() + b'":' + value + b"}"


def reason(raw: bytes) -> str:
    result = check_decode(raw)
    assert isinstance(result, Rejected), result
    return result.reason


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# ---------------------------------------------------------- malformed_json (§9)
@pytest.mark.parametrize(
    "raw",
    [
        # an empty value: a Kafka tombstone (no value) reaches decode_event as b""
        b"", b" ", b"\n", b"\r\n\t ",
        # invalid UTF-8, in values, names and outside strings
        with_field(SHARE, "x", b'"\xff"'), SHARE + b',"\xff":1}',
        SHARE.replace(b"p1", b"p\xc0\xaf") + b"}",  # overlong "/"
        SHARE.replace(b"p1", b"p\xed\xa0\x80") + b"}",  # an encoded surrogate
        SHARE.replace(b"p1", b"p\xf4\x90\x80\x80") + b"}",  # past U+10FFFF
        b"\xef\xbb\xbf" + SHARE + b"}",  # a byte-order mark is not JSON
        # an escaped lone surrogate in any string, names included
        SHARE.replace(b"e-s1", b"e\\ud800") + b"}",
        SHARE.replace(b"p1", b"p\\udfff") + b"}",
        ORDER.replace(b'"m1"', b'"m\\udc00"') + b"}",
        with_field(SHARE, "x", b'"\\ude00\\ud83d"'),  # low before high
        with_field(SHARE, "x", b'"\\ud83d\\u0041"'),  # high before a non-surrogate
        with_field(SHARE, "x", b'"\\ud83d"'),
        with_field(SHARE, "x", b'["a", "\\ud800"]'),
        SHARE + b',"\\ud800":1}',
        # a raw control character inside a string (names included)
        SHARE.replace(b"p1", b"p\x01") + b"}",
        SHARE.replace(b"p1", b"p\x00") + b"}",
        SHARE.replace(b"p1", b"p\t") + b"}",
        SHARE.replace(b"p1", b"p\x1f") + b"}",
        SHARE + b',"a\x0bb":1}',
        # NaN, Infinity
        with_field(SHARE, "x", b"NaN"), with_field(SHARE, "x", b"Infinity"), with_field(SHARE, "x", b"-Infinity"),
        # trailing data after the value
        SHARE + b"} x", SHARE + b"}{}", SHARE + b"}\x00", SHARE + b"}}", SHARE + b"}\xc2\xa0",
        # nested more than 128 deep (the top level is depth 1)
        nested(129), nested(5000), b"[" * 100_000, b'{"a":' * 200 + b"1" + b"}" * 200,
        with_field(SHARE, "x", nested(128)),  # 1 (the event) + 128 = 129
        with_field(CLICK, "meta", b'{"a":' + nested(5000) + b"}"),
    ],
    ids=lambda raw: raw[:50].decode("utf-8", "replace"),
)
def test_not_one_ijson_value_is_malformed_json(raw):
    assert reason(raw) == "malformed_json"


@pytest.mark.parametrize(
    "raw",
    [
        with_field(SHARE, "x", nested(127)),  # 1 + 127 = 128
        with_field(SHARE, "x", b'"' + b"[" * 1000 + b'{\\"' + b"{" * 1000 + b'"'),  # brackets in strings are text
        with_field(SHARE, "x", b'"\\\\ud800"'),  # an escaped backslash, then the letters ud800
        with_field(SHARE, "x", b'"\\ud83d\\ude00 \\u0000\\u001f\\u007f"'),  # a real pair; escaped controls are fine
        with_field(SHARE, "x", b'"\x7f\xc2\x80\xef\xbf\xbf"'),  # DEL, C1 controls and noncharacters are not U+0000–U+001F
        SHARE + b"} \t\r\n",  # trailing whitespace is not data
    ],
    ids=lambda raw: raw[-40:].decode("utf-8", "replace"),
)
def test_valid_ijson_around_the_limits_decodes(raw):
    assert isinstance(check_decode(raw), Decoded)


def test_depth_limit_is_exact_and_counts_without_recursion():
    assert ijson.nesting_depth(b"{}") == 1 and ijson.nesting_depth(b"1") == 0
    assert ijson.nesting_depth(nested(128)) == 128
    assert ijson.nesting_depth(b'["]]]]", {"a": "[[[\\"[["}]') == 2
    assert ijson.nesting_depth(b'"\\"[[[[[') == 0  # an unterminated string runs to the end
    assert isinstance(decode_event(nested(128, b'"x"')), Rejected)  # an array: schema_violation, not malformed
    assert decode_event(nested(128)).reason == "schema_violation"
    assert decode_event(nested(129)).reason == "malformed_json"
    started = time.perf_counter()
    for raw in (b"[" * 100_000, b"{" * 100_000, b'{"a":' * 200_000, b'[{"a":' * 100_000):
        assert decode_event(raw).reason == "malformed_json"
    assert time.perf_counter() - started < 2  # linear: no RecursionError, no quadratic scan
    started = time.perf_counter()
    assert decode_event(b'"' + b'\\"' * 1_000_000).reason == "malformed_json"  # many quotes, one string
    assert time.perf_counter() - started < 2


# ------------------------------------------------------ the two decisions (§9)
def test_numbers_beyond_float_range_or_2_53_in_unknown_fields_are_valid():
    """RFC 7493 says SHOULD NOT; SPEC's integer rules apply to known fields only."""
    for value in (b"1e400", b"-1e400", b"9007199254740993", b"18446744073709551616", b"9" * 4300, b"9" * 4301,
                  b"-" + b"9" * 100_000, b"1" + b"0" * 400 + b".5", b"[1e400, " + b"7" * 5000 + b"]"):
        assert isinstance(check_decode(with_field(SHARE, "x", value)), Decoded), value[:20]


def test_numbers_beyond_2_53_in_known_fields_are_schema_violations():
    assert reason(ORDER.replace(b'"unit_price":100', b'"unit_price":' + b"9" * 5000) + b"}") == "schema_violation"
    assert reason(ORDER.replace(b'"unit_price":100', b'"unit_price":1e400') + b"}") == "schema_violation"
    assert reason(with_field(SHARE, "schema_version", b"9" * 5000)) == "unsupported_schema_version"
    assert reason(with_field(SHARE, "schema_version", b"1e400")) == "schema_violation"
    assert reason(b'{"type":' + b"9" * 5000 + b"}") == "unknown_type"
    assert reason(b'{"type":"share","event_id":' + b"9" * 5000 + b"}") == "schema_violation"


def test_huge_numbers_keep_an_exact_fingerprint():
    """Same content is equal parsed values (§8): exact for numbers of any size."""
    def fp(value: bytes) -> bytes:
        return check_decode(with_field(SHARE, "x", value)).fingerprint()

    huge = b"9" * 5000
    assert fp(huge) == fp(huge) != fp(b"9" * 4999 + b"8")
    assert fp(b"[" + huge + b", 1e400]") == fp(b"[" + huge + b", 2e400]")  # both +inf
    assert fp(b"[" + huge + b", 1]") == fp(b"[" + huge + b", 1.0]") == fp(b"[" + huge + b", true]")
    assert fp(b"[" + huge + b", 1e400]") != fp(b"[" + huge + b", -1e400]")
    assert fp(b"[" + huge + b", 18446744073709551616]") == fp(b"[" + huge + b", 18446744073709551616.0]")
    assert fp(huge) != fp(b'"' + huge + b'"')


def test_duplicate_member_names_are_accepted_and_the_last_wins():
    result = check_decode(b'{"type":"gift","type":"share","event_id":"e","occurred_at":"2026-01-15T02:00:00Z",'
                          b'"share_id":"s1","promoter_id":"p1","promoter_id":"p2"}')
    assert result.event.promoter_id == "p2"
    assert reason(with_field(SHARE, "promoter_id", b"5")) == "schema_violation"  # the last one is checked


def test_the_last_resort_guard_turns_a_bug_into_a_schema_violation(monkeypatch):
    def broken(text):
        raise KeyError("boom")

    # Both paths call it: the fast path fails (and decides nothing), the careful path's guard answers.
    # (An interpreted copy of the module: a compiled one calls its own binding.)
    decode_copy = interpreted_copy("schemas.decode")
    monkeypatch.setattr(decode_copy, "parse_timestamp_us", broken)
    result = decode_copy.decode_event(SHARE + b"}")
    assert result == Rejected("schema_violation", "KeyError: 'boom'")
    assert decode_copy.unexpected_errors == 1
    assert isinstance(decode_event(None), Rejected)  # not even bytes: a tombstone's None
    assert decode_event(None).reason == "malformed_json"


# ------------------------------ the typed fast path (issue 13): what it skips
# decode_event's fast path decodes the bytes straight into the event Structs;
# unknown members (and whatever msgspec scans past to find the ``type`` tag) are
# skipped, not parsed into values. These tests pin what msgspec checks while
# skipping: if a msgspec upgrade stops checking one of them, the first test
# fails, before any hostile input gets through. ijson.typed_decode_suffices
# covers the two gaps (UTF-8 and depth).
SKIPPED_BUT_CHECKED = {
    "lone-surrogate-value": with_field(CLICK, "x", b'"a\\ud800"'),
    "lone-low-surrogate-value": with_field(CLICK, "x", b'"\\udc00"'),
    "reversed-pair": with_field(CLICK, "x", b'"\\ude00\\ud83d"'),
    "high-then-other": with_field(CLICK, "x", b'"\\ud83d\\u0041"'),
    "lone-surrogate-name": CLICK + b',"\\ud800":1}',
    "lone-surrogate-nested": with_field(CLICK, "x", b'[{"a":["\\udbff"]}]'),
    "lone-surrogate-nested-name": with_field(CLICK, "x", b'{"\\udfff":1}'),
    "control-char-value": with_field(CLICK, "x", b'"a\x01b"'),
    "nul-value": with_field(CLICK, "x", b'"\x00"'),
    "tab-value": with_field(CLICK, "x", b'"\t"'),
    "control-char-name": CLICK + b',"a\x1fb":1}',
    "control-char-nested": with_field(CLICK, "x", b'{"k":["\x0b"]}'),
    "bad-escape": with_field(CLICK, "x", b'"\\x41"'),
    "NaN": with_field(CLICK, "x", b"NaN"),
    "Infinity": with_field(CLICK, "x", b"Infinity"),
    "-Infinity": with_field(CLICK, "x", b"-Infinity"),
    "nan": with_field(CLICK, "x", b"nan"),
    "NaN-nested": with_field(CLICK, "x", b"[1, {\"a\": NaN}]"),
    "leading-zero": with_field(CLICK, "x", b"01"),
    "bare-dot": with_field(CLICK, "x", b"1."),
    "plus": with_field(CLICK, "x", b"+1"),
    "trailing-comma": with_field(CLICK, "x", b"[1,]"),
    "single-quotes": with_field(CLICK, "x", b"'a'"),
    "trailing-data": CLICK + b"} x",
    "second-value": CLICK + b"}{}",
    "trailing-nul": CLICK + b"}\x00",
    "before-the-tag": b'{"x":"\\ud800",' + CLICK[1:] + b"}",
    "control-before-the-tag": b'{"x":"\x01",' + CLICK[1:] + b"}",
}
SKIPPED_UNCHECKED = {  # msgspec accepts these when it skips them; typed_decode_suffices sends them to the careful path
    "invalid-utf8-value": with_field(CLICK, "x", b'"\xff"'),
    "encoded-surrogate-value": with_field(CLICK, "x", b'"\xed\xa0\x80"'),
    "overlong-value": with_field(CLICK, "x", b'"\xc0\xaf"'),
    "past-U+10FFFF-value": with_field(CLICK, "x", b'"\xf4\x90\x80\x80"'),
    "invalid-utf8-name": CLICK + b',"\xff":1}',
    "invalid-utf8-nested": with_field(CLICK, "x", b'{"a":["\x80"]}'),
    "invalid-utf8-before-the-tag": b'{"x":"\xfe",' + CLICK[1:] + b"}",
    "129-deep": with_field(CLICK, "x", nested(128)),
    "500-deep": with_field(CLICK, "x", nested(499)),
    "deep-objects": with_field(CLICK, "x", b'{"a":' * 200 + b"1" + b"}" * 200),
}


@pytest.mark.parametrize("raw", list(SKIPPED_BUT_CHECKED.values()), ids=list(SKIPPED_BUT_CHECKED))
def test_msgspec_checks_skipped_content(raw):
    """Not I-JSON in an unknown member: the typed decode itself fails, so the
    careful path decides (malformed_json)."""
    with pytest.raises(msgspec.DecodeError):
        decode_module._typed.decode(raw)
    assert reason(raw) == "malformed_json"


@pytest.mark.parametrize("raw", list(SKIPPED_UNCHECKED.values()), ids=list(SKIPPED_UNCHECKED))
def test_what_msgspec_does_not_check_while_skipping_is_checked_before(raw):
    """Invalid UTF-8 in skipped strings and nesting past 128 are accepted by a
    typed decode: ijson.typed_decode_suffices keeps them off the fast path."""
    assert isinstance(decode_module._typed.decode(raw), Click)  # the gap, pinned
    assert not ijson.typed_decode_suffices(raw)
    assert reason(raw) == "malformed_json"


def test_typed_decode_suffices_on_ordinary_events():
    for raw in generate(500, seed=3):
        if raw.startswith(b"{") and not raw.startswith(b'{"type": "gift"'):
            assert ijson.typed_decode_suffices(raw), raw
    assert ijson.typed_decode_suffices(with_field(SHARE, "target", '"分享"'.encode()))  # non-ASCII, valid UTF-8
    assert ijson.typed_decode_suffices(with_field(CLICK, "x", nested(127)))  # 128 deep is fine...
    # The byte test is conservative: brackets inside a string count, and the careful path finds the event valid.
    assert not ijson.typed_decode_suffices(with_field(CLICK, "x", b'"' + b"[" * 300 + b'"'))
    assert isinstance(check_decode(with_field(CLICK, "x", b'"' + b"[" * 300 + b'"')), Decoded)


def test_duplicate_names_on_the_fast_path_are_the_careful_path_s():
    """The last one wins on both paths; a second ``type`` tag that differs from
    the first fails the typed decode (msgspec checks every tag against the
    first), so the careful path decides with the last one."""
    raw = CLICK.replace(b'"buyer_id":"b1"', b'"buyer_id":"b0","buyer_id":"b1"') + b"}"
    assert decode_module._typed.decode(raw).buyer_id == "b1"
    assert check_decode(raw).event.buyer_id == "b1"
    twin = CLICK + b',"promoter_id":"p1","type":"share"}'  # the last type wins: a valid share
    with pytest.raises(msgspec.ValidationError):
        decode_module._typed.decode(twin)
    assert type(check_decode(twin).event).__name__ == "Share"
    same = CLICK + b',"type":"click"}'
    assert decode_module._typed.decode(same) == check_decode(same).event
    escaped = b'{"typ\\u0065":"cl\\u0069ck",' + CLICK[len(b'{"type":"click",'):] + b"}"
    assert decode_module._typed.decode(escaped) == check_decode(escaped).event


def test_fast_path_answers_for_valid_events_with_unknown_fields(monkeypatch):
    """Proof that the fast path is taken: with the careful path broken, valid
    events (unknown fields of any I-JSON value included) still decode."""
    def broken(raw):
        raise AssertionError("careful path reached")

    values = [b"1e400", b"9" * 5000, b'"\\ud83d\\ude00"', b'{"a":[1,{"b":null}]}', nested(127), b'"\\u0000"',
              '"推客😀"'.encode(), b'"\x7f\xc2\x80\xef\xbf\xbf"', b"-0", b"1.5e-300"]
    expected = [decode_event(with_field(CLICK, "x", v)) for v in values]
    decode_copy = interpreted_copy("schemas.decode")  # a compiled module calls its own binding
    monkeypatch.setattr(decode_copy, "_decode_careful", broken)
    for value, before in zip(values, expected):
        raw = with_field(CLICK, "x", value)
        assert decode_fast(raw) == before
        result = decode_copy.decode_event(raw)
        assert result.event == before.event and result.occurred_us == before.occurred_us
        assert result.fingerprint() == before.fingerprint()


# ------------------------------------------- regressions left by the fuzzers
def test_regression_atheris_lone_surrogate_in_a_member_a_duplicate_name_replaces():
    """atheris, 20 s into the first run: a lone surrogate escape (\\udbff) in an
    object whose name "lines" comes again later. decode_event said
    malformed_json (right: the text holds a lone surrogate); the oracle looked
    at the parsed value, where the later duplicate had replaced it."""
    raw = (b'{"t": "b1", "merchant_id": "m1", "currency": "&CNY", "shipping": 0, "lines": [{"sku": "k<", "quantity": 2, '
           b'"unit_price": 500, "disgount": 10, "level0_rate_bp": 1500, "leype":"g\\udbff-0-","shvel2_rate_bp": 500}], '
           b'"schema_vecount": 10, "level1_rate_bp": 1500, "levely": "CNY", "sh": "CNY", "shipping": 0, "lines": [{"sku": '
           b'"k1", "quantity": 2, "unit_price": 500, "disgounerchantng": 0, "lines": [{"sku": "k1", "quantity": 2, '
           b'"unit_price": 500, "discount": 10, "level1_rate_bp": 1500, "levely": "CNY", "sh": "order", "event_idquantity": '
           b'2, "unit_price": 500, "disgount": 10, "level1_rate_bp": 1500, "l1_rate_bp": 1500, "levely": "CNY", "sh": "CNY", '
           b'"shipping": 0, "lines": [{"sku": "k1", "quantity": 2, "unit_price": 500, "disgount": 10, "level1_rate_bp": 1500, '
           b'"leval2_rate_bp": 500}], "schema_versioipping": 0, "li2_rate_bp": 500}], "scrsioipping": 0, "li2_rate_bp": 500}], '
           b'"schema_version": 1}')
    assert not is_ijson(raw)
    assert reason(raw) == "malformed_json"


def test_regression_slow_path_finds_a_lone_surrogate_that_a_duplicate_replaces():
    """The same blind spot in decode_event itself, on its slow path (an integer
    over 4300 digits makes msgspec decline, Python's json parses instead): it
    checked the parsed value, so a replaced member's lone surrogate passed."""
    raw = SHARE + b',"x":' + b"9" * 4400 + b',"a":"\\ud800","a":"ok"}'
    assert reason(raw) == "malformed_json"
    raw = SHARE + b',"x":' + b"9" * 4400 + b',"a":["\\\\ud800"],"a":"ok"}'  # an escaped backslash: valid
    assert isinstance(check_decode(raw), Decoded)


# --------------------------------------------------------------------- ingest
def test_issue_reproduction_share_deep_array_click():
    """ingest died with RecursionError on line 2; nothing after it was applied."""
    ledger = new_ledger()
    counts = feed(ledger, [share("s1", "p1", AT), b"[" * 5000 + b"]" * 5000, click("b1", "s1", AT, event_id="c1"),
                           order("o1", "b1", "2026-01-16T00:00:00Z", amount=10_000)])
    assert (counts.accepted, counts.dead_letters, counts.reasons) == (3, 1, {"malformed_json": 1})
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


@pytest.mark.parametrize("field", ["event_id", "promoter_id", "share_id", "parent_share_id", "target", "x"])
def test_lone_surrogate_in_any_field_is_a_dead_letter_not_a_crashed_write(field):
    """Accepted before, the event then crashed the journal write (UnicodeEncodeError)."""
    ledger = new_ledger()
    bad = json.dumps({**share("s9", "p9", AT), field: "v\ud800"}).encode()  # json.dumps escapes it: \ud800
    assert b"\\ud800" in bad
    counts = feed(ledger, [share("s1", "p1", AT), bad, click("b1", "s1", AT, event_id="c1"),
                           order("o1", "b1", "2026-01-16T00:00:00Z", amount=10_000)])
    assert (counts.accepted, counts.reasons) == (3, {"malformed_json": 1})
    assert dead_reasons(ledger) == ["malformed_json"]
    assert balances(ledger) == {("p1", "CNY"): (1500, 0, 0)}


def _hostile_lines() -> list[tuple[bytes, str]]:
    """Hostile JSONL lines (no newline inside) and the §9 reason each must get."""
    valid_deep = {"type": "click", "event_id": "hx-deep", "occurred_at": AT, "buyer_id": "hx-b", "share_id": "hx-s"}
    deep_text = json.dumps(valid_deep)[:-1].encode()
    return [
        # the issue's three-line reproduction (share and click are valid, new, and pay nothing)
        (json.dumps(share("hx-s", "hx-p", AT)).encode(), "accepted"),
        (b"[" * 5000 + b"]" * 5000, "malformed_json"),
        (json.dumps(click("hx-b", "hx-s", AT, event_id="hx-c")).encode(), "accepted"),
        # lone surrogates in event_id / promoter_id / merchant_id
        (json.dumps(share("hx-s2", "hx-p2", AT, event_id="hx-\ud800")).encode(), "malformed_json"),
        (json.dumps(share("hx-s3", "hx-p\udfff", AT)).encode(), "malformed_json"),
        (json.dumps(order("hx-o1", "hx-b", AT, merchant_id="m\udc00")).encode(), "malformed_json"),
        # control characters, raw in strings
        (json.dumps(click("hx-b\x01", "hx-s", AT)).encode().replace(b"\\u0001", b"\x01"), "malformed_json"),
        (json.dumps(share("hx-s4", "hx-p4", AT, target="a\tb")).encode().replace(b"\\t", b"\t"), "malformed_json"),
        # invalid UTF-8
        (b'{"type":"click","event_id":"hx-\xff","occurred_at":"2026-01-15T02:00:00Z","buyer_id":"b","share_id":"s"}', "malformed_json"),
        (json.dumps(share("hx-s5", "hx-pX", AT)).encode().replace(b"hx-pX", b"hx-p\xed\xa0\x80"), "malformed_json"),
        # a 10 MB line (a string that never ends)
        (b'{"type":"share","event_id":"hx-big","note":"' + b"x" * 10_000_000, "malformed_json"),
        # NaN
        (json.dumps({**share("hx-s6", "hx-p6", AT), "score": float("nan")}).encode(), "malformed_json"),
        # tombstone-like empty JSON (an empty line carries no message and is skipped)
        (b"   ", "malformed_json"), (b"null", "schema_violation"), (b'""', "schema_violation"), (b"{}", "unknown_type"),
        # deep nesting inside an unknown field of an otherwise valid event
        (deep_text + b',"meta":' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
        (deep_text + b',"meta":' + b"[" * 128 + b"]" * 128 + b"}", "malformed_json"),
        # an integer too big for a known field
        (json.dumps(order("hx-o2", "hx-b", AT, amount=2**53)).encode(), "schema_violation"),
    ]


def _ingest(store: str, path) -> str:
    done = subprocess.run([EXE, "--store", store, "ingest", str(path)], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def _json(store: str, *argv: str):
    done = subprocess.run([EXE, "--store", store, *argv, "--format", "json"], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


def test_ingest_of_a_stream_with_hostile_lines_spliced_in(tmp_path):
    clean = list(generate(3000, seed=11))
    hostile = _hostile_lines()
    spliced: list[bytes] = []
    expected: dict[int, tuple[bytes, str]] = {}  # line number → (bytes, reason)
    step = len(clean) // len(hostile)
    for i, raw in enumerate(clean):
        if i % step == 0 and i // step < len(hostile):
            line, why = hostile[i // step]
            spliced.append(line)
            if why != "accepted":
                expected[len(spliced)] = (line, why)
        spliced.append(raw)
    assert all(b"\n" not in line for line in spliced)
    (tmp_path / "clean.jsonl").write_bytes(b"\n".join(clean) + b"\n")
    (tmp_path / "hostile.jsonl").write_bytes(b"\n".join(spliced) + b"\n")
    clean_store, hostile_store = f"sqlite:///{tmp_path}/clean.db", f"sqlite:///{tmp_path}/hostile.db"

    _ingest(clean_store, tmp_path / "clean.jsonl")
    _ingest(hostile_store, tmp_path / "hostile.jsonl")

    assert _json(hostile_store, "payouts") == _json(clean_store, "payouts")
    letters = {row["source"]: row for row in _json(hostile_store, "dead-letters")}
    for number, (line, why) in expected.items():
        row = letters[f"{tmp_path / 'hostile.jsonl'}:{number}"]
        assert (row["reason"], base64.b64decode(row["raw_base64"])) == (why, line), (number, row["detail"])
    clean_letters = _json(clean_store, "dead-letters")
    assert len(letters) == len(clean_letters) + len(expected)


def test_an_unexpected_exception_applying_one_event_dead_letters_it_and_the_batch_goes_on(monkeypatch):
    """The last-resort guard around the apply step: a bug triggered by one
    event (simulated: the engine raises for one event id) dead-letters that
    event as schema_violation naming the exception; the rest of the batch is
    applied, and a re-execution of the journal reproduces the same records."""
    from ledger.engine.core import Engine
    from ledger.replay import replay_journal
    from tests.helpers import click, feed, new_ledger, order, pending, share

    real = Engine.apply_decoded  # what the ledger calls (a compiled Engine calls its own apply)

    def apply_decoded(self, decoded, raw, source):
        if isinstance(decoded, Decoded) and decoded.event.event_id == "boom":
            raise KeyError("something no input should cause")
        return real(self, decoded, raw, source)

    monkeypatch.setattr(Engine, "apply_decoded", apply_decoded)
    ledger = new_ledger()
    counts = feed(ledger, [share("s1", "p1", "2026-01-01T00:00:00Z"), click("b1", "s1", "2026-01-01T01:00:00Z", event_id="boom"),
                           click("b1", "s1", "2026-01-01T01:30:00Z"), order("o1", "b1", "2026-01-01T02:00:00Z", amount=10_000)])
    assert (counts.accepted, counts.dead_letters, counts.reasons) == (3, 1, {"schema_violation": 1})
    letters = [r.letter for _, r in ledger.records() if type(r).__name__ == "DeadLettered"]
    assert [(x.reason, x.detail, x.source.line) for x in letters] == [
        ("schema_violation", "KeyError while applying: 'something no input should cause'", 2)]
    assert pending(ledger, "p1") == 1_500
    assert replay_journal(ledger.store, in_memory=True, compare_state=True).state_differences == []
