"""Worked examples for SPEC §3 (attribution): window edges, ties, customer_lock, parking.

Every order is 10 000 fen with default rates, so the winner's level-1 commission is
1 500 (no uplines here, so no level 2).
"""

from ledger.config import Rules
from projections.explain import explain
from tests.helpers import balances, click, feed, new_ledger, order, run, share

SHARES = [share("sA", "A", "2026-01-01T00:00:00Z"), share("sB", "B", "2026-01-01T00:00:00Z"),
          share("sC", "C", "2026-01-01T00:00:00Z")]
O_AT = "2026-01-10T12:00:00Z"


def rules(model="last_click", **kw):
    base = dict(model=model, window="1h", attribution_lock_period="1d", self_referral="allow")
    base.update(kw)
    return Rules(**base)


def earned(events, r):
    """{promoter: pending} for promoters with a non-zero balance."""
    return {p: b[0] for (p, _), b in balances(run(SHARES + events, r)).items() if any(b)}


# ------------------------------------------------------------------ window edges
def test_click_exactly_at_order_minus_window_is_a_candidate():
    assert earned([click("u", "sA", "2026-01-10T11:00:00Z"), order("o1", "u", O_AT)], rules()) == {"A": 1500}


def test_click_one_microsecond_before_window_start_is_not():
    assert earned([click("u", "sA", "2026-01-10T10:59:59.999999Z"), order("o1", "u", O_AT)], rules()) == {}


def test_window_edges_with_fractional_order_time():
    events = [click("u", "sA", "2026-01-10T11:00:00.000001Z"), click("u", "sB", "2026-01-10T11:00:00Z"),
              order("o1", "u", "2026-01-10T12:00:00.000001Z")]
    # sB's click is 1 µs too old: first_click must pick sA's, the only candidate.
    assert earned(events, rules("first_click")) == {"A": 1500}


def test_click_at_exactly_the_order_time_counts():
    events = [click("u", "sA", "2026-01-10T11:30:00Z"), click("u", "sB", O_AT), order("o1", "u", O_AT)]
    assert earned(events, rules()) == {"B": 1500}


def test_click_after_the_order_does_not_count():
    events = [click("u", "sA", "2026-01-10T11:30:00Z"), click("u", "sB", "2026-01-10T12:00:00.000001Z"),
              order("o1", "u", O_AT)]
    assert earned(events, rules()) == {"A": 1500}
    only_late = [click("u", "sB", "2026-01-10T12:00:00.000001Z"), order("o1", "u", O_AT)]
    assert earned(only_late, rules()) == {}


# ------------------------------------------------------------------ ties
def test_tie_on_instant_breaks_on_event_id_str_order():
    # str order: "click-10" < "click-9" (not numeric), "Zed" < "apple" (code point, not locale).
    at = "2026-01-10T11:30:00Z"
    events = [click("u", "sA", at, event_id="click-9"), click("u", "sB", at, event_id="click-10"), order("o1", "u", O_AT)]
    assert earned(events, rules("last_click")) == {"A": 1500}
    assert earned(events, rules("first_click")) == {"B": 1500}
    events = [click("u", "sA", at, event_id="apple"), click("u", "sB", at, event_id="Zed"), order("o1", "u", O_AT)]
    assert earned(events, rules("last_click")) == {"A": 1500}
    assert earned(events, rules("first_click")) == {"B": 1500}


def test_same_instant_in_different_offsets_ties():
    # Textually "…T10:00:00+08:00" sorts after "…T02:00:00Z" and after the order's text;
    # as instants they are equal, so event_id decides.
    events = [click("u", "sA", "2026-01-10T10:00:00+08:00", event_id="k1"),
              click("u", "sB", "2026-01-10T02:00:00Z", event_id="k2"),
              order("o1", "u", "2026-01-10T02:30:00Z")]
    assert earned(events, rules("last_click")) == {"B": 1500}
    assert earned(events, rules("first_click")) == {"A": 1500}


def test_first_click_picks_earliest_candidate_last_click_the_latest():
    events = [click("u", "sC", "2026-01-10T10:59:00Z"),  # outside the 1h window
              click("u", "sA", "2026-01-10T11:10:00Z"), click("u", "sB", "2026-01-10T11:20:00Z"),
              click("u", "sA", "2026-01-10T11:40:00Z", event_id="late-A"), click("u", "sB", "2026-01-10T11:30:00Z"),
              order("o1", "u", O_AT)]
    assert earned(events, rules("first_click")) == {"A": 1500}
    assert earned(events, rules("last_click")) == {"A": 1500}
    assert earned(events[:3] + [order("o1", "u", O_AT)], rules("last_click")) == {"B": 1500}


# ------------------------------------------------------------------ customer_lock (lock 1d, window 1h)
T = "2026-01-01T00:00:00Z"


def test_lock_binding_active_until_just_before_t_plus_lock():
    events = [click("u", "sA", T), order("o1", "u", "2026-01-01T23:59:59.999999Z")]
    assert earned(events, rules("customer_lock")) == {"A": 1500}


def test_lock_ends_at_exactly_t_plus_lock_without_new_click():
    events = [click("u", "sA", T), order("o1", "u", "2026-01-02T00:00:00Z")]
    assert earned(events, rules("customer_lock")) == {}


def test_lock_click_at_exactly_t_plus_lock_starts_new_binding():
    events = [click("u", "sA", T), click("u", "sB", "2026-01-02T00:00:00Z"), order("o1", "u", "2026-01-02T00:00:00Z")]
    assert earned(events, rules("customer_lock")) == {"B": 1500}


def test_lock_other_promoter_click_inside_binding_does_not_take_over():
    inside_b = click("u", "sB", "2026-01-01T12:00:00Z")
    assert earned([click("u", "sA", T), inside_b, order("o1", "u", "2026-01-01T13:00:00Z")],
                  rules("customer_lock")) == {"A": 1500}
    # B's click started nothing, so after A's binding ends the buyer is unbound.
    assert earned([click("u", "sA", T), inside_b, order("o1", "u", "2026-01-02T00:30:00Z")],
                  rules("customer_lock")) == {}


def test_lock_click_by_bound_promoter_does_not_extend():
    events = [click("u", "sA", T), click("u", "sA", "2026-01-01T23:00:00Z"), order("o1", "u", "2026-01-02T00:00:00Z")]
    assert earned(events, rules("customer_lock")) == {}


def test_lock_new_binding_after_gap():
    base = [click("u", "sA", T), click("u", "sB", "2026-01-01T12:00:00Z"), click("u", "sB", "2026-01-02T06:00:00Z")]
    assert earned(base + [order("o1", "u", "2026-01-02T03:00:00Z")], rules("customer_lock")) == {}
    assert earned(base + [order("o1", "u", "2026-01-02T07:00:00Z")], rules("customer_lock")) == {"B": 1500}


def test_lock_ignores_window():
    events = [click("u", "sA", T), order("o1", "u", "2026-01-01T23:00:00Z")]
    assert earned(events, rules("customer_lock", window="1h")) == {"A": 1500}
    assert earned(events, rules("last_click", window="1h")) == {}


# ------------------------------------------------------------------ unknown shares are parked
def test_click_with_unknown_share_is_parked_until_share_arrives():
    ledger = new_ledger(rules())
    feed(ledger, SHARES)
    counts = feed(ledger, [click("u", "sA", "2026-01-10T11:00:00Z"), click("u", "sX", "2026-01-10T11:30:00Z"),
                           order("o1", "u", O_AT)])
    assert (counts.accepted, counts.parked) == (2, 1)
    assert balances(ledger) == {("A", "CNY"): (1500, 0, 0)}
    # The share arrives late and is dated after the click: the click now counts and wins.
    counts = feed(ledger, [share("sX", "X", "2026-01-10T11:45:00Z")])
    assert (counts.accepted, counts.parked) == (1, 0)
    assert balances(ledger) == {("A", "CNY"): (0, 0, 0), ("X", "CNY"): (1500, 0, 0)}
    assert explain(ledger.engine, ledger.records(), "o1")["winner"]["promoter_id"] == "X"


# ------------------------------------------------------------------ self-referral, unattributed
def test_self_referral_deny_own_click_wins_and_pays_nothing():
    # Promoter A buys (buyer_id "A"); their own click is the last one.
    events = [click("A", "sB", "2026-01-10T11:10:00Z"), click("A", "sA", "2026-01-10T11:30:00Z"), order("o1", "A", O_AT)]
    ledger = run(SHARES + events, rules(self_referral="deny"))
    assert balances(ledger) == {}
    assert explain(ledger.engine, ledger.records(), "o1")["winner"]["promoter_id"] == "A"
    assert earned(events, rules(self_referral="allow")) == {"A": 1500}


def test_unattributed_order_pays_nothing():
    ledger = run(SHARES + [click("v", "sA", "2026-01-10T11:30:00Z"), order("o1", "u", O_AT)], rules())
    assert balances(ledger) == {}
    view = explain(ledger.engine, ledger.records(), "o1")
    assert view["winner"] is None and view["attribution"]["candidates"] == []
