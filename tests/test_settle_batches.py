"""A bulk settle is cut into records of at most ``settle_batch_orders`` orders,
each its own transaction (memory follows the batch, not the backlog); the books
are the same as one record's, and audit replay re-executes each record."""

import msgspec

from ledger.books import Books
from ledger.limits import Limits
from ledger.records import Settled, Source, Transfer
from ledger.store import Store
from projections.audit import audit_replay
from tests.helpers import click, order, raw, share

AS_OF = "2026-03-01T00:00:00Z"


def _events():
    events = [share("sA", "A", "2026-01-01T00:00:00Z"), share("sB", "B", "2026-01-02T00:00:00Z", parent="sA")]
    for i in range(5):
        events.append(click(f"u{i}", "sB", f"2026-01-03T00:00:0{i}Z"))
        events.append(order(f"o{i}", f"u{i}", f"2026-01-05T00:00:0{i}Z", amount=10_000 + i))
    events.append(order("late", "u0", "2026-02-20T00:00:00Z", amount=5_000))  # not due at AS_OF
    return events


def _books(url: str, batch: int) -> Books:
    books = Books(Store(url), limits=Limits(settle_batch_orders=batch))
    books.ledger("main").ingest((raw(e), Source(file="t", line=i)) for i, e in enumerate(_events(), 1))
    return books


def test_bulk_settle_is_cut_into_bounded_records_with_the_same_books(tmp_path):
    cut = _books(f"sqlite:///{tmp_path}/cut.db", 2)
    records = cut.settle(AS_OF)
    assert [r.order_ids for r in records] == [["o0", "o1"], ["o2", "o3"], ["o4"]]
    assert [r.limit_orders for r in records] == [2, 2, 2]
    assert sum(len(r.transfers) for r in records) == 10  # two levels per order
    whole = _books(f"sqlite:///{tmp_path}/whole.db", 20_000)
    [one] = whole.settle(AS_OF)
    assert one.order_ids == ["o0", "o1", "o2", "o3", "o4"]
    assert cut.balances() == whole.balances()
    assert cut.balances()[("B", "CNY")][1] == sum((10_000 + i) * 1500 // 10_000 for i in range(5))
    # exactly a multiple of the batch: no empty record after the last full one
    again = _books(f"sqlite:///{tmp_path}/even.db", 5)
    assert [len(r.order_ids) for r in again.settle(AS_OF)] == [5]
    assert [len(r.order_ids) for r in again.settle(AS_OF)] == [0]  # a settle with nothing due is still recorded


def test_cut_records_re_execute_in_audit_replay(tmp_path):
    url = f"sqlite:///{tmp_path}/cut.db"
    _books(url, 2).settle(AS_OF)
    result = audit_replay(Store(url))
    assert result.failures == [] and result.differences == []


def test_a_record_without_a_limit_is_stored_as_before():
    t = Transfer("settlement", "A", "CNY", 5, "pending", "payable", rules_version=1)
    encoded = msgspec.msgpack.encode(Settled("2026-03-01T00:00:00Z", 1, 1, ["o1"], [t]))
    assert b"limit_orders" not in encoded
    assert msgspec.msgpack.decode(encoded, type=Settled).limit_orders == 0
    assert b"limit_orders" in msgspec.msgpack.encode(Settled("x", 1, 1, [], [], 2))
