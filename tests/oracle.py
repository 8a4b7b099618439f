"""A brute-force model of SPEC §3–§6 for the *final* state of a set of events.

Deliberately naive and independent of ledger/: it recomputes every order from
scratch with all events known, using datetime for time and plain loops for
everything. ``oracle_pending`` is valid only without settlement and for
non-conflicting events; ``HoldsModel`` adds settlement, payouts and SPEC §16's
holds, review and rejection, one step at a time, re-deciding from scratch.
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


def oracle_decisions(events: list[dict], rules) -> dict[str, dict]:
    """order_id → {buyer, currency, C, R, levels: [(promoter, level, amount before refunds)]}
    for every order among ``events``, decided from all of them (no settlement)."""
    shares = {e["share_id"]: e for e in events if e["type"] == "share"}
    clicks = [e for e in events if e["type"] == "click" and e["share_id"] in shares]
    orders = [e for e in events if e["type"] == "order"]
    refunds = [e for e in events if e["type"] == "refund"]

    upline = _upline_map(shares)

    out: dict[str, dict] = {}
    for o in orders:
        t = instant_us(o["occurred_at"])
        c_total = sum(line["quantity"] * line["unit_price"] - (line.get("discount") or 0) for line in o["lines"])
        r = sum(x["amount"] for x in refunds if x["order_id"] == o["order_id"])
        decision = {"buyer": o["buyer_id"], "currency": o.get("currency") or "CNY", "C": c_total, "R": r, "levels": []}
        out[o["order_id"]] = decision
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
        l1 = l2 = 0
        for line in o["lines"]:
            a = line["quantity"] * line["unit_price"] - (line.get("discount") or 0)
            r1 = line.get("level1_rate_bp")
            r2 = line.get("level2_rate_bp")
            r1 = min(rules.level1_rate_bp if r1 is None else r1, rules.level1_cap_bp)
            r2 = min(rules.level2_rate_bp if r2 is None else r2, rules.level2_cap_bp)
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
        if rules.self_referral == "deny":  # "review" pays as "allow" (SPEC §5)
            if o["buyer_id"] == p1:
                l1 = l2 = 0
            elif o["buyer_id"] == p2:
                l2 = 0
        decision["levels"] = [(p1, 1, l1)] + ([(p2, 2, l2)] if p2 is not None else [])
    return out


def after_refunds(amount: int, c_total: int, r: int) -> int:
    return amount * (c_total - r) // c_total if c_total else 0


def oracle_pending(events: list[dict], rules) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for d in oracle_decisions(events, rules).values():
        for promoter, _, amount in d["levels"]:
            key = (promoter, d["currency"])
            out[key] = out.get(key, 0) + after_refunds(amount, d["C"], d["R"])
    return out


class HoldsModel:
    """SPEC §7 and §16 by brute force: known events, then each command applied
    to a from-scratch decision of every order. Balances come out of the orders'
    states and the payouts, not out of transfers."""

    def __init__(self, rules) -> None:
        self.rules = rules
        self.events: list[dict] = []
        self.ids: set[str] = set()
        self.frozen: dict[str, dict] = {}  # settled orders: their decision at settlement
        self.holds: dict[str, int] = {}  # order_id → manual holds in force
        self.review: set[str] = set()
        self.approved: set[str] = set()
        self.rejected: set[str] = set()
        self.held_promoters: set[str] = set()
        self.paid: dict[tuple[str, str], int] = {}

    def add(self, event: dict) -> None:
        if event["event_id"] not in self.ids:
            self.ids.add(event["event_id"])
            self.events.append(event)

    def _now(self) -> dict[str, dict]:
        decided = oracle_decisions(self.events, self.rules)
        for order_id, frozen in self.frozen.items():  # refunds still count; beneficiaries and amounts are frozen
            decided[order_id] = {**frozen, "R": decided[order_id]["R"]}
        return decided

    def hold(self, kind: str, target: str) -> bool:
        """Whether the command succeeds (exit 0), and its effect."""
        if kind == "promoter":
            self.held_promoters.add(target)
            return True
        if target not in self._now() or target in self.frozen or target in self.rejected:
            return False
        self.holds[target] = self.holds.get(target, 0) + 1
        return True

    def release(self, kind: str, target: str) -> bool:
        if kind == "promoter":
            if target not in self.held_promoters:
                return False
            self.held_promoters.discard(target)
            return True
        if not self.holds.get(target) and target not in self.review:
            return False
        self.holds.pop(target, None)
        self.review.discard(target)
        self.approved.add(target)
        return True

    def reject(self, target: str) -> bool:
        if target not in self._now() or target in self.rejected:
            return False
        self.rejected.add(target)
        self.holds.pop(target, None)
        self.review.discard(target)
        return True

    def settle(self, as_of_us: int) -> None:
        lock = duration_us(self.rules.settlement_lock_period)
        orders = {e["order_id"]: e for e in self.events if e["type"] == "order"}
        for order_id, d in self._now().items():
            if order_id in self.frozen or self.holds.get(order_id) or order_id in self.review:
                continue
            if instant_us(orders[order_id]["occurred_at"]) + lock > as_of_us:
                continue
            if order_id not in self.rejected and order_id not in self.approved and self._reasons(d):
                self.review.add(order_id)
                continue
            self.frozen[order_id] = d

    def _reasons(self, d: dict) -> list[str]:
        reasons = []
        if self.rules.self_referral == "review" and any(p == d["buyer"] for p, _, _ in d["levels"]):
            reasons.append("self_referral")
        bound = self.rules.review_amount_over_minor
        if bound > 0 and sum(a for _, _, a in d["levels"]) > bound:
            reasons.append("amount_over")
        return reasons

    def balances(self) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for order_id, d in self._now().items():
            if order_id in self.rejected:
                continue
            for promoter, _, amount in d["levels"]:
                row = out.setdefault((promoter, d["currency"]), [0, 0, 0])
                row[1 if order_id in self.frozen else 0] += after_refunds(amount, d["C"], d["R"])
        for key, amount in self.paid.items():
            row = out.setdefault(key, [0, 0, 0])
            row[1] -= amount
            row[2] += amount
        return out

    def payout(self) -> None:
        for key, row in sorted(self.balances().items()):
            if row[1] > 0 and row[1] >= self.rules.min_payout_minor and key[0] not in self.held_promoters:
                self.paid[key] = self.paid.get(key, 0) + row[1]
# ---------------------------------------------------------------------------
# SPEC §14 (scope, commission groups) and §15 (the receipt clock), with settle
# commands anywhere in the delivery: a second model, as naive as the first.
# It replays a timeline (events as delivered, redeliveries included, and
# ("settle", as_of) commands): at each settle it decides from the events
# delivered so far which orders are due and freezes what they pay then; at the
# end every other order is computed from all events. Valid for
# non-conflicting events (unique business ids, refunds within C).


def _upline_map(shares: dict) -> dict[str, tuple[str, int]]:
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
    return upline


def _covers(scope: str, share: dict, order: dict, line: dict) -> bool:
    """SPEC §14, sentence by sentence."""
    if scope == "any":
        return True
    merchant_ok = share.get("merchant_id") is None or share.get("merchant_id") == order["merchant_id"]
    if scope == "merchant":
        return merchant_ok
    product = line.get("product_id") if line.get("product_id") is not None else line["sku"]
    return merchant_ok and (share.get("product_id") is None or share.get("product_id") == product)


def oracle_order_pays(known: list[dict], rules, o: dict) -> list[tuple[int, str, int]]:
    """(level, promoter, amount before refunds) of order ``o`` given the known
    events: per line its winner, per promoter a group with §5 on its own."""
    shares = {e["share_id"]: e for e in known if e["type"] == "share"}
    upline = _upline_map(shares)
    t = instant_us(o["occurred_at"])
    mine = sorted(((instant_us(c["occurred_at"]), c["event_id"], c) for c in known
                   if c["type"] == "click" and c["share_id"] in shares and c["buyer_id"] == o["buyer_id"]),
                  key=lambda x: (x[0], x[1]))
    winners = []  # per line: the winning click or None
    for line in o["lines"]:
        covering = [(ct, c) for ct, _, c in mine if _covers(rules.scope, shares[c["share_id"]], o, line)]
        winner = None
        if rules.model == "customer_lock":
            lock = duration_us(rules.attribution_lock_period)
            start = None
            for ct, c in covering:
                if ct > t:
                    break
                if start is None or ct >= start[0] + lock:
                    start = (ct, c)
            if start is not None and t < start[0] + lock:
                winner = start[1]
        else:
            window = duration_us(rules.window)
            cands = [c for ct, c in covering if t - window <= ct <= t]
            if cands:
                winner = cands[-1] if rules.model == "last_click" else cands[0]
        winners.append(winner)
    groups: dict[str, list[dict]] = {}
    for line, winner in zip(o["lines"], winners):
        if winner is not None:
            groups.setdefault(shares[winner["share_id"]]["promoter_id"], []).append(line)
    out = []
    for p1, lines in groups.items():
        p2 = upline[p1][0] if p1 in upline and upline[p1][1] <= t else None
        c_total = l1 = l2 = 0
        for line in lines:
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
        out.append((1, p1, l1))
        if p2 is not None:
            out.append((2, p2, l2))
    return out


def _order_c(o: dict) -> int:
    return sum(x["quantity"] * x["unit_price"] - (x.get("discount") or 0) for x in o["lines"])


def oracle_due(known: list[dict], rules, o: dict) -> int | None:
    """When ``o`` is due given the known events (SPEC §7, §15), or None."""
    t = instant_us(o["occurred_at"])
    if rules.clock == "order":
        return t + duration_us(rules.settlement_lock_period)
    rw = duration_us(rules.return_window)
    c_total = _order_c(o)
    r = sum(x["amount"] for x in known if x["type"] == "refund" and x["order_id"] == o["order_id"])
    fulfilled = [x for x in known if x["type"] == "fulfillment" and x["order_id"] == o["order_id"]
                 and x["buyer_id"] == o["buyer_id"]]
    received = [instant_us(x["occurred_at"]) for x in fulfilled if x["stage"] == "received"]
    shipped = [instant_us(x["occurred_at"]) for x in fulfilled if x["stage"] == "shipped"]
    terms = ([min(received)] if received else []) + ([min(shipped) + duration_us(rules.auto_receive_after)] if shipped else [])
    due = []
    if terms:
        due.append(max(t, min(terms)) + rw)
    if r == c_total:
        due.append(t + rw)
    return min(due) if due else None


def oracle_books(timeline: list, rules) -> dict[tuple[str, str], tuple[int, int]]:
    """(promoter, currency) → (pending, payable), non-zero rows only, after the
    timeline (event dicts and ("settle", as_of_us) commands; no payouts)."""
    known: dict[str, dict] = {}
    frozen: dict[str, list[tuple[int, str, int]]] = {}  # settled order → what it pays before refunds
    for item in timeline:
        if isinstance(item, tuple):
            as_of_us = item[1]
            events = list(known.values())
            for o in events:
                if o["type"] == "order" and o["order_id"] not in frozen:
                    due = oracle_due(events, rules, o)
                    if due is not None and due <= as_of_us:
                        frozen[o["order_id"]] = oracle_order_pays(events, rules, o)
        else:
            known.setdefault(item["event_id"], item)
    events = list(known.values())
    out: dict[tuple[str, str], list[int]] = {}
    for o in events:
        if o["type"] != "order":
            continue
        settled = o["order_id"] in frozen
        pays = frozen[o["order_id"]] if settled else oracle_order_pays(events, rules, o)
        c_total = _order_c(o)
        r = sum(x["amount"] for x in events if x["type"] == "refund" and x["order_id"] == o["order_id"])
        currency = o.get("currency") or "CNY"
        for _, promoter, amount in pays:
            now = amount * (c_total - r) // c_total if c_total else 0
            row = out.setdefault((promoter, currency), [0, 0])
            row[1 if settled else 0] += now
    return {k: (v[0], v[1]) for k, v in out.items() if v != [0, 0]}


class RulesHoldsModel(HoldsModel):
    """SPEC §16 over §14/§15: ``HoldsModel``'s commands, with each order's
    groups from ``oracle_order_pays`` (review over every group: the buyer as
    L1 or L2 of any, Σ of every group's L1 + L2 after caps and deny, before
    refunds) and its dueness from ``oracle_due`` (the order's own clock)."""

    def __init__(self, rules) -> None:
        super().__init__(rules)
        self.review_reasons: dict[str, list[str]] = {}  # order under review → its reasons when placed
        self.promoter_holds: dict[str, int] = {}

    def hold(self, kind: str, target: str) -> bool:
        ok = super().hold(kind, target)
        if ok and kind == "promoter":
            self.promoter_holds[target] = self.promoter_holds.get(target, 0) + 1
        return ok

    def release(self, kind: str, target: str) -> bool:
        ok = super().release(kind, target)
        if ok and kind == "promoter":
            self.promoter_holds.pop(target, None)
        return ok

    def in_force(self) -> list[tuple]:
        """(kind, id, reasons) of every hold in force, sorted (SPEC §16 `holds`)."""
        rows = [("order", o, ()) for o, n in self.holds.items() for _ in range(n)]
        rows += [("review", o, tuple(sorted(self.review_reasons[o]))) for o in self.review]
        rows += [("promoter", p, ()) for p, n in self.promoter_holds.items() for _ in range(n)]
        return sorted(rows)

    def _now(self) -> dict[str, dict]:
        orders = [e for e in self.events if e["type"] == "order"]
        refunds = [e for e in self.events if e["type"] == "refund"]
        out: dict[str, dict] = {}
        for o in orders:
            order_id = o["order_id"]
            r = sum(x["amount"] for x in refunds if x["order_id"] == order_id)
            if order_id in self.frozen:  # refunds still count; beneficiaries and amounts are frozen
                d = {**self.frozen[order_id], "R": r}
            else:
                levels = [(p, level, a) for level, p, a in oracle_order_pays(self.events, self.rules, o)]
                d = {"buyer": o["buyer_id"], "currency": o.get("currency") or "CNY", "C": _order_c(o), "R": r,
                     "levels": levels}
            d["due_us"] = oracle_due(self.events, self.rules, o)
            out[order_id] = d
        return out

    def settle(self, as_of_us: int) -> None:
        for order_id, d in self._now().items():
            if order_id in self.frozen or self.holds.get(order_id) or order_id in self.review:
                continue
            if d["due_us"] is None or d["due_us"] > as_of_us:
                continue
            if order_id not in self.rejected and order_id not in self.approved and self._reasons(d):
                self.review.add(order_id)
                self.review_reasons[order_id] = self._reasons(d)
                continue
            self.frozen[order_id] = d
