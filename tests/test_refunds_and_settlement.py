"""Worked examples for SPEC §6 (refunds) and §7 (settlement, payouts, adjustments).

Network: B re-shared A's share, so an order via sB pays B (L1, 1500 bp) and A (L2, 500 bp).
Settlement lock 15d, min_payout 100 (defaults).
"""

from projections.balances import books
from projections.explain import explain
from tests.helpers import adjust, balances, click, dead_reasons, feed, new_ledger, order, payout, refund, run, share

O_AT = "2026-01-05T00:00:00Z"
SETTLED_AT = "2026-01-20T00:00:00Z"  # O_AT + 15d
NET = [share("sA", "A", "2026-01-01T00:00:00Z"), share("sB", "B", "2026-01-02T00:00:00Z", parent="sA"),
       share("sX", "X", "2026-01-01T00:00:00Z"), click("u", "sB", "2026-01-04T00:00:00Z")]


def bought(amount=10_000, rules=None, **kw):
    """A ledger with order o1 by buyer u via sB."""
    return run(NET + [order("o1", "u", O_AT, amount=amount, **kw)], rules)


def last_transfers(ledger):
    return [(t.kind, t.promoter_id, t.amount_minor) for t in list(ledger.records())[-1][1].transfers]


def books_total(ledger):
    totals = {}
    for (_, currency), amount in books(r for _, r in ledger.records()).items():
        totals[currency] = totals.get(currency, 0) + amount
    return totals


# ------------------------------------------------------------------ refunds
def test_refund_in_parts_ends_at_exactly_zero():
    ledger = bought()
    feed(ledger, [refund("r1", "o1", "u", 3000)])
    assert balances(ledger) == {("A", "CNY"): (350, 0, 0), ("B", "CNY"): (1050, 0, 0)}
    feed(ledger, [refund("r2", "o1", "u", 3000)])
    assert balances(ledger) == {("A", "CNY"): (200, 0, 0), ("B", "CNY"): (600, 0, 0)}
    feed(ledger, [refund("r3", "o1", "u", 4000)])
    assert balances(ledger) == {("A", "CNY"): (0, 0, 0), ("B", "CNY"): (0, 0, 0)}
    assert dead_reasons(ledger) == []


def test_proportional_reversal_is_floor_of_l_times_remaining_over_c():
    ledger = bought(3333)  # C = 3333, L1 = 499, L2 = 166
    assert balances(ledger) == {("A", "CNY"): (166, 0, 0), ("B", "CNY"): (499, 0, 0)}
    feed(ledger, [refund("r1", "o1", "u", 1000)])  # 499×2333//3333 = 349 (not 499 − 499×1000//3333 = 350)
    assert balances(ledger) == {("A", "CNY"): (116, 0, 0), ("B", "CNY"): (349, 0, 0)}
    assert last_transfers(ledger) == [("reversal", "B", 150), ("reversal", "A", 50)]
    feed(ledger, [refund("r2", "o1", "u", 1000)])  # R = 2000: 499×1333//3333 = 199, 166×1333//3333 = 66
    assert balances(ledger) == {("A", "CNY"): (66, 0, 0), ("B", "CNY"): (199, 0, 0)}
    feed(ledger, [refund("r3", "o1", "u", 1332)])  # R = 3332: floors to 0 at both levels
    assert balances(ledger) == {("A", "CNY"): (0, 0, 0), ("B", "CNY"): (0, 0, 0)}
    view = explain(ledger.engine, ledger.records(), "o1")
    assert view["refunded_total"] == 3332
    assert (view["after_refunds"]["level1"], view["after_refunds"]["level2"]) == (0, 0)


def test_refund_before_its_order_is_parked_then_applied():
    ledger = new_ledger()
    feed(ledger, NET)
    counts = feed(ledger, [refund("r1", "o1", "u", 1000)])
    assert (counts.accepted, counts.parked, counts.dead_letters) == (0, 1, 0)
    assert balances(ledger) == {}
    feed(ledger, [order("o1", "u", O_AT)])
    assert balances(ledger) == {("A", "CNY"): (450, 0, 0), ("B", "CNY"): (1350, 0, 0)}


def test_refund_exceeding_the_order_is_rejected_and_not_applied():
    ledger = bought()
    feed(ledger, [refund("r1", "o1", "u", 6000)])
    counts = feed(ledger, [refund("r2", "o1", "u", 4001)])
    assert (counts.accepted, counts.dead_letters) == (0, 1)
    assert dead_reasons(ledger) == ["refund_exceeds_order"]
    assert balances(ledger) == {("A", "CNY"): (200, 0, 0), ("B", "CNY"): (600, 0, 0)}
    # The rejected refund did not claim r2: a corrected r2 (new event) brings R to exactly C.
    counts = feed(ledger, [refund("r2", "o1", "u", 4000, event_id="e-r2-fixed")])
    assert counts.accepted == 1
    assert balances(ledger) == {("A", "CNY"): (0, 0, 0), ("B", "CNY"): (0, 0, 0)}


def test_refund_by_another_buyer_is_rejected():
    ledger = bought()
    feed(ledger, [refund("r1", "o1", "someone-else", 1000)])
    assert dead_reasons(ledger) == ["refund_buyer_mismatch"]
    assert balances(ledger) == {("A", "CNY"): (500, 0, 0), ("B", "CNY"): (1500, 0, 0)}


# ------------------------------------------------------------------ settlement
def test_settle_boundary_is_order_time_plus_lock_period():
    ledger = bought()
    early = ledger.settle("2026-01-19T23:59:59.999999Z")
    assert (early.order_ids, early.transfers) == ([], [])
    assert balances(ledger) == {("A", "CNY"): (500, 0, 0), ("B", "CNY"): (1500, 0, 0)}
    record = ledger.settle(SETTLED_AT)
    assert record.order_ids == ["o1"]
    assert [(t.kind, t.promoter_id, t.amount_minor) for t in record.transfers] == [("settlement", "B", 1500), ("settlement", "A", 500)]
    assert balances(ledger) == {("A", "CNY"): (0, 500, 0), ("B", "CNY"): (0, 1500, 0)}
    assert ledger.settle("2026-03-01T00:00:00Z").order_ids == []  # settled once only


def test_settle_as_of_is_an_instant():
    ledger = bought()
    assert ledger.settle("2026-01-20T07:59:59+08:00").order_ids == []
    assert ledger.settle("2026-01-20T08:00:00+08:00").order_ids == ["o1"]


def test_refund_after_settlement_claws_back_payable():
    ledger = bought()
    ledger.settle(SETTLED_AT)
    feed(ledger, [refund("r1", "o1", "u", 2000)])
    assert last_transfers(ledger) == [("clawback", "B", 300), ("clawback", "A", 100)]
    assert balances(ledger) == {("A", "CNY"): (0, 400, 0), ("B", "CNY"): (0, 1200, 0)}


def test_clawback_after_payout_goes_negative_and_next_payout_nets_it():
    ledger = bought()
    ledger.settle(SETTLED_AT)
    assert [(t.promoter_id, t.amount_minor) for t in payout(ledger, SETTLED_AT).transfers] == [("A", 500), ("B", 1500)]
    feed(ledger, [refund("r1", "o1", "u", 10_000)])
    assert balances(ledger) == {("A", "CNY"): (0, -500, 500), ("B", "CNY"): (0, -1500, 1500)}
    assert payout(ledger, "2026-01-21T00:00:00Z").transfers == []  # nothing payable
    feed(ledger, [click("u", "sB", "2026-01-25T00:00:00Z"), order("o2", "u", "2026-01-25T01:00:00Z", amount=20_000)])
    ledger.settle("2026-02-10T00:00:00Z")
    assert balances(ledger) == {("A", "CNY"): (0, 500, 500), ("B", "CNY"): (0, 1500, 1500)}
    assert [(t.promoter_id, t.amount_minor) for t in payout(ledger, "2026-02-10T00:00:00Z").transfers] == [("A", 500), ("B", 1500)]
    assert balances(ledger) == {("A", "CNY"): (0, 0, 1000), ("B", "CNY"): (0, 0, 3000)}


def test_min_payout_carries_small_balances_over():
    ledger = bought(400)  # B 60, A 20
    ledger.settle(SETTLED_AT)
    assert payout(ledger, SETTLED_AT).transfers == []
    feed(ledger, [order("o2", "u", "2026-01-05T01:00:00Z", amount=267)])  # B 40 (40.05), A 13 (13.35)
    ledger.settle("2026-01-20T01:00:00Z")
    record = payout(ledger, "2026-01-20T01:00:00Z")
    assert [(t.promoter_id, t.amount_minor) for t in record.transfers] == [("B", 100)]  # exactly min_payout
    assert balances(ledger) == {("A", "CNY"): (0, 33, 0), ("B", "CNY"): (0, 0, 100)}


def test_late_click_reattributes_unsettled_order():
    ledger = run(NET + [click("w", "sX", "2026-01-04T00:00:00Z"), order("o1", "w", O_AT)])
    assert balances(ledger) == {("X", "CNY"): (1500, 0, 0)}
    feed(ledger, [click("w", "sB", "2026-01-04T12:00:00Z")])  # later click, arrives late
    assert last_transfers(ledger) == [("reversal", "X", 1500), ("accrual", "B", 1500), ("accrual", "A", 500)]
    assert balances(ledger) == {("A", "CNY"): (500, 0, 0), ("B", "CNY"): (1500, 0, 0), ("X", "CNY"): (0, 0, 0)}


def test_late_click_after_settlement_changes_nothing():
    ledger = run(NET + [click("w", "sX", "2026-01-04T00:00:00Z"), order("o1", "w", O_AT)])
    ledger.settle(SETTLED_AT)
    feed(ledger, [click("w", "sB", "2026-01-04T12:00:00Z")])
    assert last_transfers(ledger) == []
    assert balances(ledger) == {("X", "CNY"): (0, 1500, 0)}
    assert explain(ledger.engine, ledger.records(), "o1")["winner"]["promoter_id"] == "X"


def test_settling_an_unattributed_order():
    ledger = run(NET + [order("o1", "nobody", O_AT)])
    record = ledger.settle(SETTLED_AT)
    assert (record.order_ids, record.transfers) == (["o1"], [])
    feed(ledger, [click("nobody", "sB", "2026-01-04T12:00:00Z")])  # too late: frozen unattributed
    assert balances(ledger) == {}
    view = explain(ledger.engine, ledger.records(), "o1")
    assert (view["status"], view["winner"]) == ("settled", None)


def test_payout_lists_one_line_per_promoter_and_currency():
    ledger = run(NET + [order("o1", "u", O_AT), order("o2", "u", "2026-01-05T01:00:00Z", amount=10_000),
                        order("o3", "u", "2026-01-05T02:00:00Z", amount=10_000, currency="USD")])
    ledger.settle("2026-01-21T00:00:00Z")
    lines = [(t.promoter_id, t.currency, t.amount_minor) for t in payout(ledger, "2026-01-21T00:00:00Z").transfers]
    assert lines == [("A", "CNY", 1000), ("A", "USD", 500), ("B", "CNY", 3000), ("B", "USD", 1500)]


def test_adjustments_change_payable():
    ledger = bought()
    adjust(ledger, "B", "CNY", 250, "bonus", "alice")
    adjust(ledger, "Z", "CNY", 120, "new promoter bonus", "alice")
    adjust(ledger, "B", "CNY", -100, "correction", "bob")
    assert balances(ledger) == {("A", "CNY"): (500, 0, 0), ("B", "CNY"): (1500, 150, 0), ("Z", "CNY"): (0, 120, 0)}
    lines = [(t.promoter_id, t.amount_minor) for t in payout(ledger, O_AT).transfers]
    assert lines == [("B", 150), ("Z", 120)]


def test_books_balance_per_currency():
    ledger = run(NET + [order("o1", "u", O_AT), order("o2", "u", O_AT, amount=3333, currency="USD"),
                        click("w", "sX", "2026-01-04T00:00:00Z"), order("o3", "w", O_AT)])
    feed(ledger, [click("w", "sB", "2026-01-04T12:00:00Z"), refund("r1", "o2", "u", 1000)])
    ledger.settle(SETTLED_AT)
    payout(ledger, SETTLED_AT)
    feed(ledger, [refund("r2", "o1", "u", 2500)])
    adjust(ledger, "A", "USD", 77, "bonus", "alice")
    adjust(ledger, "X", "CNY", -5, "correction", "alice")
    assert books_total(ledger) == {"CNY": 0, "USD": 0}
    assert balances(ledger) == {
        ("A", "CNY"): (0, -125, 1000), ("A", "USD"): (0, 77, 116),
        ("B", "CNY"): (0, -375, 3000), ("B", "USD"): (0, 0, 349),
        ("X", "CNY"): (0, -5, 0),
    }


def test_statement_entries_carry_event_time_and_chart_steps_follow_it():
    """The promoter chart plots balances as they stood at each event time, not
    in commit order: a late order dated earlier comes first; a late click dated
    before the order moves the order at the order's time, not the click's; an
    adjustment (no event time) counts with the entry committed before it."""
    from ledger.books import Books
    from projections.readmodels import statement
    from projections.statements import balance_steps

    ledger = run([
        share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
        click("b1", "s1", "2026-01-09T00:00:00Z"), order("o1", "b1", "2026-01-10T00:00:00Z", amount=10_000),
        click("b2", "s1", "2026-01-04T00:00:00Z"), order("o2", "b2", "2026-01-05T00:00:00+08:00", amount=4_000),
        click("b1", "s2", "2026-01-09T12:00:00Z", event_id="late-click"),  # o1 now goes to p2
    ])
    books = Books(ledger.store.store)
    books.settle("2026-02-01T00:00:00Z")
    books.adjust("p1", "CNY", 300, "bonus", "fin")
    books.payout("2026-02-02T00:00:00Z")
    entries = statement(books.store, "p1").items
    assert [(e.kind, e.amount_minor, e.event_time, e.cause) for e in entries] == [
        ("accrual", 1_500, "2026-01-10T00:00:00.000000Z", "event e-o1"),
        ("accrual", 600, "2026-01-04T16:00:00.000000Z", "event e-o2"),
        ("reversal", 1_500, "2026-01-10T00:00:00.000000Z", "event late-click"),
        ("settlement", 600, "2026-02-01T00:00:00.000000Z", "settle as of 2026-02-01T00:00:00Z"),
        ("adjustment", 300, None, "adjustment by fin: bonus"),
        ("payout", 900, "2026-02-02T00:00:00.000000Z", "payout as of 2026-02-02T00:00:00Z"),
    ]
    day = 86_400_000_000
    jan1 = 1_767_225_600_000_000
    assert balance_steps(entries, "CNY") == [
        (jan1 + 3 * day + 16 * 3_600_000_000, 600, 0, 0),
        (jan1 + 9 * day, 2_100, 0, 0),
        (jan1 + 9 * day, 600, 0, 0),
        (jan1 + 31 * day, 0, 600, 0),
        (jan1 + 31 * day, 0, 900, 0),
        (jan1 + 32 * day, 0, 0, 900),
    ]
    assert balance_steps(entries, "USD") == []


def test_an_order_spelt_with_json_escapes_still_dates_its_entries():
    """The order's instant is found however its JSON is spelt: here the click
    arrives after the order, so the accrual's event time is the order's."""
    from projections.readmodels import statement

    escaped = ('{"type": "\\u006frder", "event_id": "e-o1", "occurred_at": "2026-01-10T00:00:00Z", "order_id": "o1", '
               '"buyer_id": "b1", "merchant_id": "m1", "lines": [{"sku": "k", "quantity": 1, "unit_price": 10000}]}')
    ledger = run([share("s1", "p1", "2026-01-01T00:00:00Z"), escaped, click("b1", "s1", "2026-01-09T00:00:00Z")])
    [entry] = statement(ledger.store.store, "p1").items
    assert (entry.kind, entry.amount_minor, entry.event_time) == ("accrual", 1_500, "2026-01-10T00:00:00.000000Z")
