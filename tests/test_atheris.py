"""Coverage-guided fuzzing of decode_event (fuzz/fuzz_decode.py) for a bounded time.

30 s by default (``LEDGER_ATHERIS_SECONDS``); skipped with ``LEDGER_SKIP_ATHERIS=1``
or where atheris is not installed. By hand, as long as you like:
``python fuzz/fuzz_decode.py -max_total_time=600``. A crash fails this test with
the input that caused it; make it a named regression test in
tests/test_hostile_input.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"

pytestmark = [
    pytest.mark.skipif(os.environ.get("LEDGER_SKIP_ATHERIS") == "1", reason="LEDGER_SKIP_ATHERIS=1"),
    pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed"),
]


def test_atheris_finds_no_crash_in_decode_event(tmp_path):
    seconds = int(os.environ.get("LEDGER_ATHERIS_SECONDS", "30"))
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "seeds", corpus)
    done = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_decode.py"), str(corpus), f"-dict={FUZZ / 'json.dict'}",
         f"-max_total_time={seconds}", "-max_len=20000", "-print_final_stats=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=seconds + 120, cwd=tmp_path,
    )
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*")) + sorted(tmp_path.glob("oom-*"))
    found = [f"{c.name}: {c.read_bytes()[:2000]!r}" for c in crashes]
    assert done.returncode == 0 and not found, "\n".join(found) + "\n" + done.stderr[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    assert runs is not None and int(runs.group(1)) > 0, done.stderr[-2000:]
    print(f"atheris: {runs.group(1)} inputs in {seconds} s, no crash")
