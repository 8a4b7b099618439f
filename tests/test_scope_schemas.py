"""SPEC §1, §9 for the fields and the event type of §14/§15 (issue 20):
shares' merchant_id/product_id, lines' product_id, the fulfillment event, and
the first reason that applies, on the fast and the careful path alike."""

from __future__ import annotations

import json

import pytest

from fuzz.properties import check_decode
from schemas import Decoded, Rejected, decode_event, reasons
from schemas.events import Fulfillment, Order, Share, line_product
from schemas.peek import route_key

AT = "2026-01-15T10:00:00+08:00"
SHARE = {"type": "share", "event_id": "e-s1", "occurred_at": AT, "share_id": "s1", "promoter_id": "p1"}
ORDER = {"type": "order", "event_id": "e-o1", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1",
         "merchant_id": "m1", "lines": [{"sku": "tea-500g", "quantity": 1, "unit_price": 100}]}
FULFILLMENT = {"type": "fulfillment", "event_id": "e-f1", "occurred_at": AT, "order_id": "o1", "buyer_id": "b1",
               "stage": "shipped"}


def ev(base: dict, **changes) -> bytes:
    value = dict(base)
    for key, v in changes.items():
        if v is ...:
            value.pop(key, None)
        else:
            value[key] = v
    return json.dumps(value, ensure_ascii=False).encode()


def reason(raw: bytes) -> str:
    result = check_decode(raw)
    return "ok" if isinstance(result, Decoded) else result.reason


def test_share_scope_ids_are_optional_ids_and_null_is_absent():
    result = check_decode(ev(SHARE, merchant_id="m1", product_id="茶"))
    assert isinstance(result, Decoded) and isinstance(result.event, Share)
    assert (result.event.merchant_id, result.event.product_id) == ("m1", "茶")
    result = check_decode(ev(SHARE, merchant_id=None, product_id=None))
    assert (result.event.merchant_id, result.event.product_id) == (None, None)  # type: ignore[union-attr]
    assert reason(ev(SHARE, merchant_id="x" * 128)) == "ok"
    for bad in ("", "x" * 129, 1, [], True):
        assert reason(ev(SHARE, merchant_id=bad)) == reasons.SCHEMA_VIOLATION
        assert reason(ev(SHARE, product_id=bad)) == reasons.SCHEMA_VIOLATION


def test_ids_of_another_type_are_ignored_whatever_their_value():
    # product_id is not a field of a click, nor merchant_id of a refund: ignored (SPEC §1)
    click = {"type": "click", "event_id": "e-c1", "occurred_at": AT, "buyer_id": "b1", "share_id": "s1"}
    assert reason(ev(click, product_id="", merchant_id=[1])) == "ok"
    assert reason(ev(FULFILLMENT, product_id=3, amount="x")) == "ok"


def test_a_line_s_product_defaults_to_its_sku():
    result = check_decode(ev(ORDER, lines=[{"sku": "a", "quantity": 1, "unit_price": 1},
                                           {"sku": "b", "quantity": 1, "unit_price": 1, "product_id": "tea"},
                                           {"sku": "c", "quantity": 1, "unit_price": 1, "product_id": None}]))
    assert isinstance(result, Decoded) and isinstance(result.event, Order)
    assert [line_product(line) for line in result.event.lines] == ["a", "tea", "c"]
    for bad in ("", "x" * 129, 7):
        assert reason(ev(ORDER, lines=[{"sku": "a", "quantity": 1, "unit_price": 1, "product_id": bad}])) == reasons.SCHEMA_VIOLATION


def test_fulfillment_decodes_with_either_stage():
    for stage in ("shipped", "received"):
        result = check_decode(ev(FULFILLMENT, stage=stage))
        assert isinstance(result, Decoded) and isinstance(result.event, Fulfillment)
        assert (result.event.order_id, result.event.buyer_id, result.event.stage) == ("o1", "b1", stage)


@pytest.mark.parametrize("changes, expected", [
    ({"stage": "Shipped"}, reasons.SCHEMA_VIOLATION),
    ({"stage": "delivered"}, reasons.SCHEMA_VIOLATION),
    ({"stage": None}, reasons.SCHEMA_VIOLATION),
    ({"stage": ...}, reasons.SCHEMA_VIOLATION),
    ({"buyer_id": ...}, reasons.SCHEMA_VIOLATION),
    ({"order_id": ""}, reasons.SCHEMA_VIOLATION),
    ({"order_id": "x" * 129}, reasons.SCHEMA_VIOLATION),
    # SPEC §9's order: the timestamp before any other field rule, the version before the timestamp
    ({"stage": "lost", "occurred_at": "yesterday"}, reasons.INVALID_TIMESTAMP),
    ({"stage": "lost", "occurred_at": "yesterday", "schema_version": 2}, reasons.UNSUPPORTED_SCHEMA_VERSION),
    ({"stage": "lost", "schema_version": "1"}, reasons.SCHEMA_VIOLATION),
    ({"stage": "lost", "event_id": ""}, reasons.SCHEMA_VIOLATION),
    ({"type": "Fulfillment"}, reasons.UNKNOWN_TYPE),
    ({"schema_version": 1, "stage": "received"}, "ok"),
])
def test_fulfillment_reason_order(changes, expected):
    assert reason(ev(FULFILLMENT, **changes)) == expected


def test_unknown_type_detail_names_the_five_types():
    result = decode_event(ev(FULFILLMENT, type="gift"))
    assert isinstance(result, Rejected)
    assert result.detail == "type 'gift' is not one of share, click, order, refund, fulfillment"


def test_fulfillment_buyer_mismatch_keeps_its_event_id():
    assert reasons.FULFILLMENT_BUYER_MISMATCH == "fulfillment_buyer_mismatch"
    assert reasons.FULFILLMENT_BUYER_MISMATCH in reasons.KEEPS_EVENT_ID


def test_fulfillment_is_routed_by_buyer_to_the_events_topic():
    assert route_key(ev(FULFILLMENT, buyer_id="买家-1")) == (False, "买家-1".encode())
    assert route_key(ev(FULFILLMENT, buyer_id=None)) == (False, None)
