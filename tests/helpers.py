"""Builders for wire events and a one-call ledger for worked examples."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from typing import Any, Callable, Iterable

from ledger.app import Ledger
from ledger.books import Books
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits, parse_limits
from ledger.records import Source
from ledger.store import JournalStore

_counter = [0]


def _eid(prefix: str) -> str:
    _counter[0] += 1
    return f"{prefix}-{_counter[0]}"


def share(share_id: str, promoter_id: str, at: str, *, parent: str | None = None, event_id: str | None = None, **extra: Any) -> dict:
    ev = {"type": "share", "event_id": event_id or f"e-{share_id}", "occurred_at": at, "share_id": share_id, "promoter_id": promoter_id}
    if parent is not None:
        ev["parent_share_id"] = parent
    ev.update(extra)
    return ev


def click(buyer_id: str, share_id: str, at: str, *, event_id: str | None = None, **extra: Any) -> dict:
    ev = {"type": "click", "event_id": event_id or _eid("click"), "occurred_at": at, "buyer_id": buyer_id, "share_id": share_id}
    ev.update(extra)
    return ev


def order(order_id: str, buyer_id: str, at: str, lines: list[dict] | None = None, *, amount: int | None = None,
          merchant_id: str = "m1", event_id: str | None = None, **extra: Any) -> dict:
    """An order; ``amount`` is a shortcut for one line of quantity 1 at that price."""
    if lines is None:
        lines = [{"sku": "sku1", "quantity": 1, "unit_price": amount if amount is not None else 10_000}]
    ev = {"type": "order", "event_id": event_id or f"e-{order_id}", "occurred_at": at, "order_id": order_id,
          "buyer_id": buyer_id, "merchant_id": merchant_id, "lines": lines}
    ev.update(extra)
    return ev


def refund(refund_id: str, order_id: str, buyer_id: str, amount: int, at: str = "2026-01-20T00:00:00Z", *, event_id: str | None = None) -> dict:
    return {"type": "refund", "event_id": event_id or f"e-{refund_id}", "occurred_at": at, "refund_id": refund_id,
            "order_id": order_id, "buyer_id": buyer_id, "amount": amount}


def raw(ev: dict | bytes | str) -> bytes:
    if isinstance(ev, bytes):
        return ev
    if isinstance(ev, str):
        return ev.encode()
    return json.dumps(ev).encode()


def new_ledger(rules: Rules | None = None, store_url: str = "memory://", limits: Limits = DEFAULT_LIMITS) -> Ledger:
    """``LEDGER_CACHE_MB`` in the environment sets the default limits' cache
    bound (``LEDGER_CACHE_MB=0 pytest tests/test_properties.py``: everything
    evicted after every batch)."""
    if limits is DEFAULT_LIMITS:
        limits = parse_limits(os.environ)
    ledger = Ledger(JournalStore(store_url), limits=limits)
    ledger.adopt_rules(rules or Rules())
    return ledger


def feed(ledger: Ledger, events: Iterable[dict | bytes | str]):
    """Ingest events (dicts, JSON text or raw bytes) as lines of a file 'test'."""
    return ledger.ingest((raw(e), Source(file="test", line=i)) for i, e in enumerate(events, 1))


def run(events: Iterable[dict | bytes | str], rules: Rules | None = None) -> Ledger:
    ledger = new_ledger(rules)
    feed(ledger, events)
    return ledger


def payout(ledger: Ledger, as_of: str):
    """A payout across the ledger's store (the treasury journal)."""
    return Books(ledger.store.store).payout(as_of)


def adjust(ledger: Ledger, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str):
    return Books(ledger.store.store).adjust(promoter_id, currency, amount_minor, reason, actor)


def balances(ledger: Ledger) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(promoter, currency) → (pending, payable, paid) over every journal of the
    ledger's store (the payouts projection), zero rows included."""
    return {k: tuple(v) for k, v in sorted(Books(ledger.store.store).balances().items())}


def _row(ledger: Ledger, promoter: str, currency: str) -> tuple[int, int, int]:
    return balances(ledger).get((promoter, currency), (0, 0, 0))


def pending(ledger: Ledger, promoter: str, currency: str = "CNY") -> int:
    return _row(ledger, promoter, currency)[0]


def payable(ledger: Ledger, promoter: str, currency: str = "CNY") -> int:
    return _row(ledger, promoter, currency)[1]


def paid(ledger: Ledger, promoter: str, currency: str = "CNY") -> int:
    return _row(ledger, promoter, currency)[2]


def all_records(ledger: Ledger):
    """Every record of the ledger's store: (journal, position, record)."""
    return Books(ledger.store.store).records()


def dead_reasons(ledger: Ledger) -> list[str]:
    from projections.readmodels import dead_letters

    return [d.reason for d in dead_letters(ledger.store.store).items]


def kill_by_progress(cmd: list[str], segments: Callable[[], int], rng: random.Random, rounds: int = 4,
                     env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` ``rounds`` times in its own process group and SIGKILL the
    group once ``segments()`` (segments stored) passes the last round's by
    3–12, then a random moment later: progress decides where a kill lands,
    not the machine's speed. The number of kills (a run may finish first)."""
    kills = 0
    for _ in range(rounds):
        target = segments() + rng.randint(3, 12)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        while proc.poll() is None and segments() < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills
