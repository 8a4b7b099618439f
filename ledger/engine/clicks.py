"""Buyers' clicks: the known-share clicks of each buyer, sorted, and the clicks
parked until their share is known (SPEC §3).

A buyer's row keeps the recent clicks; when it is written, the clicks dated
before the watermark (the latest click or order instant) minus the longest
attribution window minus ``limits.late_slack_us`` (in whole
``limits.evict_bucket_us`` buckets) move to a cold row of that buyer. A row so
stays the size of the buyer's recent activity, not of their history. The cold
clicks come back before any decision that could need them (``for_order``,
``add``, ``all_of``), so this changes cost, never results.

A cold row holds the clicks of one ``limits.evict_bucket_us`` bucket of event
time (or fewer) and is keyed by its latest click. A late order under a windowed
model so reads, and never rewrites, only the rows that can hold a click inside
its window: a range scan of its window plus one bucket. Under
``customer_lock`` (in any rules version) a binding depends on every earlier
click, so a reach behind the boundary brings all of them back into the row.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from ledger.attribution import ClickRef, last_binding_start
from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.state import BuyerRow, JournalMeta, Params, ParkedClick
from ledger.engine.tables import StateCache, Table
from ledger.limits import Limits
from ledger.statestore import prefixed, sort_key, text

_decode_cold = decoder(list[ClickRef])
_decode_parked = decoder(list[ParkedClick])


class ClickIndex:
    def __init__(self, cache: StateCache, meta: JournalMeta, limits: Limits, params: list[Params],
                 buyers: Table[str, BuyerRow]) -> None:
        """``params``: the engine's rules versions (the list itself, kept current);
        ``buyers``: the buyers' rows (shared with the order book)."""
        self.limits = limits
        self._cache = cache
        self._meta = meta
        self._params = params
        self.buyers = buyers
        self.cold = cache.sorted_space(spaces.COLD_CLICKS)  # prefixed(buyer) + sort_key(its latest click) → [ClickRef]
        self.parked = cache.table(spaces.PARKED_CLICKS, id_key, encode, decoder(list[ParkedClick]), keep=False)
        cache.before_flush(self._trim_written)

    # ------------------------------------------------------------- parking
    def park(self, share_id: str, buyer_id: str, click: ClickRef) -> None:
        waiting = (self.parked.get(share_id) or []) if self._meta.parked_clicks else []
        waiting.append(ParkedClick(buyer_id, click))
        self.parked.put(share_id, waiting)
        self._meta.parked_clicks += 1

    def unpark(self, share_id: str) -> list[ParkedClick]:
        """The clicks that waited for ``share_id``, now known."""
        if not self._meta.parked_clicks:
            return []  # none parked: no lookup (the journal's row counts them)
        waiting = self.parked.get(share_id)
        if not waiting:
            return []
        self.parked.delete(share_id)
        self._meta.parked_clicks -= len(waiting)
        return waiting

    def parked_count(self) -> int:
        return self._meta.parked_clicks

    def parked_of(self, buyer_id: str) -> list[tuple[str, ClickRef]]:
        """(share_id, click) of one buyer's parked clicks, by share, as stored
        (read only; a scan of the parked clicks, which wait for late shares)."""
        space = bytes([spaces.PARKED_CLICKS])
        rows = self._cache.reader.scan(self._cache.journal, space, bytes([spaces.PARKED_CLICKS + 1]))
        return [(text(key[1:]), parked.click) for key, value in rows for parked in _decode_parked(value)
                if parked.buyer_id == buyer_id]

    # -------------------------------------------------------------- clicks
    def observe(self, instant_us: int) -> None:
        """Advance the watermark (clicks and orders both do)."""
        meta = self._meta
        if meta.watermark_us is None or instant_us > meta.watermark_us:
            meta.watermark_us = instant_us

    def add(self, buyer_id: str, ref: ClickRef) -> None:
        """A click whose share is known."""
        row = self.buyers.get(buyer_id)
        if row is None:
            row = BuyerRow()
        spilled = row.spilled_until
        if spilled is not None and ref.occurred_us <= spilled[0] and (ref.occurred_us, ref.event_id) <= spilled \
                and self._any_lock():
            # Under customer_lock a late click rewrites the bindings after it.
            # Otherwise it simply joins the recent clicks: a decision reaching
            # back to it finds it there, and the next spill moves it to a cold row.
            self._unspill(buyer_id, row)
        insort(row.clicks, ref)
        self.buyers.put(buyer_id, row)
        self.observe(ref.occurred_us)

    def for_order(self, buyer_id: str, order_us: int, params: Params) -> list[ClickRef]:
        """The buyer's clicks, complete for deciding an order at ``order_us``."""
        row = self.buyers.get(buyer_id)
        if row is None:
            return []
        if row.spilled_until is not None:
            lock = params.model == "customer_lock"
            earliest_us = order_us if lock else order_us - params.window_us
            if earliest_us <= row.spilled_until[0] or (lock and (params.lock_us not in row.locks or params.scope != "any")):
                if not lock and not self._any_lock():
                    return sorted(row.clicks + self._cold_between(buyer_id, earliest_us, order_us))
                self._unspill(buyer_id, row)
                self.buyers.put(buyer_id, row)
        return row.clicks

    def all_of(self, buyer_id: str) -> list[ClickRef]:
        """All of a buyer's known-share clicks, sorted (read only: nothing is written)."""
        row = self.buyers.get(buyer_id)
        if row is None:
            return []
        if row.spilled_until is None:
            return list(row.clicks)
        return sorted(row.clicks + self._cold_of(buyer_id)[1])

    # ------------------------------------------------------------ spilling
    def _trim_written(self) -> None:
        """Before a flush: move each written buyer's old clicks to a cold row."""
        watermark_us = self._meta.watermark_us
        if watermark_us is None:
            return
        limits = self.limits
        params = self._params
        if any(p.model == "customer_lock" and p.scope != "any" for p in params):
            # One binding history per (buyer, merchant) (SPEC §14): the binding
            # start kept for the buyer is not each merchant's; keep every click.
            return
        window_us = max((p.window_us for p in params if p.model != "customer_lock"), default=0)
        cutoff_us = (watermark_us - window_us - limits.late_slack_us) // limits.evict_bucket_us * limits.evict_bucket_us
        locks = sorted({p.lock_us for p in params if p.model == "customer_lock"})
        least = max(1, limits.cold_clicks_min)
        for buyer_id in list(self.buyers.dirty_keys()):
            row = self.buyers.get(buyer_id)
            if row is None or len(row.clicks) < least:
                continue
            clicks = row.clicks
            if clicks[least - 1].occurred_us < cutoff_us:  # at least `least` clicks are old
                self._spill(buyer_id, row, cutoff_us, locks)

    def _spill(self, buyer_id: str, row: BuyerRow, cutoff_us: int, locks: list[int]) -> None:
        """Move one buyer's clicks before ``cutoff_us`` to new cold rows, one
        per bucket of event time."""
        if row.spilled_until is not None and any(lock not in row.locks for lock in locks):
            self._unspill(buyer_id, row)  # the kept starts were for other lock periods
        clicks = row.clicks
        n = bisect_left(clicks, (cutoff_us,))  # first click at or after cutoff_us
        before = clicks[:n]
        last = before[-1]
        if locks:
            # customer_lock: the last binding start before the boundary stays (per lock period).
            # (never None: ``before`` holds at least one click)
            kept = sorted({b for lock in locks if (b := last_binding_start(before, lock)) is not None})
            if len(kept) > 1 and any(last_binding_start(kept, lock) != last_binding_start(before, lock) for lock in locks):
                return  # rules with several lock periods disagree on what to keep: keep it all
            before = [c for c in before if c not in kept]
            if not before:
                return
            row.clicks = kept + clicks[n:]
        else:
            row.clicks = clicks[n:]
        bucket_us = self.limits.evict_bucket_us
        start = 0
        for i in range(1, len(before) + 1):
            if i == len(before) or before[i].occurred_us // bucket_us != before[start].occurred_us // bucket_us:
                group = before[start:i]
                self.cold.put(prefixed(buyer_id) + sort_key(group[-1].occurred_us, group[-1].event_id), encode(group))
                row.cold_rows += 1
                start = i
        boundary = (last.occurred_us, last.event_id)
        if row.spilled_until is None or boundary > row.spilled_until:
            row.spilled_until = boundary
        row.locks = tuple(locks)

    def cold_of(self, buyer_id: str) -> list[ClickRef]:
        """The buyer's clicks in cold rows (read only)."""
        return self._cold_of(buyer_id)[1]

    def _cold_of(self, buyer_id: str) -> tuple[list[bytes], list[ClickRef]]:
        """The keys of a buyer's cold rows and the clicks in them."""
        lo = prefixed(buyer_id)
        keys, clicks = [], []
        for key, value in self.cold.scan(lo, lo + b"\xff"):
            keys.append(key)
            clicks.extend(_decode_cold(value))
        return keys, clicks

    def _unspill(self, buyer_id: str, row: BuyerRow) -> None:
        """Bring all of a buyer's cold clicks back into its row (the caller writes it)."""
        keys, loaded = self._cold_of(buyer_id)
        for key in keys:
            self.cold.delete(key)
        row.spilled_until = None
        row.cold_rows = 0
        row.locks = ()
        if loaded:
            row.clicks = sorted(row.clicks + loaded)

    def _cold_between(self, buyer_id: str, lo_us: int, hi_us: int) -> list[ClickRef]:
        """The buyer's cold clicks in the rows that can hold one dated in
        [lo_us, hi_us] (read only). A row spans at most one bucket, so its
        latest click is in [lo_us, hi_us + bucket) when it holds one."""
        prefix = prefixed(buyer_id)
        rows = self.cold.scan(prefix + sort_key(lo_us, ""), prefix + sort_key(hi_us + self.limits.evict_bucket_us, ""))
        return [click for _, value in rows for click in _decode_cold(value)]

    def _any_lock(self) -> bool:
        return any(p.model == "customer_lock" for p in self._params)

