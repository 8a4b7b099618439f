"""The promoter network (SPEC §4): upline bindings from the set of known shares.

Bindings are a function of the known shares taken in (occurred_us, event_id)
order. Bindings are only ever added while walking that order, so the state just
before position i is "every binding whose share sorts before i": a late share
recomputes from its own position (or its earliest waiting child's), not from
scratch. Everything lives in the journal's state tables: shares and uplines by
id, the shares with a parent and the bindings in walk order.
"""

from __future__ import annotations

from typing import Final

from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.state import ShareRef, Upline
from ledger.engine.tables import StateCache
from ledger.invariants import require
from ledger.statestore import sort_key, text

WALK_PAGE: Final = 10_000  # shares read per query while walking


class Network:
    def __init__(self, cache: StateCache) -> None:
        self.shares = cache.table(spaces.SHARES, id_key, encode, decoder(ShareRef))
        self.upline = cache.table(spaces.UPLINE, id_key, encode, decoder(Upline))
        self.children = cache.table(spaces.CHILDREN, id_key, encode, decoder(list[str]))
        self.parented = cache.sorted_space(spaces.PARENTED)  # sort_key(t, event_id) → share_id
        self.bind_order = cache.sorted_space(spaces.BIND_ORDER)  # sort_key(t, event_id) → promoter_id

    def add(self, share: ShareRef, pending: tuple[int, str] | None = None) -> tuple[int, str] | None:
        """Make ``share`` known. Return the (instant, event_id) from which the
        bindings must be recomputed (``recompute_from``), or None when nothing
        can change. ``pending``: a recompute already owed from that key, which
        covers every later key (the no-op test below is only valid before it).
        """
        require(self.shares.get(share.share_id) is None, f"share {share.share_id!r} added twice")
        self.shares.put(share.share_id, share)
        candidates: list[ShareRef] = []
        if share.parent_share_id is not None:
            self.parented.put(sort_key(share.occurred_us, share.event_id), id_key(share.share_id))
            siblings = self.children.get(share.parent_share_id) or []
            siblings.append(share.share_id)
            self.children.put(share.parent_share_id, siblings)
            if self.shares.get(share.parent_share_id) is not None:
                candidates.append(share)
        for child in self.children.get(share.share_id) or ():
            if child != share.share_id:
                candidates.append(self.shares.get(child))  # type: ignore[arg-type]
        start = pending
        for candidate in candidates:
            key = (candidate.occurred_us, candidate.event_id)
            if (start is None or key < start) and self._may_bind(candidate):
                start = key
        return start if start != pending else None

    def walk_exceeds(self, start: tuple[int, str], limit: int) -> bool:
        """Would a walk from ``start`` visit more than ``limit`` parented shares?"""
        return len(self.parented.scan(sort_key(*start), limit=limit + 1)) > limit

    def _may_bind(self, share: ShareRef) -> bool:
        """False when walking ``share`` is certainly a no-op: its promoter is
        already bound by an earlier share (bindings are only ever added while
        walking, so that binding exists at ``share``'s turn too)."""
        upline = self.upline.get(share.promoter_id)
        return upline is None or (upline.since_us, upline.event_id) > (share.occurred_us, share.event_id)

    def recompute_from(self, start: tuple[int, str]) -> set[str]:
        """Redo the walk from ``start``; return the promoters whose upline changed."""
        lo = sort_key(*start)
        before: dict[str, Upline | None] = {}
        for key, promoter in self.bind_order.scan(lo):
            p = text(promoter)
            before[p] = self.upline.get(p)
            self.upline.delete(p)
            self.bind_order.delete(key)
        bound: list[str] = []
        after = lo
        while True:
            page = self.parented.scan(after, limit=WALK_PAGE)
            for _, share_id in page:
                bound_promoter = self._bind(self.shares.get(text(share_id)))  # type: ignore[arg-type]
                if bound_promoter is not None:
                    bound.append(bound_promoter)
            if len(page) < WALK_PAGE:
                break
            after = page[-1][0] + b"\x00"  # just after the last key read
        after_ = {p: self.upline.get(p) for p in bound}
        return {p for p in before.keys() | after_.keys() if before.get(p) != after_.get(p)}

    def _bind(self, share: ShareRef) -> str | None:
        """Bind the share's promoter to its parent's, if the rules allow; return who was bound."""
        parent = self.shares.get(share.parent_share_id)  # type: ignore[arg-type]
        if parent is None:
            return None
        p, q = share.promoter_id, parent.promoter_id
        if p == q or self.upline.get(p) is not None or self.in_chain(p, q):
            return None
        self.upline.put(p, Upline(q, share.occurred_us, share.event_id, share.share_id))
        self.bind_order.put(sort_key(share.occurred_us, share.event_id), id_key(p))
        return p

    def in_chain(self, promoter: str, start: str) -> bool:
        """Is ``promoter`` in ``start``'s upline chain (above start)?"""
        node = self.upline.get(start)
        seen = {start}
        while node is not None:
            if node.promoter_id == promoter:
                return True
            require(node.promoter_id not in seen, "cycle in the upline map")
            seen.add(node.promoter_id)
            node = self.upline.get(node.promoter_id)
        return False
