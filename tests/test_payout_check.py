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
