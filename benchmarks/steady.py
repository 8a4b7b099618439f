"""Cost follows the work: a steady programme whose history grows, chunk by chunk.

    python -m benchmarks.steady [--chunks 10] [--chunk-events 200000] [--json out.json]

A steady stream (fixed promoters and buyers, constant daily volume: the
seeded synthetic generator with ``promoters``/``buyers`` fixed) is cut into
chunks of consecutive event time. Each chunk is ingested into one SQLite
store, then ``settle --as-of`` its last instant. After chunk 2 and after the
last chunk the driver times, each as its own process (peak RSS per process):
that chunk's ingest and settle, ``payouts --format json``, the first page of the ``statement`` of a
busy promoter, and ``explain`` of an order from the first chunk and of one
from the chunk just ingested. The ratio last/second is what the issue asks:
within 1.5× when cost follows the work and not the age of the ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from devkit.synthetic import generate

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
PROMOTERS = 2_000
BUYERS = 60_000
ORDER = re.compile(rb'"type":"order".*?"order_id":"([^"]+)"')
TIME = re.compile(rb'"occurred_at":"([^"]+)"')


def _timed(argv: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of one CLI process."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", EXE, *argv], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return seconds, peak_kib / 1024, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-events", type=int, default=200_000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.dir or tempfile.mkdtemp(prefix="steady-")
    store = f"sqlite:///{work}/steady.db"
    lines = generate(args.chunks * args.chunk_events, seed=11, promoters=PROMOTERS, buyers=BUYERS)
    first_order = None
    results = {}
    for chunk in range(1, args.chunks + 1):
        path = f"{work}/chunk{chunk}.jsonl"
        last_order = last_time = None
        with open(path, "wb") as f:
            for _, line in zip(range(args.chunk_events), lines):
                f.write(line + b"\n")
                if b'"type":"order"' in line:
                    m = ORDER.search(line)
                    if m:
                        last_order = m.group(1).decode()
                        first_order = first_order or last_order
                t = TIME.search(line)
                if t:
                    last_time = t.group(1).decode()
        row = {}
        row["ingest_s"], row["ingest_rss_mib"], _ = _timed(["--store", store, "ingest", path])
        row["settle_s"], row["settle_rss_mib"], _ = _timed(["--store", store, "settle", "--as-of", last_time])
        # The projection process folds what was just committed (in production it follows continuously).
        row["project_s"], row["project_rss_mib"], _ = _timed(["--store", store, "project"])
        if chunk in (2, args.chunks):
            row["payouts_s"], row["payouts_rss_mib"], _ = _timed(["--store", store, "payouts", "--format", "json"])
            row["statement_s"], row["statement_rss_mib"], _ = _timed(["--store", store, "statement", "p7", "--limit", "100", "--format", "json"])
            row["explain_old_s"], row["explain_old_rss_mib"], _ = _timed(["--store", store, "explain", first_order, "--format", "json"])
            row["explain_new_s"], row["explain_new_rss_mib"], _ = _timed(["--store", store, "explain", last_order, "--format", "json"])
            results[f"after_{chunk}_chunks"] = row
        os.remove(path)
        print(f"chunk {chunk}: " + " ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
    second, last = results["after_2_chunks"], results[f"after_{args.chunks}_chunks"]
    ratios = {k: round(last[k] / second[k], 2) for k in second if second[k]}
    print(json.dumps({"ratios_last_over_second": ratios}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"chunks": args.chunks, "chunk_events": args.chunk_events, **results, "ratios": ratios}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
