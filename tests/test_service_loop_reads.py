"""Where reads run (``service.blocking.bounded_read``): on the event loop when the
read models are current on SQLite, in a worker thread when they must fold first;
either way a client reads what was committed before its request."""

from __future__ import annotations

import threading

import anyio.to_thread
import pytest

from projections.projector import _lock_of, catch_up
from projections.tables import database
from tests.helpers import click, feed, new_ledger, order, share
from tests.test_service import _in_process

FINANCE = {"Authorization": "Bearer finance"}
FIRST = [share("s1", "p1", "2026-01-01T00:00:00Z"), click("b1", "s1", "2026-01-02T00:00:00Z"),
         order("o1", "b1", "2026-01-02T01:00:00Z", amount=10_000)]
LATER = [share("s9", "p9", "2026-01-03T00:00:00Z"), click("b9", "s9", "2026-01-03T00:00:00Z"),
         order("o9", "b9", "2026-01-03T01:00:00Z", amount=2_000)]


@pytest.fixture
def hops(monkeypatch):
    """The handlers sent to a worker thread, by name."""
    sent: list[str] = []
    original = anyio.to_thread.run_sync

    async def counting(fn, *args, **kwargs):
        sent.append(getattr(getattr(fn, "func", fn), "__name__", repr(fn)))
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return sent


def test_current_reads_stay_on_the_loop_and_new_segments_go_to_a_thread_first(tmp_path, hops):
    _, client = _in_process(tmp_path, FIRST, finance="finance")
    store = f"sqlite:///{tmp_path}/ledger.db"
    with client:
        client.get("/healthz")
        first = client.get("/v1/payouts", headers=FINANCE)  # the tables may still be folding the first segments
        assert [(r["promoter_id"], r["pending"]) for r in first.json()] == [("p1", 1_500)]
        hops.clear()
        for path in ("/v1/payouts", "/", "/promoters/p1", "/v1/promoters/p1/statement"):
            assert client.get(path, headers=FINANCE).status_code == 200, path
        assert hops == []  # every one answered on the event loop
        feed(new_ledger(store_url=store), LATER)  # another writer commits a segment
        rows = client.get("/v1/payouts", headers=FINANCE).json()
        assert [(r["promoter_id"], r["pending"]) for r in rows] == [("p1", 1_500), ("p9", 300)]  # read its write
        assert hops == ["list_payouts"]  # folded in a worker thread
        page = client.get("/", headers=FINANCE)
        assert "p9" in page.text and hops == ["list_payouts"]  # current again: back on the loop


def test_a_read_of_current_tables_never_waits_for_another_threads_fold(tmp_path):
    """A catch-up with nothing to fold takes no lock: with the fold lock held
    elsewhere (a long fold in a worker thread) it still returns at once."""
    from ledger.store import Store

    url = f"sqlite:///{tmp_path}/ledger.db"
    feed(new_ledger(store_url=url), FIRST)
    store = Store(url)
    position = catch_up(store).position
    done: list[int] = []
    with _lock_of(database(store)):
        reader = threading.Thread(target=lambda: done.append(catch_up(store).position), daemon=True)
        reader.start()
        reader.join(10)
    assert done == [position] and position > 0
