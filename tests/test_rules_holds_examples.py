"""Worked examples where SPEC §16 meets §14 and §15 (the integration points of
issues 20 and 21): a held receipt-clock order whose receipt instant moves while
held, review over every commission group, a rejection of a two-group order
(unsettled and settled), late clicks and refunds after it."""

from __future__ import annotations

from ledger.books import Books
from ledger.config import Rules, rules_from_mapping
from projections.audit import audit_replay
from tests.helpers import click, feed, new_ledger, order, refund, share

# P1 shares product k1; P0 shares s0 and P2 re-shares it as s2, limited to
# product k2 (P2's upline is P0). Buyer B clicks both; O has a k1 line of
# 10,000 and a k2 line of 20,000: two groups under scope = product.
#   group P1: C 10,000, L1 1,500, no L2;  group P2: C 20,000, L1 3,000, L2 (P0) 1,000.
SHARES = [
    share("s1", "P1", "2026-01-01T00:00:00Z", product_id="k1"),
    share("s0", "P0", "2026-01-01T00:00:00Z"),
    share("s2", "P2", "2026-01-01T00:00:01Z", parent="s0", product_id="k2"),
]
LINES = [{"sku": "k1", "quantity": 1, "unit_price": 10_000}, {"sku": "k2", "quantity": 1, "unit_price": 20_000}]


def two_groups(buyer: str = "B", order_id: str = "o1") -> list[dict]:
    return SHARES + [click(buyer, "s1", "2026-01-01T00:10:00Z"), click(buyer, "s2", "2026-01-01T00:20:00Z"),
                     order(order_id, buyer, "2026-01-01T01:00:00Z", LINES)]


def books_with(events: list[dict], rules: Rules) -> Books:
    ledger = new_ledger(rules)
    feed(ledger, events)
    return Books(ledger.store.store, rules)


def rows(books: Books) -> dict:
    return {k: v for k, v in sorted(books.balances().items()) if any(v)}


def received(at: str, event_id: str, stage: str = "received") -> dict:
    return {"type": "fulfillment", "event_id": event_id, "occurred_at": at, "order_id": "o1", "buyer_id": "B",
            "stage": stage}


RECEIPT = {"attribution": {"scope": "product"}, "settlement": {"clock": "receipt"}}


def test_a_receipt_arriving_while_held_dates_the_order_after_release():
    """Shipped 01-02 (auto-received 01-12, due 01-19); received 01-05 arrives
    while O is held (due 01-12): after the release O is due 01-12, not 01-19."""
    rules = rules_from_mapping(RECEIPT)
    ledger = new_ledger(rules)
    feed(ledger, two_groups() + [received("2026-01-02T00:00:00Z", "f-ship", "shipped")])
    books = Books(ledger.store.store, rules)
    books.hold("order", "o1", "doubt", "ann")
    feed(ledger, [received("2026-01-05T00:00:00Z", "f-recv")])
    assert books.settle("2026-01-12T00:00:00Z")[0].order_ids == []  # held
    books.release("order", "o1", "checked", "ann")
    assert [i for r in books.settle("2026-01-11T23:59:59Z") for i in r.order_ids] == []  # not due yet
    assert [i for r in books.settle("2026-01-12T00:00:00Z") for i in r.order_ids] == ["o1"]
    assert rows(books) == {("P0", "CNY"): [0, 1000, 0], ("P1", "CNY"): [0, 1500, 0], ("P2", "CNY"): [0, 3000, 0]}
    assert audit_replay(books.store).ok


def test_review_reasons_over_every_group():
    """The buyer P0 is only group P2's L2 (self_referral); Σ over both groups
    of L1 + L2 is 5,500 (amount_over 5,499: over; each group alone is not)."""
    rules = rules_from_mapping({"attribution": {"scope": "product", "self_referral": "review"},
                                "review": {"amount_over": 5499}})
    books = books_with(two_groups("P0"), rules)
    assert books.settle("2026-02-01T00:00:00Z")[0].review == [("o1", ["self_referral", "amount_over"])]
    rules = rules_from_mapping({"attribution": {"scope": "product"}, "review": {"amount_over": 5500}})
    books = books_with(two_groups("P0"), rules)
    assert books.settle("2026-02-01T00:00:00Z")[0].review == []  # 5,500 is not over 5,500
    # deny: P0 buys, so group P2 pays no L2: Σ 4,500, not over 4,500
    rules = rules_from_mapping({"attribution": {"scope": "product", "self_referral": "deny"},
                                "review": {"amount_over": 4500}})
    books = books_with(two_groups("P0"), rules)
    assert books.settle("2026-02-01T00:00:00Z")[0].review == []
    assert rows(books) == {("P1", "CNY"): [0, 1500, 0], ("P2", "CNY"): [0, 3000, 0]}


def test_rejecting_an_unsettled_two_group_order_zeroes_both_groups_for_good():
    rules = rules_from_mapping({"attribution": {"scope": "product"}})
    ledger = new_ledger(rules)
    feed(ledger, two_groups())
    books = Books(ledger.store.store, rules)
    assert rows(books) == {("P0", "CNY"): [1000, 0, 0], ("P1", "CNY"): [1500, 0, 0], ("P2", "CNY"): [3000, 0, 0]}
    books.reject("o1", "fraud", "ann")
    assert rows(books) == {}
    # a later click on a k1 share by P3 would take line k1 (last click); a refund counts toward R
    feed(ledger, [share("s3", "P3", "2026-01-01T00:00:00Z", product_id="k1"),
                  click("B", "s3", "2026-01-01T00:30:00Z"), refund("r1", "o1", "B", 15_000)])
    assert rows(books) == {}
    assert [i for r in books.settle("2026-02-01T00:00:00Z") for i in r.order_ids] == ["o1"]  # settles at 0
    assert rows(books) == {}
    assert audit_replay(books.store).ok


def test_rejecting_a_settled_paid_two_group_order_claws_back_every_group():
    rules = rules_from_mapping({"attribution": {"scope": "product"}})
    ledger = new_ledger(rules)
    feed(ledger, two_groups() + [refund("r1", "o1", "B", 3_000)])  # R 3,000 of C 30,000: each floor × 9/10
    books = Books(ledger.store.store, rules)
    books.settle("2026-02-01T00:00:00Z")
    books.payout("2026-02-01T00:00:00Z")
    assert rows(books) == {("P0", "CNY"): [0, 0, 900], ("P1", "CNY"): [0, 0, 1350], ("P2", "CNY"): [0, 0, 2700]}
    books.reject("o1", "fraud", "ann")
    assert rows(books) == {("P0", "CNY"): [0, -900, 900], ("P1", "CNY"): [0, -1350, 1350],
                           ("P2", "CNY"): [0, -2700, 2700]}
    feed(ledger, [refund("r2", "o1", "B", 27_000)])  # counts toward R, claws back nothing more
    assert rows(books) == {("P0", "CNY"): [0, -900, 900], ("P1", "CNY"): [0, -1350, 1350],
                           ("P2", "CNY"): [0, -2700, 2700]}
    assert audit_replay(books.store).ok
