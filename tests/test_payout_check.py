"""``audit replay`` checks every payout and adjustment, however far back its
balances were computed (issue 18; projections.payout_check)."""

from __future__ import annotations

import pytest

from ledger.books import Books
from ledger.records import Source
from ledger.store import Store
from projections.audit import audit_replay, last_audit
from projections.payout_check import LOOKBACK_SEGMENTS
from tests.helpers import click, order, raw, share

AS_OF = "2026-03-01T00:00:00Z"


def _books_with_payables(url: str) -> Books:
    books = Books(Store(url))
    main = books.ledger("main")
    events = [share("A", "alice", "2026-01-01T00:00:00Z"), click("u1", "A", "2026-01-02T00:00:00Z", event_id="c1"),
              order("O1", "u1", "2026-01-02T01:00:00Z", amount=20_000)]
    main.ingest((raw(e), Source(file="f", line=i)) for i, e in enumerate(events, 1))
    books.settle(AS_OF)
    return books


def _segments_after(books: Books, n: int) -> None:
    """n segments that touch no payable balance (shares of other promoters)."""
    main = books.ledger("main")
    for i in range(n):
        main.ingest([(raw(share(f"S{i}", f"p{i}", "2026-01-05T00:00:00Z")), Source(file="g", line=i))])


def _payables_now(books: Books) -> tuple[int, dict]:
    position = books.store.recorder.max_notification_id() or 0
    return position, {key: row[1] for key, row in books.balances(until_position=position).items() if row[1]}


@pytest.mark.parametrize("distance", [0, 5, LOOKBACK_SEGMENTS + 10, 3 * LOOKBACK_SEGMENTS])
def test_a_payout_paying_twice_the_payable_fails_the_audit_whatever_the_distance(tmp_path, distance):
    url = f"sqlite:///{tmp_path}/l.db"
    books = _books_with_payables(url)
    position, payable = _payables_now(books)
    assert payable == {("alice", "CNY"): 3_000}  # 15% of 20,000 (level 1)
    _segments_after(books, distance)
    doubled = {key: 2 * amount for key, amount in payable.items()}
    at, _ = books.pay(AS_OF, payables=lambda: (position, doubled))
    result = audit_replay(Store(url), fast=True)
    assert result.failures == [f"journal treasury position {at}: paid alice CNY 6000, but payable there was 3000"]
    assert (result.payouts.payouts, result.payouts.checked) == (1, 1)
    assert result.payouts.checked_second_pass == (1 if distance > LOOKBACK_SEGMENTS else 0)
    recorded = last_audit(Store(url))
    assert recorded is not None and not recorded.ok
    assert (recorded.failure_count, recorded.payouts, recorded.payouts_checked) == (1, 1, 1)


@pytest.mark.parametrize("distance", [0, LOOKBACK_SEGMENTS + 10])
def test_a_correct_payout_passes_whatever_the_distance_and_every_count_is_recorded(tmp_path, distance):
    url = f"sqlite:///{tmp_path}/l.db"
    books = _books_with_payables(url)
    position, payable = _payables_now(books)
    _segments_after(books, distance)
    books.pay(AS_OF, payables=lambda: (position, payable))
    books.adjust("alice", "CNY", -300, "correction", "ops")
    result = audit_replay(Store(url), fast=True)
    assert result.failures == [] and result.ok
    assert (result.payouts.payouts, result.payouts.checked, result.payouts.adjustments) == (1, 1, 1)
    recorded = last_audit(Store(url))
    assert (recorded.payouts, recorded.payouts_checked, recorded.payouts_checked_second_pass,
            recorded.adjustments_checked) == (1, 1, 1 if distance else 0, 1)


def test_a_payout_without_a_balances_position_is_a_failure_not_a_note(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    books = _books_with_payables(url)
    _, payable = _payables_now(books)
    at, _ = books.pay(AS_OF, payables=lambda: (0, payable))
    result = audit_replay(Store(url), fast=True)
    assert result.failures == [f"journal treasury position {at}: recorded without the balances position it paid "
                               "from: it cannot be checked"]


def test_record_audit_does_not_swallow_a_write_error(tmp_path):
    from projections.audit import record_audit

    url = f"sqlite:///{tmp_path}/l.db"
    _books_with_payables(url)
    result = audit_replay(Store(url), fast=True, record=False)
    store = Store(url)

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    store.recorder.insert_events = refuse  # the store's write fails as a full disk would
    with pytest.raises(OSError, match="disk full"):
        record_audit(store, result)


@pytest.mark.parametrize("late_kind,folded_apart", [("settle", False), ("refund", False), ("settle", True)])
def test_a_payout_racing_a_segment_that_touches_its_promoter_answers_with_its_lines(tmp_path, late_kind, folded_apart):
    """Issue 18: a settle (or a refund's clawback) of the payout's promoter
    commits between the payables the payout read and the payout (and is folded
    into the tables in the same chunk as the payout, or before it). The batch is
    built from the entries up to the balances position it paid from; the late
    entry carries into the next batch; both batches reconcile."""
    from projections import readmodels
    from tests.helpers import refund

    url = f"sqlite:///{tmp_path}/l.db"
    books = _books_with_payables(url)
    main = books.ledger("main")
    main.ingest([(raw(click("u2", "A", "2026-02-10T00:00:00Z", event_id="c2")), Source(file="f", line=10)),
                 (raw(order("O2", "u2", "2026-02-10T01:00:00Z", amount=10_000)), Source(file="f", line=11))])
    store = books.store

    def racing_payables():
        read = readmodels.payables_at(store)  # what the payout pays: alice 3000
        if late_kind == "settle":
            books.ledger("main").settle("2026-06-01T00:00:00Z")  # O2 due: alice +1500 payable, after the read
        else:
            books.ledger("main").ingest([(raw(refund("R1", "O1", "u1", 20_000, "2026-02-20T00:00:00Z")),
                                          Source(file="f", line=12))])  # clawback: alice -3000 payable
        if folded_apart:  # a reader catches the tables up before the payout commits: another chunk
            readmodels.caught_up_position(store)
        return read

    at, record = books.pay(AS_OF, racing_payables)
    assert [(t.promoter_id, t.amount_minor) for t in record.transfers] == [("alice", 3_000)]
    batch = readmodels.payout_batch(store, at)  # raised "does not reconcile" (an HTTP 500) before
    assert batch is not None and [(l.promoter_id, l.amount_minor, l.carried_over_minor) for l in batch] == [("alice", 3_000, 0)]
    assert [(e.kind, e.order_id, e.amount_minor) for e in batch[0].entries] == [("settlement", "O1", 3_000)]
    assert audit_replay(Store(url), fast=True).failures == []
    if late_kind == "settle":
        at2, record2 = readmodels.pay_out(books, "2026-06-01T00:00:00Z")[:2]
        assert [(t.promoter_id, t.amount_minor) for t in record2.transfers] == [("alice", 1_500)]
        [line] = readmodels.payout_batch(store, at2)
        assert (line.amount_minor, line.carried_over_minor) == (1_500, 0)
        assert [(e.kind, e.order_id, e.amount_minor) for e in line.entries] == [("settlement", "O2", 1_500)]
    else:  # payable -3000 now: nothing to pay; the clawback is what the next batch of alice starts from
        assert readmodels.payables_at(store)[1] == {}
