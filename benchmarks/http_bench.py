"""HTTP read benchmark with 100,000 promoters in the store.

    python -m benchmarks.http_bench [--promoters 100000] [--seconds 10] [--connections 16]
                                    [--sizes 1000,100000] [--json FILE]

Two parts:

- wrk (Debian's ``wrk``) against the payouts page (``/``), a promoter's statement
  page, ``GET /v1/payouts`` and a statement over the API: requests/s and the
  p50/p90/p99 latencies wrk reports;
- every page and list, one request at a time (the median of 5), at each of
  ``--sizes`` promoters: its time and bytes, which should not grow with the store.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import statistics
import time
import urllib.request

from devkit.broker import free_port, wait_for_port

TOKEN = "bench-token"
PROMOTER_TOKEN = "bench-promoter-token"
HOT_PROMOTER = "promoter-000042"  # its statement page and /me are measured: a fifth of the orders are its


def build_store(path: str, promoters: int) -> str:
    """One share, one click and one order per promoter; settled."""
    events = os.path.join(os.path.dirname(path), "events.jsonl")
    with open(events, "w") as f:
        for i in range(promoters):
            day = 1 + i % 28
            f.write(json.dumps({"type": "share", "event_id": f"s{i}", "occurred_at": f"2026-01-{day:02d}T00:00:00Z",
                                "share_id": f"S{i}", "promoter_id": f"promoter-{i:06d}",
                                **({"parent_share_id": f"S{i // 2}"} if i else {})}) + "\n")
            f.write(json.dumps({"type": "click", "event_id": f"c{i}", "occurred_at": f"2026-01-{day:02d}T01:00:00Z",
                                "buyer_id": f"b{i}", "share_id": f"S{i}"}) + "\n")
            f.write(json.dumps({"type": "order", "event_id": f"o{i}", "occurred_at": f"2026-01-{day:02d}T02:00:00Z",
                                "order_id": f"O{i}", "buyer_id": f"b{i}", "merchant_id": "m",
                                "lines": [{"sku": "x", "quantity": 1, "unit_price": 1000 + i % 5000}]}) + "\n")
            if i % 5 == 0:  # the hot promoter's share brings a fifth as many orders again
                f.write(json.dumps({"type": "click", "event_id": f"hc{i}", "occurred_at": f"2026-01-{day:02d}T01:00:00Z",
                                    "buyer_id": f"h{i}", "share_id": "S42"}) + "\n")
                f.write(json.dumps({"type": "order", "event_id": f"ho{i}", "occurred_at": f"2026-01-{day:02d}T02:00:00Z",
                                    "order_id": f"H{i}", "buyer_id": f"h{i}", "merchant_id": "m",
                                    "lines": [{"sku": "x", "quantity": 1, "unit_price": 2000}]}) + "\n")
            if i % 100 == 0:  # a dead letter per 100 promoters (an order with no lines)
                f.write(json.dumps({"type": "order", "event_id": f"bad{i}", "occurred_at": f"2026-01-{day:02d}T03:00:00Z",
                                    "order_id": f"B{i}", "buyer_id": f"b{i}", "merchant_id": "m", "lines": [],
                                    "padding": "x" * 2000}) + "\n")
    url = f"sqlite:///{path}"
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    subprocess.run([exe, "--store", url, "ingest", events], check=True, capture_output=True)
    subprocess.run([exe, "--store", url, "settle", "--as-of", "2026-02-10T00:00:00Z"], check=True, capture_output=True)
    subprocess.run([exe, "--store", url, "project"], check=True, capture_output=True)
    return url


def wrk(url: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s",
                          "-H", f"Authorization: Bearer {TOKEN}", url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p50_ms": ms("50"), "p90_ms": ms("90"), "p99_ms": ms("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


PAGES = (  # (name, path, token): every page and list of the service
    ("payouts page /", "/", TOKEN),
    ("payouts page, currency", "/?currency=CNY", TOKEN),
    ("/payouts.csv", "/payouts.csv", TOKEN),
    ("statement page", f"/promoters/{HOT_PROMOTER}", TOKEN),
    ("/me", "/me", PROMOTER_TOKEN),
    ("order page", "/orders/O42", TOKEN),
    ("dead letters page", "/dead-letters", TOKEN),
    ("GET /v1/payouts", "/v1/payouts", TOKEN),
    ("GET /v1/payouts?as_of", "/v1/payouts?as_of=2026-12-31T00:00:00Z", TOKEN),
    ("GET /v1/me", "/v1/me", PROMOTER_TOKEN),
    ("API statement", f"/v1/promoters/{HOT_PROMOTER}/statement", TOKEN),
    ("merchant statement", "/v1/merchants/m/statement", TOKEN),
    ("GET /v1/dead-letters", "/v1/dead-letters", TOKEN),
    ("order explanation", "/v1/orders/O42/explanation", TOKEN),
    ("/metrics", "/metrics", TOKEN),
)
WRK = (("GET /v1/payouts", "/v1/payouts"), ("API statement", f"/v1/promoters/{HOT_PROMOTER}/statement"),
       ("statement page", f"/promoters/{HOT_PROMOTER}"), ("payouts page /", "/"))


def drained(base: str) -> None:
    """Wait until the server has answered what an earlier wrk run left queued."""
    deadline = time.monotonic() + 300
    while get(base, "/healthz", TOKEN)[2] > 0.1 and time.monotonic() < deadline:
        time.sleep(1)


def write_tokens(path: str) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    mine = hashlib.sha256(PROMOTER_TOKEN.encode()).hexdigest()
    with open(path, "w") as f:
        f.write(f'[[tokens]]\nname = "bench"\nrole = "auditor"\nsha256 = "{digest}"\n\n'
                f'[[tokens]]\nname = "bench-promoter"\nrole = "promoter"\nsha256 = "{mine}"\n'
                f'promoter_id = "{HOT_PROMOTER}"\n')


def get(base: str, path: str, token: str) -> tuple[int, int, float]:
    """(status, bytes, seconds) of one GET."""
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            size, status = len(r.read()), r.status
    except urllib.error.HTTPError as exc:
        size, status = len(exc.read()), exc.code
    return status, size, time.perf_counter() - started


def serve(url: str, tokens: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    server = subprocess.Popen([exe, "--store", url, "serve", "--port", str(port), "--tokens", tokens,
                               "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for_port("127.0.0.1", port, 120)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while get(base, "/v1/payouts?limit=1", TOKEN)[0] != 200:  # the first read catches the tables up
        assert time.monotonic() < deadline
        time.sleep(0.5)
    return server, base


def measure_pages(base: str) -> dict:
    results = {}
    for name, path, token in PAGES:
        get(base, path, token)  # warm
        runs = [get(base, path, token) for _ in range(5)]
        results[name] = {"status": runs[0][0], "bytes": runs[0][1], "ms": statistics.median(r[2] for r in runs) * 1000}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--promoters", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sizes", default="1000", help="store sizes (promoters) of the page table, besides --promoters")
    parser.add_argument("--store-dir", default=None, help="keep (and reuse) the built stores here")
    parser.add_argument("--json", default=None, metavar="FILE")
    parser.add_argument("--no-pages", action="store_true", help="wrk only, no page table")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    sizes = sorted({int(n) for n in args.sizes.split(",") if n} | {args.promoters})
    print(f"load average at start: {open('/proc/loadavg').read().strip()}")
    with tempfile.TemporaryDirectory(prefix="ledger-http-bench-") as tmp:
        root = args.store_dir or tmp
        os.makedirs(root, exist_ok=True)  # --store-dir may name a folder not made yet
        tokens = os.path.join(tmp, "tokens.toml")
        write_tokens(tokens)
        pages: dict[int, dict] = {}
        results = {}
        for size in sizes:
            path = os.path.join(root, f"ledger-{size}.db")
            url = f"sqlite:///{path}"
            if not os.path.exists(path):
                started = time.monotonic()
                url = build_store(path, size)
                print(f"store with {size:,} promoters built in {time.monotonic() - started:.1f}s")
            server, base = serve(url, tokens, args.workers)
            try:
                if not args.no_pages:
                    pages[size] = measure_pages(base)
                if size == args.promoters:
                    for name, route in WRK:
                        drained(base)
                        results[name] = wrk(base + route, args.seconds, args.connections)
            finally:
                server.terminate()
                server.wait()
        print(f"\nwrk, {args.promoters:,} promoters, {args.connections} connections, {args.seconds} s, "
              f"{args.workers} worker(s):")
        print(f"{'endpoint':<34} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'non-2xx':>8}")
        for name, r in results.items():
            print(f"{name:<34} {r['requests_per_s']:>8.0f} {r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['non_2xx']:>8}")
        if args.no_pages:
            sizes = []
        print("\nevery page, one request at a time (median of 5): ms and bytes per store size")
        print(f"{'page':<26}" + "".join(f" {f'{n:,} ms':>12} {f'{n:,} bytes':>14}" for n in sizes) + "  status")
        for name, _, _ in PAGES if sizes else ():
            print(f"{name:<26}" + "".join(f" {pages[n][name]['ms']:>12.1f} {pages[n][name]['bytes']:>14,}" for n in sizes)
                  + "  " + ",".join(str(pages[n][name]["status"]) for n in sizes))
        print(f"load average at end: {open('/proc/loadavg').read().strip()}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"wrk": results, "pages": pages}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
