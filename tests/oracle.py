"""A brute-force model of SPEC §3–§6 for the *final* state of a set of events.

Deliberately naive and independent of ledger/: it recomputes every order from
scratch with all events known, using datetime for time and plain loops for
everything. Valid only without settlement and for non-conflicting events.
"""

from __future__ import annotations

from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def instant_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T").replace("Z", "+00:00"))
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def duration_us(text: str) -> int:
    return int(text[:-1]) * UNIT_S[text[-1]] * 1_000_000


def oracle_pending(events: list[dict], rules) -> dict[tuple[str, str], int]:
    shares = {e["share_id"]: e for e in events if e["type"] == "share"}
    clicks = [e for e in events if e["type"] == "click" and e["share_id"] in shares]
    orders = [e for e in events if e["type"] == "order"]
    refunds = [e for e in events if e["type"] == "refund"]

    upline: dict[str, tuple[str, int]] = {}
    for s in sorted(shares.values(), key=lambda s: (instant_us(s["occurred_at"]), s["event_id"])):
        parent = shares.get(s.get("parent_share_id") or "")
        if parent is None:
            continue
        p, q = s["promoter_id"], parent["promoter_id"]
        chain, node = set(), upline.get(q)
        while node is not None:
            chain.add(node[0])
            node = upline.get(node[0])
        if p != q and p not in upline and p not in chain:
            upline[p] = (q, instant_us(s["occurred_at"]))

    out: dict[tuple[str, str], int] = {}
    for o in orders:
        t = instant_us(o["occurred_at"])
        mine = sorted(
            ((instant_us(c["occurred_at"]), c["event_id"], c) for c in clicks if c["buyer_id"] == o["buyer_id"]),
            key=lambda x: (x[0], x[1]),
        )
        winner = None
        if rules.model == "customer_lock":
            lock = duration_us(rules.attribution_lock_period)
            start = None
            for ct, _, c in mine:
                if ct > t:
                    break
                if start is None or ct >= start[0] + lock:
                    start = (ct, c)
            if start is not None and t < start[0] + lock:
                winner = start[1]
        else:
            window = duration_us(rules.window)
            cands = [c for ct, _, c in mine if t - window <= ct <= t]
            if cands:
                winner = cands[-1] if rules.model == "last_click" else cands[0]
        if winner is None:
            continue
        p1 = shares[winner["share_id"]]["promoter_id"]
        p2 = upline[p1][0] if p1 in upline and upline[p1][1] <= t else None
        c_total = l1 = l2 = 0
        for line in o["lines"]:
            a = line["quantity"] * line["unit_price"] - (line.get("discount") or 0)
            r1 = line.get("level1_rate_bp")
            r2 = line.get("level2_rate_bp")
            r1 = min(rules.level1_rate_bp if r1 is None else r1, rules.level1_cap_bp)
            r2 = min(rules.level2_rate_bp if r2 is None else r2, rules.level2_cap_bp)
            c_total += a
            l1 += a * r1 // 10000
            l2 += a * r2 // 10000
        if p2 is None:
            l2 = 0
        k = c_total * rules.order_cap_bp // 10000
        if rules.order_cap_amount_minor is not None:
            k = min(k, rules.order_cap_amount_minor)
        if l1 + l2 > k:
            l2 = max(0, k - l1)
            l1 = min(l1, k)
        if rules.self_referral == "deny":
            if o["buyer_id"] == p1:
                l1 = l2 = 0
            elif o["buyer_id"] == p2:
                l2 = 0
        r = sum(x["amount"] for x in refunds if x["order_id"] == o["order_id"])
        currency = o.get("currency") or "CNY"
        for promoter, amount in ((p1, l1), (p2, l2)):
            if promoter is None:
                continue
            now = amount * (c_total - r) // c_total if c_total else 0
            out[(promoter, currency)] = out.get((promoter, currency), 0) + now
    return out
