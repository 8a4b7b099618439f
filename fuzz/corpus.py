"""Deterministic inputs for pinning ``decode_event`` to a reference (issue 13).

``decode_corpus()`` yields the same few thousand byte strings on every run:
the synthetic stream, and valid events with one or two things changed — unknown
fields holding any JSON value (floats, booleans, huge integers, nested values,
escapes, hostile text), duplicate member names, reordered and re-spaced
members, escaped names and values, bad field values, bad timestamps,
truncation, invalid UTF-8, trailing data and deep nesting.
``timestamp_corpus()`` does the same for ``occurred_at`` texts.

``outcome_bytes`` turns one result into bytes that hold everything a caller
can see: the reason and detail of a rejection; the event, its instant and its
content fingerprint for an accepted event. tests/test_schemas.py pins the
digest of all of them, computed with the decoder of main before issue 13, so
the fast path, the lazy fingerprint and the timestamp fast path must give the
same bytes for every input. Only the standard library and devkit here: nothing
that the code under test could change.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Callable, Iterator

from devkit.synthetic import generate

AT = "2026-01-15T10:00:00+08:00"
BASES: list[dict[str, Any]] = [
    {"type": "share", "event_id": "e-s1", "occurred_at": AT, "share_id": "s1", "promoter_id": "p1"},
    {"type": "share", "event_id": "e-s2", "occurred_at": AT, "share_id": "s2", "promoter_id": "推客",
     "parent_share_id": "s1", "target": "https://shop.example/分享?x=1"},
    {"type": "click", "event_id": "e-c1", "occurred_at": AT, "buyer_id": "b1", "share_id": "s1"},
    {"type": "order", "event_id": "e-o1", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1", "merchant_id": "m1",
     "lines": [{"sku": "sku1", "quantity": 2, "unit_price": 500}]},
    {"type": "order", "event_id": "e-o2", "occurred_at": "2026-01-15T02:00:00.123Z", "order_id": "o2", "buyer_id": "b1",
     "merchant_id": "m1", "currency": "USD", "shipping": 300,
     "lines": [{"sku": "a", "quantity": 1, "unit_price": 1000, "discount": 100, "level1_rate_bp": 2000},
               {"sku": "b", "quantity": 3, "unit_price": 7, "level2_rate_bp": 0}]},
    {"type": "refund", "event_id": "e-r1", "occurred_at": AT, "refund_id": "r1", "order_id": "o1", "buyer_id": "b1",
     "amount": 100},
]
# SPEC §14/§15 (issue 20): mutated after the bases above, with their own
# generator, so that the inputs drawn from BASES stay those of before.
BASES_14_15: list[dict[str, Any]] = [
    {"type": "share", "event_id": "e-s3", "occurred_at": AT, "share_id": "s3", "promoter_id": "p3",
     "merchant_id": "m1", "product_id": "tea"},
    {"type": "share", "event_id": "e-s4", "occurred_at": AT, "share_id": "s4", "promoter_id": "p4",
     "merchant_id": None, "product_id": "茶"},
    {"type": "order", "event_id": "e-o3", "occurred_at": AT, "order_id": "o3", "buyer_id": "b1", "merchant_id": "m1",
     "lines": [{"sku": "sku1", "quantity": 2, "unit_price": 500, "product_id": "tea"},
               {"sku": "sku2", "quantity": 1, "unit_price": 90, "product_id": None}]},
    {"type": "fulfillment", "event_id": "e-f1", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1", "stage": "shipped"},
    {"type": "fulfillment", "event_id": "e-f2", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1", "stage": "received"},
]

# JSON texts of values: each is placed as an unknown field, a known field or a duplicate.
VALUES: list[bytes] = [
    b"1", b"1.0", b"true", b"false", b"null", b"0", b"-0", b"1.5", b"-2.25e-3", b"1e400", b"-1e400", b"0.1e-400",
    b"9007199254740991", b"9007199254740992", b"18446744073709551616", b"18446744073709551616.0",
    b"9" * 4300, b"9" * 4301, b"-" + b"9" * 5000, b"1" + b"0" * 400 + b".5", b"[1, 1.0, true]", b"[1e400, 2e400]",
    b'{"a": {"b": [1, {"c": false}]}, "z": 1.25}', b'{"b": 1, "a": 2, "a": 3}', b'[{"x": 9999999999999999999999}]',
    b'""', b'"x"', b'"\\u0041\\u00e9\\u4e2d"', b'"\\ud83d\\ude00"', b'"\\\\ud800"', b'"\\u0000\\u001f"',
    b'"\\"\\\\\\/\\b\\f\\n\\r\\t"', "\"推客😀\"".encode(), b'"\x7f\xc2\x80\xef\xbf\xbf"', b'"' + b"x" * 129 + b'"',
    b"[" * 126 + b"]" * 126, b"[" * 127 + b"]" * 127, b"[" * 128 + b"]" * 128, b'"[[[[{{{{"',
    # not I-JSON: each makes the event malformed_json wherever it is
    b'"\\ud800"', b'"\\udc00x"', b'"\\ude00\\ud83d"', b'"\\ud83d\\u0041"', b'"a\x01b"', b'"\x00"', b'"\t"',
    b'"\xff"', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'"\xf4\x90\x80\x80"', b"NaN", b"Infinity", b"-Infinity", b"nan",
    b"01", b"1.", b".5", b"+1", b"1e", b"tru", b"[1,]", b'{"a":1,}', b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 200 + b"1" + b"}" * 200,
]
NAMES = [b'"x_extra"', b'"type"', b'"event_id"', b'"occurred_at"', b'"schema_version"', b'"lines"', b'"buyer_id"',
         b'"amount"', b'"currency"', b'"target"', b'"typ\\u0065"', b'"\\u0074ype"', b'"\\ud800"', b'"a\x01"',
         b'"\xff"', "\"名\"".encode(), b'"sku"', b'"quantity"']
TIMES = ["2026-01-15T02:00:00Z", "2026-01-15t02:00:00z", "2026-01-15T10:00:00.5+08:00", "2026-01-15T02:00:00.123456Z",
         "2024-02-29T23:59:59.999999-05:30", "2026-01-15 02:00:00Z", "2026-01-15T02:00:00", "2025-02-29T00:00:00Z",
         "2026-01-15T02:00:60Z", "2026-01-15T02:00:00.1234567Z", "2026-01-15T02:00:00+24:00", "２０２６-01-15T02:00:00Z",
         "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "", "yesterday"]
TRAILING = [b" x", b"{}", b"\x00", b"]", b",", b" \n\t", b"\xff", b"//", b" null", b"\r\n"]


def _member(name: bytes, value: bytes) -> bytes:
    return name + b":" + value


def _members(event: dict[str, Any], rng: random.Random) -> list[tuple[bytes, bytes]]:
    ensure_ascii = rng.random() < 0.5
    return [(json.dumps(k).encode(), json.dumps(v, ensure_ascii=ensure_ascii).encode()) for k, v in event.items()]


def _join(members: list[tuple[bytes, bytes]], rng: random.Random) -> bytes:
    sep = rng.choice([b",", b", ", b" ,\n "])
    return b"{" + sep.join(_member(k, v) for k, v in members) + b"}"


def _mutate(event: dict[str, Any], rng: random.Random) -> bytes:
    members = _members(event, rng)
    kind = rng.randrange(12)
    if kind == 0:  # an unknown field with any value
        members.insert(rng.randrange(len(members) + 1), (rng.choice([b'"x_extra"', "\"名\"".encode()]), rng.choice(VALUES)))
    elif kind == 1:  # a known field's value replaced
        i = rng.randrange(len(members))
        members[i] = (members[i][0], rng.choice(VALUES))
    elif kind == 2:  # a duplicate name, before or after
        i = rng.randrange(len(members))
        members.insert(i + rng.randrange(2), (members[i][0], rng.choice(VALUES + [members[rng.randrange(len(members))][1]])))
    elif kind == 3:  # any name with any value
        members.insert(rng.randrange(len(members) + 1), (rng.choice(NAMES), rng.choice(VALUES)))
    elif kind == 4:  # a member dropped
        del members[rng.randrange(len(members))]
    elif kind == 5:  # another timestamp
        members = [(k, json.dumps(rng.choice(TIMES)).encode() if k == b'"occurred_at"' else v) for k, v in members]
    elif kind == 6:  # reordered
        rng.shuffle(members)
    elif kind == 7:  # an order line with an extra, duplicate or bad member
        if event["type"] == "order":
            line = members[[k for k, _ in members].index(b'"lines"')]
            extra = _member(rng.choice(NAMES), rng.choice(VALUES))
            members[members.index(line)] = (line[0], line[1][:-2] + b", " + extra + b"}]")
    elif kind == 8:  # a second type tag
        members.insert(rng.randrange(len(members) + 1), (b'"type"', json.dumps(rng.choice(
            ["share", "click", "order", "refund", "gift", "Share"] if event not in BASES_14_15 else
            ["share", "click", "order", "refund", "gift", "fulfillment", "Fulfillment"])).encode()))
    elif kind == 9:  # schema_version
        members.append((b'"schema_version"', rng.choice([b"1", b"2", b"0", b"-1", b"1.0", b'"1"', b"true", b"null",
                                                         b"9" * 5000, b"1e400"])))
    raw = _join(members, rng)
    if kind == 10:  # trailing data or a cut
        raw = raw + rng.choice(TRAILING) if rng.random() < 0.5 else raw[: rng.randrange(len(raw))]
    elif kind == 11:  # a byte inserted
        at = rng.randrange(len(raw) + 1)
        raw = raw[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\x00", b" ", b"\\"]) + raw[at:]
    return raw


def decode_corpus(seed: int = 13) -> Iterator[bytes]:
    """About 6000 inputs, the same every run."""
    rng = random.Random(seed)
    yield from generate(2000, seed=seed)
    for _ in range(4000):
        yield _mutate(rng.choice(BASES), rng)
    for value in VALUES:  # each value once in an unknown field of each base, and as the whole input
        yield value
        for base in BASES:
            yield json.dumps(base).encode()[:-1] + b', "x": ' + value + b"}"
    rng = random.Random(seed + 20)  # SPEC §14/§15 (issue 20)
    for _ in range(1500):
        yield _mutate(rng.choice(BASES_14_15), rng)
    for base in BASES_14_15:
        for name in ("merchant_id", "product_id", "stage", "order_id"):
            for value in (b'""', b'"' + b"x" * 128 + b'"', b'"' + b"x" * 129 + b'"', b"1", b"null", b'"shipped"',
                          b'"Shipped"', b"[]"):
                yield json.dumps(base).encode()[:-1] + b', "' + name.encode() + b'": ' + value + b"}"


def timestamp_corpus(seed: int = 29, count: int = 3000) -> Iterator[str]:
    """Valid RFC 3339 texts of every shape (fractions of 0–6 digits, Z/z and
    offsets, T/t, leap days, the first and last instants) and each mutated once."""
    rng = random.Random(seed)
    marks = "0123456789-:+.TtZz _\n/５٣"
    for _ in range(count):
        year = rng.choice([1, 4, 100, 400, 1900, 1970, 2000, 2024, 2025, 2026, 9999, rng.randrange(1, 10_000)])
        month = rng.randrange(1, 13)
        day = rng.randrange(1, 32 if rng.random() < 0.2 else 29)  # sometimes past the month's end
        text = (f"{year:04d}-{month:02d}-{day:02d}{rng.choice('Tt')}{rng.randrange(25 if rng.random() < 0.1 else 24):02d}"
                f":{rng.randrange(61 if rng.random() < 0.1 else 60):02d}:{rng.randrange(61 if rng.random() < 0.1 else 60):02d}")
        digits = rng.randrange(8)
        if digits:
            text += "." + "".join(rng.choice("0123456789") for _ in range(digits))
        if rng.random() < 0.4:
            text += rng.choice("Zz")
        elif rng.random() < 0.95:
            text += f"{rng.choice('+-')}{rng.randrange(25):02d}:{rng.randrange(61):02d}"
        yield text
        chars = list(text)
        at = rng.randrange(len(chars))
        action = rng.randrange(3)
        if action == 0:
            chars[at] = rng.choice(marks)
        elif action == 1:
            del chars[at]
        else:
            chars.insert(at, rng.choice(marks))
        yield "".join(chars)


def outcome_bytes(result: Any) -> bytes:
    """What a caller sees of one ``decode_event`` result, as bytes: works with
    the ``Decoded`` of before issue 13 (``fingerprint`` an attribute) and after
    (a method)."""
    import msgspec

    if hasattr(result, "reason"):
        return b"R" + result.reason.encode() + b"\x00" + result.detail.encode("utf-8", "surrogatepass")
    fingerprint = result.fingerprint
    if callable(fingerprint):
        fingerprint = fingerprint()
    return b"D" + msgspec.json.encode(_without_absent_14(result.event)) + b"\x00" + str(result.occurred_us).encode() + b"\x00" + fingerprint


def _without_absent_14(event: Any) -> Any:
    """The event as a dict, without SPEC §14's optional ids when absent: an
    event of before issue 20 gives the bytes it gave then."""
    import msgspec

    value = msgspec.to_builtins(event)
    if value.get("type") == "share":
        for key in ("merchant_id", "product_id"):
            if value.get(key, 0) is None:
                del value[key]
    for line in value.get("lines", []) if value.get("type") == "order" else []:
        if line.get("product_id", 0) is None:
            del line["product_id"]
    return value


def corpus_digest(decode: Callable[[bytes], Any], inputs: list[bytes]) -> str:
    """One digest of the outcomes of ``decode`` over ``inputs``."""
    digest = hashlib.blake2b(digest_size=16)
    for raw in inputs:
        out = outcome_bytes(decode(raw))
        digest.update(len(out).to_bytes(8, "big") + out)
    return digest.hexdigest()
