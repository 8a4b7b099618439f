"""The promoter network (SPEC §4): upline bindings from the set of known shares.

Bindings are a function of the known shares taken in (occurred_us, event_id)
order. Bindings are only ever added while walking that order, so the state just
before position i is "every binding whose share sorts before i": a late share
recomputes from its own position (or its earliest waiting child's), not from
scratch.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import NamedTuple

from ledger.invariants import require


class ShareRef(NamedTuple):
    occurred_us: int
    event_id: str
    share_id: str
    promoter_id: str
    parent_share_id: str | None


class Upline(NamedTuple):
    promoter_id: str  # Q, the level-2 beneficiary of P's orders
    since_us: int  # the binding share's occurred_us
    event_id: str  # the binding share's event_id
    share_id: str  # the binding share


class Network:
    def __init__(self) -> None:
        self.shares: dict[str, ShareRef] = {}
        self.upline: dict[str, Upline] = {}
        self._parented: list[tuple[int, str, str]] = []  # sorted (t, event_id, share_id)
        self._children: dict[str, list[str]] = {}
        # (t, event_id, promoter) of each binding, in the order made: the walk is
        # in share order, so this list is sorted and a recompute truncates it.
        self._bind_order: list[tuple[int, str, str]] = []

    def add(self, share: ShareRef, pending: tuple[int, str] | None = None) -> tuple[int, str] | None:
        """Make ``share`` known. Return the (instant, event_id) from which the
        bindings must be recomputed (``recompute_from``), or None when nothing
        can change. ``pending``: a recompute already owed from that key, which
        covers every later key (the no-op test below is only valid before it).
        """
        require(share.share_id not in self.shares, f"share {share.share_id!r} added twice")
        self.shares[share.share_id] = share
        candidates: list[ShareRef] = []
        if share.parent_share_id is not None:
            insort(self._parented, (share.occurred_us, share.event_id, share.share_id))
            self._children.setdefault(share.parent_share_id, []).append(share.share_id)
            if share.parent_share_id in self.shares:
                candidates.append(share)
        candidates += [self.shares[c] for c in self._children.get(share.share_id, ()) if c != share.share_id]
        start = pending
        for candidate in candidates:
            key = (candidate.occurred_us, candidate.event_id)
            if (start is None or key < start) and self._may_bind(candidate):
                start = key
        return start if start != pending else None

    def walk_length(self, start: tuple[int, str]) -> int:
        """How many parented shares a walk from ``start`` would visit."""
        return len(self._parented) - bisect_left(self._parented, start, key=lambda k: k[:2])

    def recompute_from(self, start: tuple[int, str]) -> set[str]:
        """Redo the walk from ``start``; return the promoters whose upline changed."""
        return self._recompute_from(start)

    def _may_bind(self, share: ShareRef) -> bool:
        """False when walking ``share`` is certainly a no-op: its promoter is
        already bound by an earlier share (bindings are only ever added while
        walking, so that binding exists at ``share``'s turn too)."""
        upline = self.upline.get(share.promoter_id)
        return upline is None or (upline.since_us, upline.event_id) > (share.occurred_us, share.event_id)

    def _recompute_from(self, start: tuple[int, str]) -> set[str]:
        cut = bisect_left(self._bind_order, start, key=lambda k: k[:2])
        before = {p: self.upline.pop(p) for _, _, p in self._bind_order[cut:]}
        del self._bind_order[cut:]
        i = bisect_left(self._parented, start, key=lambda k: k[:2])
        for _, _, share_id in self._parented[i:]:
            self._bind(self.shares[share_id])
        after = {p: self.upline[p] for _, _, p in self._bind_order[cut:]}
        return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}

    def _bind(self, share: ShareRef) -> None:
        parent = self.shares.get(share.parent_share_id)  # type: ignore[arg-type]
        if parent is None:
            return
        p, q = share.promoter_id, parent.promoter_id
        if p == q or p in self.upline or self.in_chain(p, q):
            return
        self.upline[p] = Upline(q, share.occurred_us, share.event_id, share.share_id)
        self._bind_order.append((share.occurred_us, share.event_id, p))

    def in_chain(self, promoter: str, start: str) -> bool:
        """Is ``promoter`` in ``start``'s upline chain (above start)?"""
        node = self.upline.get(start)
        steps = 0
        while node is not None:
            if node.promoter_id == promoter:
                return True
            node = self.upline.get(node.promoter_id)
            steps += 1
            require(steps <= len(self.upline), "cycle in the upline map")
        return False

    def level2_for(self, promoter: str, order_us: int) -> Upline | None:
        """P's upline if that binding's time ≤ the order's time."""
        upline = self.upline.get(promoter)
        if upline is not None and upline.since_us <= order_us:
            return upline
        return None
