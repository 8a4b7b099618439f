"""Statements and the merchant statement carry each order entry's commission
group (its level-1 promoter, SPEC §14). Issue 20. Worked examples, exact values.

Default rates: level 1 1500 bp, level 2 500 bp, order cap 3000 bp.
"""

from __future__ import annotations

import json

import msgspec

from ledger.books import Books
from ledger.config import Rules
from ledger.records import Ingested, NetworkRebuilt, Settled, Transfer, encode_record
from cli.reads import STATEMENT_COLUMNS, render_merchant_statement
from projections import readmodels
from projections.render import render
from tests.helpers import click, feed, new_ledger, order, refund, share


def t(day: int, hour: int = 0) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00Z"


TEA_CUP = [{"sku": "tea-500g", "product_id": "tea", "quantity": 1, "unit_price": 10_000},
           {"sku": "cup", "quantity": 1, "unit_price": 5_000}]


def entries(ledger, promoter: str) -> list[tuple]:
    """(kind, amount, order, level, group) of a promoter's statement."""
    return [(e.kind, e.amount_minor, e.order_id, e.level, e.group)
            for e in readmodels.statement(ledger.store.store, promoter).items]


def merchant_orders(ledger, merchant: str = "m1") -> list[tuple]:
    view = readmodels.merchant_statement(ledger.store.store, merchant)
    return [(o["order_id"], o["net_minor"], o["groups"]) for o in view["orders"]]


# p1 shows tea of m1 and was re-shared from q's share (q is p1's upline); p3's share names nothing.
PRODUCT_EVENTS = [share("sq", "q", t(1)), share("s1", "p1", t(1), parent="sq", merchant_id="m1", product_id="tea"),
                  share("s3", "p3", t(1)), click("b1", "s3", t(1, 1)), click("b1", "s1", t(1, 2)),
                  order("o1", "b1", t(1, 4), TEA_CUP)]


def test_product_two_groups_one_with_an_upline():
    # tea → p1's group: L1 1500, L2 (q) 500; cup → p3's group: L1 750, no upline
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, PRODUCT_EVENTS)
    assert entries(ledger, "p1") == [("accrual", 1500, "o1", 1, "p1")]
    assert entries(ledger, "q") == [("accrual", 500, "o1", 2, "p1")]
    assert entries(ledger, "p3") == [("accrual", 750, "o1", 1, "p3")]
    assert merchant_orders(ledger) == [("o1", 2750, ["p1", "p3"])]
    # a refund of 1: every group and level its own floor; q's reversal stays in p1's group
    feed(ledger, [refund("r1", "o1", "b1", 1)])
    assert entries(ledger, "q")[1:] == [("reversal", 1, "o1", 2, "p1")]  # 500 → floor(500 × 14999 / 15000) = 499
    ledger.settle(t(25))
    assert entries(ledger, "q")[2:] == [("settlement", 499, "o1", 2, "p1")]
    assert entries(ledger, "p3")[1:] == [("reversal", 1, "o1", 1, "p3"), ("settlement", 749, "o1", 1, "p3")]
    # the CLI's formats: the statement's group column (JSON, CSV), the merchant statement's groups
    items = readmodels.statement(ledger.store.store, "q").items
    assert [row["group"] for row in json.loads(render(items, STATEMENT_COLUMNS, "json"))] == ["p1", "p1", "p1"]
    csv_rows = render(items, STATEMENT_COLUMNS, "csv").splitlines()
    assert csv_rows[0].endswith(",group") and csv_rows[1].endswith(",p1")
    view = readmodels.merchant_statement(ledger.store.store, "m1")
    assert json.loads(render_merchant_statement(view, "json"))["orders"][0]["groups"] == ["p1", "p3"]
    assert render_merchant_statement(view, "csv").splitlines()[1].endswith(',"p1,p3"')


def test_product_one_upline_of_two_groups_is_posted_per_group():
    # p1 and p3 both re-shared q's share: q is level 2 of both groups (tea 500, cup 250), posted apart
    events = [share("sq", "q", t(1)), share("s1", "p1", t(1), parent="sq", merchant_id="m1", product_id="tea"),
              share("s3", "p3", t(1), parent="sq"), click("b1", "s3", t(1, 1)), click("b1", "s1", t(1, 2)),
              order("o1", "b1", t(1, 4), TEA_CUP)]
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, events)
    assert entries(ledger, "q") == [("accrual", 500, "o1", 2, "p1"), ("accrual", 250, "o1", 2, "p3")]
    # R = 1: q's floors are per group (499 + 249 = 748), each reversal in its group
    feed(ledger, [refund("r1", "o1", "b1", 1)])
    assert entries(ledger, "q")[2:] == [("reversal", 1, "o1", 2, "p1"), ("reversal", 1, "o1", 2, "p3")]
    ledger.settle(t(25))
    assert entries(ledger, "q")[4:] == [("settlement", 499, "o1", 2, "p1"), ("settlement", 249, "o1", 2, "p3")]
    # a refund after settlement claws back per group: R = 7501 → 500 × 7499 // 15000 = 249, 250 × … = 124
    feed(ledger, [refund("r2", "o1", "b1", 7500)])
    assert entries(ledger, "q")[6:] == [("clawback", 250, "o1", 2, "p1"), ("clawback", 125, "o1", 2, "p3")]
    assert merchant_orders(ledger) == [("o1", 749 + 374 + 249 + 124, ["p1", "p3"])]
    # the groups are in the records (level-2 transfers only), and the balances are those of SPEC §14
    books = Books(ledger.store.store)
    assert {(p, c): tuple(v) for (p, c), v in books.balances().items() if p == "q"} == {("q", "CNY"): (0, 373, 0)}


def test_product_a_late_share_binding_an_upline_names_its_group():
    # p1's share names a parent that arrives late: q's level 2 is posted by the late share's record
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, [share("s1", "p1", t(1, 1), parent="sq", product_id="tea"), share("s3", "p3", t(1)),
                  click("b1", "s3", t(1, 1)), click("b1", "s1", t(1, 2)), order("o1", "b1", t(1, 4), TEA_CUP)])
    assert entries(ledger, "q") == []
    feed(ledger, [share("sq", "q", t(1))])
    assert entries(ledger, "q") == [("accrual", 500, "o1", 2, "p1")]
    assert merchant_orders(ledger) == [("o1", 2750, ["p1", "p3"])]


def test_any_the_group_is_the_orders_level1_promoter():
    # p1 (upline q) wins; a later click for p2 (upline q2) re-attributes the order
    events = [share("sq", "q", t(1)), share("s1", "p1", t(1), parent="sq"), share("sq2", "q2", t(1)),
              share("s2", "p2", t(1), parent="sq2"), click("b1", "s1", t(1, 1)), order("o1", "b1", t(1, 4), amount=10_000)]
    ledger = new_ledger(Rules())
    feed(ledger, events)
    assert entries(ledger, "p1") == [("accrual", 1500, "o1", 1, "p1")]
    assert entries(ledger, "q") == [("accrual", 500, "o1", 2, "p1")]
    assert merchant_orders(ledger) == [("o1", 2000, ["p1"])]
    feed(ledger, [click("b1", "s2", t(1, 2))])
    # q's level 2 is taken back from p1's group, q2's is posted in p2's
    assert entries(ledger, "q")[1:] == [("reversal", 500, "o1", 2, "p1")]
    assert entries(ledger, "q2") == [("accrual", 500, "o1", 2, "p2")]
    assert entries(ledger, "p2") == [("accrual", 1500, "o1", 1, "p2")]
    assert merchant_orders(ledger) == [("o1", 2000, ["p2"])]
    ledger.settle(t(17))
    assert entries(ledger, "q2")[1:] == [("settlement", 500, "o1", 2, "p2")]
    # entries of no order have no group
    Books(ledger.store.store).adjust("p2", "CNY", 30, "bonus", "ops")
    assert entries(ledger, "p2")[-1] == ("adjustment", 30, None, None, None)
    # a level-2 transfer under "any" is stored as before: no groups in the record
    for _, _, record in Books(ledger.store.store).records():
        if isinstance(record, (Ingested, Settled, NetworkRebuilt)):
            assert not record.groups


def test_records_without_groups_keep_their_bytes():
    """A record that posts no level-2 transfer per group encodes as it did
    before groups were recorded (no ``groups`` key; a Transfer is 10 items)."""
    transfer = Transfer("accrual", "p1", "CNY", 1500, "expense", "pending", "o1", 1, "m1", 1)
    record = NetworkRebuilt([transfer])
    assert b"groups" not in encode_record(record)
    assert len(msgspec.msgpack.decode(msgspec.msgpack.encode(transfer))) == 10
