"""Worked examples for SPEC §4 (promoter network, level 2) and §5 (commission amounts).

Default rules: last_click, window 7d, L1 1500 bp, L2 500 bp, caps 2000/1000 bp, order cap 3000 bp.
"""

from ledger.config import Rules
from ledger.records import Ingested
from tests.helpers import balances, click, feed, order, pending, run, share

DAY1 = "2026-01-01T00:00:00Z"
DAY2 = "2026-01-02T00:00:00Z"


def earned(ledger):
    """{(promoter, currency): pending} for rows with any non-zero balance."""
    return {k: b[0] for k, b in balances(ledger).items() if any(b)}


def last_transfers(ledger):
    record = list(ledger.records())[-1][1]
    assert isinstance(record, Ingested)
    return [(t.kind, t.promoter_id, t.level, t.amount_minor) for t in record.transfers]


# ------------------------------------------------------------------ level 2
def test_level2_goes_to_upline_of_reshared_share():
    ledger = run([share("sA", "A", DAY1), share("sB", "B", DAY2, parent="sA"),
                  click("u", "sB", "2026-01-05T00:00:00Z"), order("o1", "u", "2026-01-05T01:00:00Z")])
    assert earned(ledger) == {("A", "CNY"): 500, ("B", "CNY"): 1500}


def test_level2_binding_starts_at_child_share_time():
    base = [share("sA", "A", DAY1), share("sB", "B", DAY2, parent="sA"), click("u", "sB", "2026-01-01T11:00:00Z")]
    before = run(base + [order("o1", "u", "2026-01-01T23:59:59.999999Z")])
    assert earned(before) == {("B", "CNY"): 1500}
    at = run(base + [order("o1", "u", DAY2)])
    assert earned(at) == {("A", "CNY"): 500, ("B", "CNY"): 1500}


def test_resharing_own_share_binds_nothing():
    ledger = run([share("sA", "A", DAY1), share("sA2", "A", DAY2, parent="sA"),
                  click("u", "sA2", "2026-01-05T00:00:00Z"), order("o1", "u", "2026-01-05T01:00:00Z")])
    assert earned(ledger) == {("A", "CNY"): 1500}
    # A still has no upline, so a later re-share of C's share binds A to C.
    feed(ledger, [share("sC", "C", DAY1), share("sA3", "A", "2026-01-03T00:00:00Z", parent="sC")])
    assert earned(ledger) == {("A", "CNY"): 1500, ("C", "CNY"): 500}


def test_cycle_is_refused():
    # B re-shares A's share (B → A), then A re-shares B's share: A→B would close a cycle.
    ledger = run([share("sA", "A", DAY1), share("sB", "B", DAY2, parent="sA"),
                  share("sA2", "A", "2026-01-03T00:00:00Z", parent="sB"),
                  click("u", "sA2", "2026-01-05T00:00:00Z"), order("o1", "u", "2026-01-05T01:00:00Z"),
                  click("v", "sB", "2026-01-05T00:00:00Z"), order("o2", "v", "2026-01-05T01:00:00Z")])
    assert earned(ledger) == {("A", "CNY"): 1500 + 500, ("B", "CNY"): 1500}


def test_never_a_third_level():
    ledger = run([share("sA", "A", DAY1), share("sB", "B", DAY2, parent="sA"),
                  share("sC", "C", "2026-01-03T00:00:00Z", parent="sB"),
                  click("u", "sC", "2026-01-05T00:00:00Z"), order("o1", "u", "2026-01-05T01:00:00Z")])
    assert balances(ledger) == {("B", "CNY"): (500, 0, 0), ("C", "CNY"): (1500, 0, 0)}


def test_earlier_dated_late_share_takes_the_binding_and_reevaluates_unsettled_orders():
    ledger = run([share("sA", "A", DAY1), share("sD", "D", DAY1),
                  share("sB2", "B", "2026-01-03T00:00:00Z", parent="sD"),
                  click("u", "sB2", "2026-01-03T12:00:00Z"), order("o1", "u", "2026-01-04T00:00:00Z"),
                  click("v", "sB2", "2026-01-09T12:00:00Z"), order("o2", "v", "2026-01-10T00:00:00Z", amount=20_000)])
    assert earned(ledger) == {("B", "CNY"): 1500 + 3000, ("D", "CNY"): 500 + 1000}
    assert ledger.settle("2026-01-19T00:00:00Z").order_ids == ["o1"]
    # B re-shared A's share on Jan 2, but that event arrives only now: B's upline is A.
    feed(ledger, [share("sB1", "B", DAY2, parent="sA")])
    assert last_transfers(ledger) == [("reversal", "D", 2, 1000), ("accrual", "A", 2, 1000)]
    # o1 (settled) stays with D; o2 (unsettled) moves to A.
    assert balances(ledger) == {("A", "CNY"): (1000, 0, 0), ("B", "CNY"): (3000, 1500, 0), ("D", "CNY"): (0, 500, 0)}


def test_share_with_unknown_parent_binds_once_parent_arrives():
    ledger = run([share("sB", "B", DAY2, parent="sA"), click("u", "sB", "2026-01-05T00:00:00Z"),
                  order("o1", "u", "2026-01-05T01:00:00Z")])
    assert earned(ledger) == {("B", "CNY"): 1500}  # the share is known (its click counts), binds nothing
    feed(ledger, [share("sA", "A", DAY1)])
    assert last_transfers(ledger) == [("accrual", "A", 2, 500)]
    assert earned(ledger) == {("A", "CNY"): 500, ("B", "CNY"): 1500}


# ------------------------------------------------------------------ amounts
NET = [share("sA", "A", DAY1), share("sB", "B", DAY2, parent="sA")]


def levels(lines=None, rules=None, buyer="u", **order_kw):
    """(L1 paid to B, L2 paid to A) for one order bought via B's share."""
    ledger = run(NET + [click(buyer, "sB", "2026-01-05T00:00:00Z"),
                        order("o1", buyer, "2026-01-05T01:00:00Z", lines, **order_kw)], rules or Rules())
    return pending(ledger, "B"), pending(ledger, "A")


def line(price, qty=1, **kw):
    return {"sku": f"sku-{price}-{qty}", "quantity": qty, "unit_price": price, **kw}


def test_per_line_rates_and_defaults():
    lines = [line(5000, 2, level1_rate_bp=1000, level2_rate_bp=200), line(3000)]
    assert levels(lines) == (1000 + 450, 200 + 150)


def test_explicit_zero_rate_means_zero():
    assert levels([line(10_000, level1_rate_bp=0)]) == (0, 500)
    assert levels([line(10_000, level2_rate_bp=0)]) == (1500, 0)


def test_rate_above_level_cap_is_clamped():
    # 5000 → 2000, 3000 → 1000; 3000 = K exactly, so the order cap does not bind.
    assert levels([line(10_000, level1_rate_bp=5000, level2_rate_bp=3000)]) == (2000, 1000)


def test_level_caps_that_do_not_bind():
    assert levels([line(10_000, level1_rate_bp=1999, level2_rate_bp=1000)]) == (1999, 1000)


def test_order_cap_cuts_level2_first():
    hi = [line(10_000, level1_rate_bp=2000, level2_rate_bp=1000)]
    assert levels(hi, Rules(order_cap_bp=2500)) == (2000, 500)   # K=2500: L2 = 2500 − 2000
    assert levels(hi, Rules(order_cap_bp=1800)) == (1800, 0)     # K=1800: L2 = max(0, −200), L1 = min(2000, 1800)
    assert levels(hi, Rules(order_cap_bp=3000)) == (2000, 1000)  # K=3000 does not bind


def test_order_cap_amount():
    assert levels(None, Rules(order_cap_amount_minor=1700)) == (1500, 200)  # K = min(3000, 1700)
    assert levels(None, Rules(order_cap_amount_minor=1000)) == (1000, 0)
    assert levels(None, Rules(order_cap_amount_minor=5000)) == (1500, 500)


def test_floor_per_line():
    assert levels([line(333)]) == (49, 16)  # 49.95, 16.65
    # Two such lines: floors add per line (98, 32), not floor of the total (99, 33).
    assert levels([line(333), {"sku": "other", "quantity": 1, "unit_price": 333}]) == (98, 32)


def test_discount_reduces_commissionable_amount():
    assert levels([line(4000, 3, discount=2000)]) == (1500, 500)  # a = 12000 − 2000


def test_shipping_is_never_commissionable():
    assert levels(None, shipping=5000) == (1500, 500)
    # K = 18% of C = 1800 (not of C + shipping): L2 = 1800 − 1500.
    assert levels(None, Rules(order_cap_bp=1800), shipping=100_000) == (1500, 300)


def test_self_referral_deny_level1_buyer_pays_nothing_at_either_level():
    ledger = run(NET + [click("B", "sB", "2026-01-05T00:00:00Z"), order("o1", "B", "2026-01-05T01:00:00Z")],
                 Rules(self_referral="deny"))
    assert balances(ledger) == {}
    assert levels(None, Rules(self_referral="allow"), buyer="B") == (1500, 500)


def test_self_referral_deny_level2_buyer_only_level2_is_zero():
    assert levels(None, Rules(self_referral="deny"), buyer="A") == (1500, 0)
    assert levels(None, Rules(self_referral="deny", order_cap_bp=1800), buyer="A") == (1500, 0)
    assert levels(None, Rules(self_referral="allow"), buyer="A") == (1500, 500)


def test_currencies_are_separate_balances():
    ledger = run(NET + [click("u", "sB", "2026-01-05T00:00:00Z"),
                        order("o1", "u", "2026-01-05T01:00:00Z"),
                        order("o2", "u", "2026-01-05T02:00:00Z", amount=20_000, currency="USD")])
    assert balances(ledger) == {("A", "CNY"): (500, 0, 0), ("A", "USD"): (1000, 0, 0),
                                ("B", "CNY"): (1500, 0, 0), ("B", "USD"): (3000, 0, 0)}


def test_late_share_waiting_for_its_parent_still_takes_the_earlier_binding():
    ledger = run([share("sD", "D", DAY1), share("sB2", "B", "2026-01-03T00:00:00Z", parent="sD"),
                  click("u", "sB2", "2026-01-05T00:00:00Z"), order("o1", "u", "2026-01-05T01:00:00Z"),
                  share("sB1", "B", DAY2, parent="sA")])  # Jan 2, but its parent is not known yet
    assert earned(ledger) == {("B", "CNY"): 1500, ("D", "CNY"): 500}
    feed(ledger, [share("sA", "A", DAY1)])
    assert last_transfers(ledger) == [("reversal", "D", 2, 500), ("accrual", "A", 2, 500)]
    assert earned(ledger) == {("A", "CNY"): 500, ("B", "CNY"): 1500}
