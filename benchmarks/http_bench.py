"""HTTP read benchmark: GET /v1/payouts (first page) and a statement with
100,000 promoters in the store, measured with wrk from this machine.

    python -m benchmarks.http_bench [--promoters 100000] [--seconds 10] [--connections 16]

Needs Debian's ``wrk``. Prints requests/s and the p50/p90/p99 latencies wrk reports.
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
import time

from devkit.broker import free_port, wait_for_port

TOKEN = "bench-token"


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
    url = f"sqlite:///{path}"
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    subprocess.run([exe, "--store", url, "ingest", events], check=True, capture_output=True)
    subprocess.run([exe, "--store", url, "settle", "--as-of", "2026-02-10T00:00:00Z"], check=True, capture_output=True)
    subprocess.run([exe, "--store", url, "project"], check=True, capture_output=True)
    return url


def wrk(url: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {TOKEN}", url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p50_ms": ms("50"), "p90_ms": ms("90"), "p99_ms": ms("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--promoters", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ledger-http-bench-") as tmp:
        started = time.monotonic()
        url = build_store(os.path.join(tmp, "ledger.db"), args.promoters)
        print(f"store with {args.promoters:,} promoters built in {time.monotonic() - started:.1f}s")
        tokens = os.path.join(tmp, "tokens.toml")
        with open(tokens, "w") as f:
            f.write(f'[[tokens]]\nname = "bench"\nrole = "auditor"\nsha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n')
        port = free_port()
        exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
        server = subprocess.Popen([exe, "--store", url, "serve", "--port", str(port), "--tokens", tokens,
                                   "--workers", str(args.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for_port("127.0.0.1", port, 120)
            base = f"http://127.0.0.1:{port}"
            import urllib.request
            req = urllib.request.Request(f"{base}/v1/payouts?limit=1", headers={"Authorization": f"Bearer {TOKEN}"})
            deadline = time.monotonic() + 120
            while True:  # every worker loads its cache at start
                try:
                    urllib.request.urlopen(req, timeout=60).read()
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
            results = {}
            for name, path in (("payouts first page (1000 rows)", "/v1/payouts"),
                               ("payouts first page (100 rows)", "/v1/payouts?limit=100"),
                               ("statement", "/v1/promoters/promoter-004242/statement")):
                results[name] = wrk(base + path, args.seconds, args.connections)
            print(f"{'endpoint':<34} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'non-2xx':>8}")
            for name, r in results.items():
                print(f"{name:<34} {r['requests_per_s']:>8.0f} {r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['non_2xx']:>8}")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
