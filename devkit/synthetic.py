"""A seeded, realistic synthetic event stream (demo, benchmarks, tests).

Promoters share links and re-share each other's (a network with uplines),
buyers click and order (several lines, two currencies, discounts, per-line
rates), some orders are refunded in part or in full, a few events arrive late
or twice, and a few lines are malformed. Same seed and size, same bytes.
With ``rules14`` (SPEC §14/§15, issue 20; off by default so that the default
stream stays byte for byte what it was): shares name a merchant and often a
product, lines name products from the same pool, and orders are shipped and
received (some never shipped, some received late, a few fulfillments twice).
Streams in bounded memory: O(promoters + buffer), not O(events).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import orjson

from schemas.timestamps import format_timestamp_us

BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MINUTE_US = 60_000_000
DEMO_RULES = str(Path(__file__).resolve().parent / "demo_rules.toml")  # the demo's rules: §14/§15 on
PRODUCTS = 400  # rules14: the product pool shares and lines draw from
MALFORMED = (
    b'{"type": "click", "event_id": ',
    b'{"type": "gift", "event_id": "x-gift", "occurred_at": "2026-01-01T00:00:00Z"}',
    b'{"type": "order", "event_id": "x-bad-ts", "occurred_at": "2026-02-30T00:00:00Z"}',
    b'[1, 2, 3]',
    b'{"type": "refund", "event_id": "x-neg", "occurred_at": "2026-01-05T00:00:00Z", '
    b'"refund_id": "r", "order_id": "o", "buyer_id": "b", "amount": -5}',
    b'\xff\xfe not utf-8',
)


def _ts(rng: random.Random, instant_us: int) -> str:
    """The same instant written in UTC or in China time, as services do."""
    if rng.random() < 0.3:
        text = format_timestamp_us(instant_us + 8 * 3600 * 1_000_000)
        return text[:-1] + "+08:00"
    return format_timestamp_us(instant_us)


def generate(events: int, seed: int = 7, *, malformed_rate: float = 0.001, duplicate_rate: float = 0.002,
             promoters: int | None = None, buyers: int | None = None, rules14: bool = False) -> Iterator[bytes]:
    """Yield about ``events`` JSON lines (bytes, no newline). By default the
    promoters and buyers grow with ``events``; fixing them gives a steady
    programme whose history grows while its working set does not."""
    rng = random.Random(seed)
    n_promoters = promoters if promoters is not None else max(3, events // 200)
    n_buyers = buyers if buyers is not None else max(5, events // 8)
    shares: list[tuple[str, str]] = []  # (share_id, promoter_id)
    buffer: list[bytes] = []  # small reorder buffer: late arrivals
    emitted = 0

    def emit(obj: dict) -> Iterator[bytes]:
        nonlocal emitted
        line = orjson.dumps(obj)
        buffer.append(line)
        if rng.random() < duplicate_rate:
            buffer.append(line)
        while len(buffer) > 32:
            emitted += 1
            yield buffer.pop(rng.randrange(len(buffer)) if rng.random() < 0.05 else 0)
        if rng.random() < malformed_rate:
            emitted += 1
            yield MALFORMED[rng.randrange(len(MALFORMED))]

    clock = BASE_US
    for p in range(n_promoters):
        clock += rng.randrange(1, 5) * MINUTE_US
        share_id = f"sh{p}"
        share = {"type": "share", "event_id": f"e-sh{p}", "occurred_at": _ts(rng, clock),
                 "share_id": share_id, "promoter_id": f"p{p}", "target": f"https://shop.example/item/{rng.randrange(1000)}"}
        if shares and rng.random() < 0.6:
            share["parent_share_id"] = shares[rng.randrange(len(shares))][0]
        if rules14:
            if rng.random() < 0.7:  # a shop's promoter (WeChat 推客 links are per shop or product)
                share["merchant_id"] = f"m{rng.randrange(50)}"
                if rng.random() < 0.5:
                    share["product_id"] = f"pr{rng.randrange(PRODUCTS)}"
        shares.append((share_id, f"p{p}"))
        yield from emit(share)
    n = 0
    while emitted < events:
        n += 1
        clock += rng.randrange(0, 3) * MINUTE_US + rng.randrange(60) * 1_000_000
        buyer = f"b{rng.randrange(n_buyers)}"
        if rng.random() < 0.02:
            buyer = shares[rng.randrange(len(shares))][1]  # a promoter buying
        share_id = shares[rng.randrange(len(shares))][0]
        click_us = clock - rng.randrange(0, 10 * 24 * 60) * MINUTE_US
        yield from emit({"type": "click", "event_id": f"e-c{n}", "occurred_at": _ts(rng, click_us),
                         "buyer_id": buyer, "share_id": share_id})
        if rng.random() < 0.4:
            continue
        currency = "CNY" if rng.random() < 0.9 else "HKD"
        lines = []
        for k in range(rng.choice((1, 1, 1, 2, 3))):
            qty = rng.choice((1, 1, 2, 3))
            price = rng.randrange(100, 50_000)
            line = {"sku": f"sku{rng.randrange(5000)}", "quantity": qty, "unit_price": price}
            if rng.random() < 0.2:
                line["discount"] = rng.randrange(0, qty * price // 4 + 1)
            if rng.random() < 0.1:
                line["level1_rate_bp"] = rng.choice((0, 800, 2500, 3000))
            if rules14 and rng.random() < 0.6:
                line["product_id"] = f"pr{rng.randrange(PRODUCTS)}"
            lines.append(line)
        order = {"type": "order", "event_id": f"e-o{n}", "occurred_at": _ts(rng, clock),
                 "order_id": f"o{n}", "buyer_id": buyer, "merchant_id": f"m{rng.randrange(50)}",
                 "currency": currency, "shipping": rng.choice((0, 0, 600, 1000)), "lines": lines}
        yield from emit(order)
        if rng.random() < 0.12:
            total = sum(x["quantity"] * x["unit_price"] - x.get("discount", 0) for x in lines)
            amount = total if rng.random() < 0.4 else max(1, total // rng.choice((2, 3, 4)))
            if amount > 0:
                refund_us = clock + rng.randrange(1, 14 * 24 * 60) * MINUTE_US
                yield from emit({"type": "refund", "event_id": f"e-r{n}", "occurred_at": _ts(rng, refund_us),
                                 "refund_id": f"r{n}", "order_id": f"o{n}", "buyer_id": buyer, "amount": amount})
        if rules14 and rng.random() < 0.85:  # the rest are never shipped
            shipped_us = clock + rng.randrange(1, 3 * 24 * 60) * MINUTE_US
            for k in range(2 if rng.random() < 0.03 else 1):  # now and then the carrier reports twice
                yield from emit({"type": "fulfillment", "event_id": f"e-fs{n}-{k}", "occurred_at": _ts(rng, shipped_us + k * MINUTE_US),
                                 "order_id": f"o{n}", "buyer_id": buyer, "stage": "shipped"})
            if rng.random() < 0.7:  # confirmed by the buyer, some after auto_receive_after (10d) would have
                received_us = shipped_us + rng.randrange(1, (14 if rng.random() < 0.2 else 6) * 24 * 60) * MINUTE_US
                yield from emit({"type": "fulfillment", "event_id": f"e-fr{n}", "occurred_at": _ts(rng, received_us),
                                 "order_id": f"o{n}", "buyer_id": buyer, "stage": "received"})
    for line in buffer:
        yield line


def write_jsonl(path: str, events: int, seed: int = 7, *, rules14: bool = False) -> int:
    count = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for line in generate(events, seed, rules14=rules14):
            f.write(line + b"\n")
            count += 1
    return count
