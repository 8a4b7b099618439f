"""SPEC §16 worked examples: holds, review and rejection, row by row and
sentence by sentence, with exact amounts and exit codes."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections import defaultdict

import msgspec
import pytest

from cli.main import main
from consumers.relay import store_events
from ledger.books import Books
from ledger.config import Rules, rules_from_mapping
from ledger.errors import ConflictError, NotFoundError
from ledger.limits import DEFAULT_LIMITS
from ledger.records import Held, decode_segment, encode_segment, frame, genesis, unframe
from projections.explain import Explainer
from schemas import outbound
from tests.helpers import click, feed, new_ledger, order, raw, refund, share

T0 = "2026-01-01T00:00:00Z"
DUE = "2026-02-01T00:00:00Z"  # every order below is due (15-day lock)
LATER = "2026-03-01T00:00:00Z"
REVIEW = rules_from_mapping({"attribution": {"self_referral": "review"}})


def books_with(events, rules: Rules | None = None) -> Books:
    ledger = new_ledger(rules)
    feed(ledger, events)
    return Books(ledger.store.store, rules)


def row(books: Books, promoter: str = "P", currency: str = "CNY") -> list[int]:
    return books.balances().get((promoter, currency), [0, 0, 0])


def settled_ids(records) -> list[str]:
    return [i for r in records for i in r.order_ids]


# P shares s1; Q shares s2 re-shared from s1 (Q's upline is P); buyer B clicks s1.
BASE = [
    share("s1", "P", "2025-12-31T00:00:00Z"),
    share("s2", "Q", "2025-12-31T00:00:01Z", parent="s1"),
    click("B", "s1", "2026-01-01T00:01:00Z", event_id="c-B"),
    click("P", "s1", "2026-01-01T00:01:00Z", event_id="c-P"),  # P's own purchases go to P
]


def o(order_id: str, amount: int = 10_000, buyer: str = "B", at: str = "2026-01-01T00:02:00Z") -> dict:
    return order(order_id, buyer, at, amount=amount)


# ---------------------------------------------------------------- hold order
def test_a_held_order_is_not_settled_and_one_release_lifts_every_hold():
    books = books_with(BASE + [o("o1")])
    books.hold("order", "o1", "first doubt", "ann")
    books.hold("order", "o1", "second doubt", "bob")  # each hold is recorded
    records = books.settle(DUE)
    assert settled_ids(records) == [] and records[0].held_orders == ["o1"]
    assert row(books) == [1500, 0, 0]  # held money stays pending
    assert [(h["kind"], h["reasons"], h["actor"]) for h in books.holds_in_force()] == [
        ("order", ["first doubt"], "ann"), ("order", ["second doubt"], "bob")]
    books.release("order", "o1", "checked", "cy")
    assert books.holds_in_force() == []
    assert settled_ids(books.settle(DUE)) == ["o1"]
    assert row(books) == [0, 1500, 0]


@pytest.mark.parametrize("before", ["nothing", "held", "review", "approved"])
def test_hold_order_succeeds_whatever_else_applies(before):
    books = books_with(BASE + [o("o1", buyer="P")], REVIEW)  # P buys through own share: review
    if before == "held":
        books.hold("order", "o1", "x", "ann")
    elif before in ("review", "approved"):
        assert books.settle(DUE)[0].review == [("o1", ["self_referral"])]
        if before == "approved":
            books.release("order", "o1", "fine", "ann")
    books.hold("order", "o1", "again", "ann")
    assert settled_ids(books.settle(DUE)) == []


def test_hold_order_refusals_unknown_settled_unattributed_rejected():
    books = books_with(BASE + [o("o1"), o("o2"), order("u1", "nobody", "2026-01-01T00:00:00Z", amount=500)])
    with pytest.raises(NotFoundError):
        books.hold("order", "nope", "x", "ann")
    books.settle(DUE)
    with pytest.raises(ConflictError):
        books.hold("order", "o1", "x", "ann")  # settled
    with pytest.raises(ConflictError):
        books.hold("order", "u1", "x", "ann")  # settled as unattributed
    books2 = books_with(BASE + [o("o1")])
    books2.reject("o1", "fraud", "ann")
    with pytest.raises(ConflictError):
        books2.hold("order", "o1", "x", "ann")  # a rejected order is never held again


def test_a_parked_refund_does_not_make_an_order_known():
    books = books_with(BASE + [refund("r1", "ghost", "B", 10)])
    with pytest.raises(NotFoundError):
        books.hold("order", "ghost", "x", "ann")
    with pytest.raises(NotFoundError):
        books.reject("ghost", "x", "ann")


# ------------------------------------------------------------- hold promoter
def test_payout_skips_a_held_promoter_and_lists_it_balances_untouched():
    books = books_with(BASE + [o("o1"), click("C", "s2", "2026-01-01T00:01:00Z"), o("o2", 20_000, buyer="C")])
    books.settle(DUE)
    assert row(books, "P") == [0, 1500 + 1000, 0] and row(books, "Q") == [0, 3000, 0]
    books.hold("promoter", "P", "kyc", "ann")
    books.hold("promoter", "P", "kyc again", "ann")  # held already: fine
    books.hold("promoter", "never-seen", "x", "ann")  # any id
    paid = books.payout(DUE)
    assert [(t.promoter_id, t.amount_minor) for t in paid.transfers] == [("Q", 3000)]
    assert paid.held == [("P", "CNY", 2500)]
    assert row(books, "P") == [0, 2500, 0]
    books.release("promoter", "P", "kyc done", "ann")
    with pytest.raises(ConflictError):
        books.release("promoter", "P", "twice", "ann")
    paid = books.payout(LATER)
    assert [(t.promoter_id, t.amount_minor) for t in paid.transfers] == [("P", 2500)] and paid.held == []


# ------------------------------------------------------------------ release
def test_release_without_a_hold_is_refused_no_approval_in_advance():
    books = books_with(BASE + [o("o1", buyer="P")], REVIEW)
    with pytest.raises(ConflictError):
        books.release("order", "o1", "pre-approve", "ann")
    with pytest.raises(NotFoundError):
        books.release("order", "nope", "x", "ann")
    assert books.settle(DUE)[0].review == [("o1", ["self_referral"])]  # still reviewed


def test_release_lifts_a_review_hold_and_approves_for_good():
    books = books_with(BASE + [o("o1", buyer="P")], REVIEW)
    assert books.settle(DUE)[0].review == [("o1", ["self_referral"])]
    later = books.settle(LATER)  # sticky: held again, not listed as new
    assert later[0].review == [] and later[0].held_orders == ["o1"] and settled_ids(later) == []
    books.release("order", "o1", "ok", "ann")
    assert settled_ids(books.settle(LATER)) == ["o1"]
    assert row(books) == [0, 1500, 0]  # review pays as allow


def test_an_approved_order_is_not_reviewed_again_but_a_new_hold_holds_it():
    books = books_with(BASE + [o("o1", buyer="P")], REVIEW)
    books.settle(DUE)
    books.release("order", "o1", "ok", "ann")
    books.hold("order", "o1", "new doubt", "bob")
    assert settled_ids(books.settle(LATER)) == []
    books.release("order", "o1", "ok again", "bob")
    assert settled_ids(books.settle(LATER)) == ["o1"]


# ------------------------------------------------------------------- reject
def test_reject_unsettled_reverses_pending_now_and_settles_at_zero():
    books = books_with(BASE + [o("o1")])
    books.hold("order", "o1", "x", "ann")
    journal, position, record = books.reject("o1", "fraud", "ann")
    assert [(t.kind, t.promoter_id, t.amount_minor, t.debit, t.credit) for t in record.transfers] == [
        ("reversal", "P", 1500, "pending", "expense")]
    assert row(books) == [0, 0, 0] and books.holds_in_force() == []  # its holds end
    assert settled_ids(books.settle(DUE)) == ["o1"]  # settles at 0
    assert row(books) == [0, 0, 0]
    with pytest.raises(ConflictError):
        books.reject("o1", "again", "ann")
    with pytest.raises(NotFoundError):
        books.reject("nope", "x", "ann")


def test_reject_settled_claws_back_from_payable_which_may_go_negative():
    books = books_with(BASE + [click("C", "s2", "2026-01-01T00:01:00Z"), o("o2", 20_000, buyer="C")])
    books.settle(DUE)
    books.payout(DUE)
    assert row(books, "Q") == [0, 0, 3000] and row(books, "P") == [0, 0, 1000]
    _, _, record = books.reject("o2", "fraud", "ann")
    assert sorted((t.kind, t.promoter_id, t.level, t.amount_minor, t.debit) for t in record.transfers) == [
        ("clawback", "P", 2, 1000, "payable"), ("clawback", "Q", 1, 3000, "payable")]
    assert row(books, "Q") == [0, -3000, 3000] and row(books, "P") == [0, -1000, 1000]


def test_after_rejection_refunds_count_toward_r_but_reverse_nothing_and_late_clicks_do_not_reattribute():
    books = books_with(BASE + [o("o1")])
    books.reject("o1", "fraud", "ann")
    ledger = books.ledger()
    feed(ledger, [refund("r1", "o1", "B", 6_000),
                  refund("r2", "o1", "B", 5_000),  # 6,000 + 5,000 > C = 10,000: still validated
                  share("s9", "Z", "2025-12-31T00:00:00Z"),
                  click("B", "s9", "2026-01-01T00:01:30Z")])  # would win last_click
    from tests.helpers import dead_reasons
    assert dead_reasons(ledger) == ["refund_exceeds_order"]
    state = ledger.engine.orders.get("o1")
    assert state.refunded_minor == 6_000 and state.posted1 is None and state.posted2 is None
    assert row(books, "Z") == [0, 0, 0] and row(books) == [0, 0, 0]
    books.settle(DUE)
    assert row(books, "Z") == [0, 0, 0] and row(books) == [0, 0, 0]


def test_a_refund_after_rejecting_a_settled_order_claws_back_nothing_more():
    books = books_with(BASE + [o("o1")])
    books.settle(DUE)
    books.reject("o1", "fraud", "ann")
    assert row(books) == [0, 0, 0]
    feed(books.ledger(), [refund("r1", "o1", "B", 5_000)])
    assert row(books) == [0, 0, 0]


# ------------------------------------------------------------------- review
def test_review_self_referral_buyer_is_level1_or_level2_whatever_it_pays():
    rules = rules_from_mapping({"attribution": {"self_referral": "review"}, "commission": {"level2_rate_bp": 0}})
    books = books_with(BASE + [click("P", "s2", "2026-01-01T00:01:00Z"), o("oL2", buyer="P"),  # P is Q's upline: L2 pays 0
                               click("Q", "s2", "2026-01-01T00:01:00Z"), o("oL1", buyer="Q"),
                               o("oB")], rules)
    review = books.settle(DUE)[0].review
    assert sorted(review) == [("oL1", ["self_referral"]), ("oL2", ["self_referral"])]
    assert row(books, "Q") == [2 * 1500, 0, 0] and row(books, "P") == [0, 1500, 0]  # pays as allow; oB settled


def test_review_amount_over_is_strict_after_cap_before_refunds_and_lists_both_reasons():
    rules = rules_from_mapping({"attribution": {"self_referral": "review"}, "review": {"amount_over": 1500}})
    books = books_with(BASE + [o("equal", 10_000), o("over", 10_007), refund("r1", "over", "B", 10_000),
                               o("both", 20_000, buyer="P")], rules)
    review = books.settle(DUE)[0].review  # in settlement order: same instant, by event_id
    assert review == [("both", ["self_referral", "amount_over"]), ("over", ["amount_over"])]
    # equal: L1 1,500 (not over) settled; over: L1 1,501 before refunds, 1 after; both: 3,000
    assert row(books) == [3000 + 1, 1500, 0]


def test_amount_over_counts_after_deny_and_the_cap():
    rules = rules_from_mapping({"attribution": {"self_referral": "deny"}, "review": {"amount_over": 100},
                                "commission": {"order_cap_amount": 100}})
    books = books_with(BASE + [o("own", buyer="P"), o("capped")], rules)
    assert books.settle(DUE)[0].review == []  # own pays 0 (deny); capped pays exactly 100, not over


def test_a_review_hold_is_sticky_even_when_the_condition_no_longer_holds():
    books = books_with(BASE + [o("o1", buyer="P")], REVIEW)
    assert books.settle(DUE)[0].review == [("o1", ["self_referral"])]
    feed(books.ledger(), [share("s8", "Y", "2025-12-31T00:00:00Z"), click("P", "s8", "2026-01-01T00:01:30Z")])
    assert row(books, "Y") == [1500, 0, 0]  # re-attributed (still pending): no longer a self-referral
    assert settled_ids(books.settle(LATER)) == [] and books.holds_in_force()[0]["kind"] == "review"


def test_review_comes_from_the_rules_version_the_order_is_evaluated_under():
    books = books_with(BASE + [o("o1", buyer="P")], Rules())  # allow when it arrived
    books_review = Books(books.store, REVIEW)
    assert books_review.settle(DUE)[0].review == [] and row(books) == [0, 1500, 0]


def test_a_bulk_settle_in_batches_settles_every_due_order_around_held_ones():
    limits = dataclasses.replace(DEFAULT_LIMITS, settle_batch_orders=2)
    events = list(BASE)
    events += [o(f"own{i}", buyer="P", at=f"2026-01-01T00:02:0{i}Z") for i in range(3)]
    events += [o(f"b{i}", at=f"2026-01-01T00:03:0{i}Z") for i in range(3)]
    ledger = new_ledger(REVIEW, limits=limits)
    feed(ledger, events)
    books = Books(ledger.store.store, REVIEW, limits)
    records = books.settle(DUE)
    assert sorted(settled_ids(records)) == ["b0", "b1", "b2"]
    assert sorted(i for r in records for i, _ in r.review) == ["own0", "own1", "own2"]


# ---------------------------------------------------------------- relay, §13
def _fold(values) -> dict:
    index = {"pending": 0, "payable": 1, "paid": 2}
    out: dict = defaultdict(lambda: [0, 0, 0])
    for v in values:
        r = out[(v["promoter_id"], v["currency"])]
        if v["from"] in index:
            r[index[v["from"]]] -= v["amount_minor"]
        if v["to"] in index:
            r[index[v["to"]]] += v["amount_minor"]
    return {k: v for k, v in out.items() if any(v)}


def test_rejection_movements_name_the_command_and_sum_to_the_balances():
    books = books_with(BASE + [o("o1"), click("C", "s2", "2026-01-01T00:01:00Z"), o("o2", 20_000, buyer="C")])
    books.settle(DUE)
    j1, p1, _ = books.reject("o1", "fraud", "ann")  # settled: clawed back
    feed(books.ledger(), [o("o3", at="2026-01-05T00:00:00Z")])  # arrives after the settle: pending
    j3, p3, _ = books.reject("o3", "fraud", "ann")  # unsettled: reversed
    values = [json.loads(outbound.encode(e)) for e in store_events(books.store)]
    by_cause = {(v["type"], v["order_id"], v.get("cause_event_id")) for v in values if v.get("order_id") in ("o1", "o3")}
    assert ("commission.clawed_back", "o1", f"{j1}:{p1}") in by_cause
    assert ("commission.reversed", "o3", f"{j3}:{p3}") in by_cause
    assert _fold(values) == {k: v for k, v in books.balances().items() if any(v)}


# ------------------------------------------------------------ explain, audit
def test_explain_shows_holds_review_approval_and_rejection_with_actor_reason_position():
    books = books_with(BASE + [o("o1", buyer="P"), o("o2")], REVIEW)
    books.settle(DUE)
    _, pos, _ = books.release("order", "o1", "looked fine", "ann")
    view = Explainer(books.store).explain("o1")
    assert view["hold_state"] == "approved"
    assert [(h["action"], h["actor"], h["reason"]) for h in view["holds"]] == [
        ("review", "settle", "self_referral"), ("approve", "ann", "looked fine")]
    assert view["holds"][1]["position"] == pos
    books.reject("o2", "fraud", "bob")
    view = Explainer(books.store).explain("o2")
    assert view["hold_state"] == "rejected" and view["after_refunds"]["level1"] == 0
    assert view["transfers"][-1]["cause"] == "rejection by bob: fraud" and view["transfers"][-1]["kind"] == "clawback"


def _store_with_every_command(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(REVIEW, store_url=url)
    feed(ledger, BASE + [o("o1", buyer="P"), o("o2"), o("o3")])
    books = Books(url, REVIEW)
    books.hold("order", "o2", "doubt", "ann")
    books.hold("promoter", "P", "kyc", "ann")
    books.settle(DUE)
    books.payout(DUE)
    books.release("order", "o1", "ok", "ann")
    books.release("promoter", "P", "ok", "ann")
    books.reject("o3", "fraud", "ann")
    books.reject("o2", "fraud", "ann")
    books.settle(LATER)
    books.payout(LATER)
    return url


def _edit_holds(url: str, *, rechain: bool) -> None:
    """Change the reason of every stored hold record, directly in the SQLite
    file; with ``rechain`` every chain hash is recomputed, as a forger would."""
    with sqlite3.connect(url[len("sqlite:///"):]) as db:
        rows = db.execute("SELECT originator_id, originator_version, state FROM stored_events "
                          "WHERE topic='commission_ledger.Segment' ORDER BY originator_id, originator_version").fetchall()
        heads: dict[str, bytes] = {}
        for journal_id, version, state in rows:
            segment = decode_segment(state)
            records = [msgspec.structs.replace(r, reason="edited") if isinstance(r, Held) else r for r in segment.records]
            payload = encode_segment(msgspec.structs.replace(segment, records=records))
            name = journal_id.removeprefix("journal:")
            if rechain:
                data, heads[name] = frame(heads.get(name, genesis(name)), payload)
            else:
                data = state[:len(state) - len(unframe(state)[1])] + payload
            db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?", (data, journal_id, version))


@pytest.mark.parametrize("rechain", [False, True], ids=["as stored", "chain recomputed"])
def test_audit_replay_passes_with_every_command_and_fails_when_a_hold_is_edited(capsys, tmp_path, rechain):
    url = _store_with_every_command(tmp_path)
    code, out, _ = cli(capsys, "--store", url, "audit", "replay")
    assert code == 0 and "replay matches live" in out
    _edit_holds(url, rechain=rechain)
    code, out, err = cli(capsys, "--store", url, "audit", "replay")
    assert code == 1 and len(err.splitlines()) == 1


# ---------------------------------------------------------------- exit codes
def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_command_line_exit_codes_and_listings(capsys, tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    path = tmp_path / "events.jsonl"
    path.write_text("".join(raw(e).decode() + "\n" for e in BASE + [o("o1"), o("o2", buyer="P")]))
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[attribution]\nself_referral = "review"\n')
    g = ["--store", url, "--config", str(cfg)]
    assert cli(capsys, *g, "ingest", str(path))[0] == 0
    assert cli(capsys, *g, "hold", "order", "o1", "--reason", "doubt", "--actor", "ann")[0] == 0
    code, _, err = cli(capsys, *g, "hold", "order", "nope", "--reason", "x")
    assert code == 2 and err.count("\n") == 1
    assert cli(capsys, *g, "hold", "order", "o1", "--reason", "")[0] == 2
    assert cli(capsys, *g, "hold", "order", "o1", "--reason", "x" * 501)[0] == 2
    assert cli(capsys, *g, "hold", "order", "o1", "--reason", "x" * 500)[0] == 0
    assert cli(capsys, *g, "hold", "promoter", "P", "--reason", "kyc")[0] == 0
    code, out, _ = cli(capsys, *g, "settle", "--as-of", DUE)
    assert code == 0 and "held for review: o2 (self_referral)" in out and "held: o1" in out
    code, out, _ = cli(capsys, *g, "holds", "--format", "json")
    assert [(h["kind"], h["id"]) for h in json.loads(out)] == [("order", "o1"), ("order", "o1"), ("review", "o2"), ("promoter", "P")]
    assert cli(capsys, *g, "holds", "--format", "csv")[1].splitlines()[0] == "kind,id,reasons,actor,journal,position"
    assert cli(capsys, *g, "release", "order", "o2", "--reason", "ok")[0] == 0
    assert cli(capsys, *g, "release", "order", "o2", "--reason", "ok")[0] == 2
    assert cli(capsys, *g, "settle", "--as-of", DUE)[0] == 0
    code, out, err = cli(capsys, *g, "payout", "--as-of", DUE, "--format", "json")
    assert code == 0 and json.loads(out) == [] and "held: P CNY 1500" in err
    assert cli(capsys, *g, "release", "promoter", "P", "--reason", "ok")[0] == 0
    assert cli(capsys, *g, "release", "promoter", "P", "--reason", "ok")[0] == 2
    assert cli(capsys, *g, "reject", "order", "o2", "--reason", "fraud")[0] == 0
    assert cli(capsys, *g, "reject", "order", "o2", "--reason", "fraud")[0] == 2
    assert cli(capsys, *g, "reject", "order", "nope", "--reason", "fraud")[0] == 2
    assert cli(capsys, *g, "hold", "order", "o2", "--reason", "x")[0] == 2  # settled (and rejected)
    code, out, _ = cli(capsys, *g, "payouts", "--format", "json")
    # o1 still held (pending); o2 settled, skipped by the payout (P held), then clawed back
    assert json.loads(out) == [{"promoter_id": "P", "currency": "CNY", "pending": 1500, "payable": 0, "paid": 0}]
