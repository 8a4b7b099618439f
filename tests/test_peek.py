"""schemas.peek: the publisher's routing key and the shares' event-time key,
read from raw bytes of any quality (SPEC §1 routing, §9 bad input never raises)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.peek import event_time_key, route_key

SHARE = b'{"type":"share","event_id":"e1","occurred_at":"2026-03-01T12:00:00Z","share_id":"s1","promoter_id":"P1"}'
CLICK = b'{"type":"click","event_id":"e2","occurred_at":"2026-03-01T12:00:00Z","buyer_id":"B1","share_id":"s1"}'
T0 = 1_772_366_400_000_000  # 2026-03-01T12:00:00Z in µs


# ------------------------------------------------------------------ route_key
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SHARE, (True, b"P1")),
        (CLICK, (False, b"B1")),
        (b'{"type":"order","buyer_id":"B2","order_id":"o1"}', (False, b"B2")),
        (b'{"type":"refund","buyer_id":"B3"}', (False, b"B3")),
        # Routing reads the type only; validity is the decoder's business.
        (b'{"type":"share"}', (True, None)),
        (b'{"type":"share","promoter_id":7}', (True, None)),
        (b'{"type":"share","promoter_id":null,"buyer_id":"B1"}', (True, None)),
        (b'{"type":"click","promoter_id":"P1"}', (False, None)),
        (b'{"buyer_id":"B4"}', (False, b"B4")),  # no type: an event, keyed
        (b'{"type":"SHARE","buyer_id":"B5"}', (False, b"B5")),
        (b'{"type":"click","buyer_id":["B1"]}', (False, None)),
        ('{"type":"share","promoter_id":"推客"}'.encode(), (True, "推客".encode())),
        (b'{"type":"click","buyer_id":"\\u00e9"}', (False, "é".encode())),
        (b'{"type":"click","buyer_id":"B1","buyer_id":"B2"}', (False, b"B2")),  # last duplicate key wins
    ],
)
def test_route_key_of_events_and_shares(raw, expected):
    assert route_key(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"type":"share","promoter_id":"P1"',  # truncated
        b'{"type":"share","promoter_id":"P1"} trailing',
        b'[{"type":"share","promoter_id":"P1"}]',  # not an object
        b'"share"',
        b"42",
        b"null",
        b'{"type":"share","promoter_id":"P\xff"}',  # invalid UTF-8
        b'{"type":"click","buyer_id":"\\ud800"}',  # escaped lone surrogate
        b"\xef\xbb\xbf" + CLICK,  # a byte order mark is not JSON
    ],
)
def test_route_key_of_garbage_is_an_unkeyed_event(raw):
    assert route_key(raw) == (False, None)


# ------------------------------------------------------------ event_time_key
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SHARE, (T0, "e1")),
        (CLICK, (T0, "e2")),
        (b'{"event_id":"x","occurred_at":"2026-03-01T20:00:00+08:00"}', (T0, "x")),  # the instant, not the text
        (b'{"event_id":"x","occurred_at":"2026-03-01t12:00:00.000001z"}', (T0 + 1, "x")),
        (b'{"event_id":"","occurred_at":"2026-03-01T12:00:00Z"}', (T0, "")),  # any string: not validated here
    ],
)
def test_event_time_key_is_instant_and_event_id(raw, expected):
    assert event_time_key(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id":"x","occurred_at":"2026-03-01 12:00:00Z"}',  # other separator
        b'{"event_id":"x","occurred_at":"2026-03-01T12:00:00"}',  # no offset
        b'{"event_id":"x","occurred_at":"2026-02-30T12:00:00Z"}',  # no such date
        b'{"event_id":"x","occurred_at":"2026-03-01T12:00:60Z"}',  # leap second
        b'{"event_id":"x","occurred_at":1772366400}',  # not a string
        b'{"event_id":"x","occurred_at":null}',
        b'{"event_id":"x"}',
        b'{"occurred_at":"2026-03-01T12:00:00Z"}',  # no event_id
        b'{"event_id":7,"occurred_at":"2026-03-01T12:00:00Z"}',
        b'[{"event_id":"x","occurred_at":"2026-03-01T12:00:00Z"}]',  # not an object
        b'"2026-03-01T12:00:00Z"',
        b"",
        b"{",
        b'{"event_id":"x\xff","occurred_at":"2026-03-01T12:00:00Z"}',  # invalid UTF-8
    ],
)
def test_event_time_key_of_unreadable_events_is_none(raw):
    assert event_time_key(raw) is None


@given(st.binary(max_size=200))
def test_peeking_never_raises(raw):
    is_share, key = route_key(raw)
    assert isinstance(is_share, bool) and (key is None or isinstance(key, bytes))
    assert event_time_key(raw) is None or isinstance(event_time_key(raw)[0], int)


def test_numbers_past_a_double_do_not_hide_the_routing_key():
    """orjson refuses 1e400 where the decoder accepts it (in a field it ignores):
    the event still routes by its promoter or buyer (ingest --workers, publish)."""
    share = b'{"type":"share","event_id":"e1","occurred_at":"2026-01-01T00:00:00Z","share_id":"s1","promoter_id":"p1","target":"t","x":1e400}'
    click = b'{"type":"click","event_id":"e2","occurred_at":"2026-01-01T00:00:00Z","share_id":"s1","buyer_id":"b4","x":' + b"9" * 400 + b"}"
    assert route_key(share) == (True, b"p1")
    assert route_key(click) == (False, b"b4")
    assert event_time_key(share) == (1_767_225_600_000_000, "e1")
