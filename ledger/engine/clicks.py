"""Buyers' clicks: the known-share clicks of each buyer, sorted, and the clicks
parked until their share is known (SPEC §3).

Old clicks leave memory: once more than ``limits.resident_clicks_max`` are
resident, the clicks dated before the watermark (the latest click or order
instant) minus the longest attribution window minus ``limits.late_slack_us``
move to the spill (``ledger.engine.click_spill``) at the end of a batch, in
whole ``limits.evict_bucket_us`` buckets. A buyer's clicks come back before any
decision that could need them (``for_order``, ``add``, ``all_of``), so spilling
changes memory, never results.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from sys import intern

from ledger.attribution import ClickRef, last_binding_start
from ledger.engine.click_spill import BuyerClicks, ClickSpill
from ledger.engine.state import Params
from ledger.invariants import require
from ledger.limits import Limits
from ledger.network import ShareRef


class Buyer:
    __slots__ = ("clicks", "spilled_until")

    def __init__(self) -> None:
        self.clicks: list[ClickRef] = []  # resident known-share clicks, sorted
        # (occurred_us, event_id) ≥ every click of this buyer in the spill, or None.
        # Resident clicks after it, plus the last binding start before it for each
        # customer_lock period, decide exactly what all the clicks would decide
        # for any order dated after it.
        self.spilled_until: tuple[int, str] | None = None


class ClickIndex:
    def __init__(self, limits: Limits, shares: dict[str, ShareRef]) -> None:
        """``shares``: the network's known shares; a reloaded click takes its
        share's own share_id string (one copy per share, not one per click)."""
        self.limits = limits
        self._shares = shares
        self.buyers: dict[str, Buyer] = {}
        self.parked: dict[str, list[tuple[str, ClickRef]]] = {}  # share_id → [(buyer_id, click)]
        self.spill = ClickSpill()
        self.resident = 0
        self.watermark_us: int | None = None  # latest click or order instant
        self._buckets: dict[int, set[str]] = {}  # bucket → buyers with clicks dated in it

    # ------------------------------------------------------------- parking
    def park(self, share_id: str, buyer_id: str, click: ClickRef) -> None:
        self.parked.setdefault(share_id, []).append((buyer_id, click))

    def unpark(self, share_id: str) -> list[tuple[str, ClickRef]]:
        """The clicks that waited for ``share_id``, now known."""
        return self.parked.pop(share_id, [])

    def parked_count(self) -> int:
        return sum(len(v) for v in self.parked.values())

    def parked_of(self, buyer_id: str) -> list[tuple[str, ClickRef]]:
        """(share_id, click) of one buyer's parked clicks, by share."""
        return [(share_id, ref) for share_id, items in sorted(self.parked.items()) for b, ref in items if b == buyer_id]

    # -------------------------------------------------------------- clicks
    def observe(self, instant_us: int) -> None:
        """Advance the watermark (clicks and orders both do)."""
        if self.watermark_us is None or instant_us > self.watermark_us:
            self.watermark_us = instant_us

    def add(self, buyer_id: str, ref: ClickRef) -> None:
        """A click whose share is known."""
        buyer_id = intern(buyer_id)  # the buckets hold the one copy, not one per click
        buyer = self.buyers.get(buyer_id)
        if buyer is None:
            buyer = self.buyers[buyer_id] = Buyer()
        spilled = buyer.spilled_until
        if spilled is not None and ref.occurred_us <= spilled[0] and (ref.occurred_us, ref.event_id) <= spilled:
            self._unspill(buyer_id, buyer)  # a late click rewrites the history before the boundary
        insort(buyer.clicks, ref)
        self.resident += 1
        self.observe(ref.occurred_us)
        bucket_key = ref.occurred_us // self.limits.evict_bucket_us
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = set()
        bucket.add(buyer_id)

    def for_order(self, buyer_id: str, order_us: int, params: Params) -> list[ClickRef]:
        """The buyer's clicks, complete for deciding an order at ``order_us``."""
        buyer = self.buyers.get(buyer_id)
        if buyer is None:
            return []
        if buyer.spilled_until is not None:
            earliest_us = order_us if params.model == "customer_lock" else order_us - params.window_us
            if earliest_us <= buyer.spilled_until[0]:
                self._unspill(buyer_id, buyer)
        return buyer.clicks

    def all_of(self, buyer_id: str) -> list[ClickRef]:
        """All of a buyer's known-share clicks, sorted."""
        buyer = self.buyers.get(buyer_id)
        if buyer is None:
            return []
        if buyer.spilled_until is not None:
            self._unspill(buyer_id, buyer)
        return buyer.clicks

    def on_new_lock_period(self) -> None:
        """Spilled buyers kept the last binding start for the old lock periods only."""
        for buyer_id, buyer in self.buyers.items():
            if buyer.spilled_until is not None:
                self._unspill(buyer_id, buyer)

    # ------------------------------------------------------------ spilling
    def spill_old(self, params: list[Params]) -> None:
        """Move clicks older than the attribution horizon out of memory."""
        limits = self.limits
        if self.resident <= limits.resident_clicks_max or self.watermark_us is None:
            return
        window_us = max((p.window_us for p in params if p.model != "customer_lock"), default=0)
        cutoff_bucket = (self.watermark_us - window_us - limits.late_slack_us) // limits.evict_bucket_us
        old = [b for b in self._buckets if b < cutoff_bucket]
        if not old:
            return
        cutoff_us = cutoff_bucket * limits.evict_bucket_us
        locks = sorted({p.lock_us for p in params if p.model == "customer_lock"})
        batch: list[BuyerClicks] = []
        buyers = set().union(*(self._buckets.pop(bucket) for bucket in old))
        spilled = 0
        for buyer_id in buyers:
            spilled += self._spill_buyer(buyer_id, cutoff_us, locks, batch)
        self.spill.put(batch)
        self.resident -= spilled
        require(self.resident >= 0 and self.spill.count >= spilled, "click counts out of step with the spill")

    def _spill_buyer(self, buyer_id: str, cutoff_us: int, locks: list[int], batch: list[BuyerClicks]) -> int:
        """Move one buyer's clicks before ``cutoff_us`` into ``batch``; return how many."""
        buyer = self.buyers[buyer_id]
        clicks = buyer.clicks
        n = bisect_left(clicks, (cutoff_us,))  # first click at or after cutoff_us
        if n == 0:
            return 0
        before = clicks[:n] if n < len(clicks) else clicks
        last = before[-1]
        if locks:
            # customer_lock: the last binding start before the boundary stays (per lock period).
            kept = sorted({last_binding_start(before, lock) for lock in locks})
            if len(kept) > 1 and any(last_binding_start(kept, lock) != last_binding_start(before, lock) for lock in locks):
                return 0  # rules with several lock periods disagree on what to keep: keep it all
            before = [c for c in before if c not in kept]
            if not before:
                return 0
            buyer.clicks = kept + clicks[n:]
        else:
            buyer.clicks = clicks[n:] if n < len(clicks) else []
        batch.append((buyer_id, before))
        boundary = (last.occurred_us, last.event_id)
        if buyer.spilled_until is None or boundary > buyer.spilled_until:
            buyer.spilled_until = boundary
        return len(before)

    def _unspill(self, buyer_id: str, buyer: Buyer) -> None:
        """Bring all of a buyer's spilled clicks back into memory."""
        shares = self._shares
        loaded = [ClickRef(us, event_id, shares[share_id].share_id) for us, event_id, share_id in self.spill.take(buyer_id)]
        buyer.spilled_until = None
        if not loaded:
            return
        buyer.clicks = sorted(buyer.clicks + loaded)
        self.resident += len(loaded)
        self._buckets.setdefault(min(c.occurred_us for c in loaded) // self.limits.evict_bucket_us, set()).add(buyer_id)
