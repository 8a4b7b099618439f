"""The benchmark suite runs (at a small size, no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_end_to_end_benchmark_runs_every_stage(tmp_path):
    out = tmp_path / "e2e.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.e2e", "--events", "3000", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"ingest", "ingest-2w", "publish", "consume", "consume-2w", "replay", "relay", "raw-consume", "raw-sqlite"}
    total = results["ingest"]["events"]
    assert total >= 3000
    assert all(r["events"] == total or name in ("replay", "relay") for name, r in results.items())
    assert results["relay"]["events"] > 0 and results["relay"]["live_drain_seconds"] >= 0  # messages, not events
    assert results["replay"]["events"] >= total + 1  # + the rules record (+ network records of late shares)
    assert 0 < results["consume"]["ratio_to_raw_consume"] and 0 < results["ingest"]["ratio_to_raw_sqlite"]
    assert 0 < results["consume-2w"]["ratio_to_raw_consume"]
    assert 0 < results["ingest-2w"]["ratio_to_raw_sqlite"] and results["ingest-2w"]["apart"]["seconds"] > 0


def test_micro_benchmarks_run():
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--benchmark-disable", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
