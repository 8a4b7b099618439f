"""The compiled hot path (scripts/compile.py): really loaded when built, and
byte-identical to the interpreted build it falls back to.

The interpreted build runs in a subprocess whose ``sys.path`` starts with a
copy of the packages without the ``.so`` files, so Python finds only the
``.py`` sources; the compiled build runs the same commands on this tree. Each
ingests the same seeded stream under two rule sets (last_click, and
customer_lock with self-referral denied, caps and a short window), settles,
pays out and runs ``audit replay``; every stored record, the state tables, the
audit's digests and the payouts must be the same bytes. (Segments also carry
the writer's wall clock, ``recorded_us``, and their chain hashes cover it: those
differ between any two runs, so they are left out.)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.synthetic import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "ledger", "projections", "consumers", "service", "devkit", "cli")


def _compile_script():
    spec = importlib.util.spec_from_file_location("_compile_script", ROOT / "scripts" / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compile_script = _compile_script()


def _require_build() -> None:
    if compile_script.extensions():
        return
    if os.environ.get("CI"):
        pytest.fail("CI runs the compiled build: scripts/install.sh must have built it (scripts/compile.py)")
    pytest.skip("not compiled here (LEDGER_NO_COMPILE=1 or scripts/compile.py --clean)")


def test_the_compiled_modules_are_the_ones_loaded():
    _require_build()
    assert len(compile_script.COMPILED) >= 16
    for path in compile_script.COMPILED:
        module = importlib.import_module(compile_script.module_name(path))
        assert module.__file__ is not None and module.__file__.endswith(".so"), (path, module.__file__)
    from ledger.engine.core import Engine

    assert type(vars(Engine)["apply"]).__name__ != "function"  # a C method of a native class, not Python's


def test_the_list_is_the_hot_path_and_leaves_the_structs_out():
    listed = set(compile_script.COMPILED)
    for path in listed:
        assert (ROOT / path).exists(), path
        assert "msgspec.Struct" not in (ROOT / path).read_text(), f"{path} defines a msgspec.Struct: keep it uncompiled"
    assert {"schemas/decode.py", "ledger/engine/core.py", "ledger/attribution.py", "ledger/commission.py"} <= listed
    assert not {"schemas/events.py", "schemas/decoded.py", "ledger/engine/state.py", "ledger/records.py"} & listed


RULES_LOCK = """\
[attribution]
model = "customer_lock"
window = "3h"
lock_period = "45d"
self_referral = "deny"

[commission]
level1_rate_bp = 1200
level2_rate_bp = 300
level1_cap_bp = 1800
level2_cap_bp = 600
order_cap_bp = 2500
order_cap_amount = 50000
"""

RUN = r"""
import hashlib, io, json, re, sqlite3, sys, contextlib
import msgspec
import schemas.decode, ledger.engine.core
from ledger.records import decode_segment, unframe
from ledger.store import JournalStore, Store
from cli.main import main

store, stream, config, as_of = sys.argv[1:5]
out = {"loaded": [schemas.decode.__file__.rsplit(".", 1)[-1], ledger.engine.core.__file__.rsplit(".", 1)[-1]]}

def run(*args):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(["--store", store, "--config", config, *args])
        except SystemExit as exc:
            assert not exc.code, (args, exc.code)
    return buffer.getvalue()

out["ingest"] = run("ingest", stream, "--format", "json")
out["settle"] = run("settle", "--as-of", as_of)
out["payout"] = run("payout", "--as-of", as_of, "--format", "json")
out["audit"] = run("audit", "replay")
out["payouts"] = run("payouts", "--format", "json")
db = sqlite3.connect(store.removeprefix("sqlite:///"))
# Every record's bytes (a segment's recorded_us is the writer's wall clock, and
# so are the chain hashes over it: left out) and every state row but the head.
digest = hashlib.sha256()
for journal, version, state in db.execute("SELECT originator_id, originator_version, state FROM stored_events "
                                          "WHERE originator_id LIKE 'journal:%' ORDER BY 1, 2"):
    segment = decode_segment(unframe(state)[1])
    digest.update(repr((journal, version, segment.first)).encode() + msgspec.msgpack.encode(segment.records))
out["records"] = digest.hexdigest()
digest = hashlib.sha256()
rows = 0
opened = Store(store)
for name in opened.journals():  # through the state reader: whatever the tables' layout
    journal = JournalStore(opened, name)
    lo = b""
    while True:
        page = journal.state.scan(journal.number, lo, b"\xff" * 32, 5000)
        for key, value in page:
            if key != b"\x00":  # the head row: it holds the chain hash
                digest.update(repr((name, key, value)).encode())
                rows += 1
        if len(page) < 5000:
            break
        lo = page[-1][0] + b"\x00"
out["state"] = (digest.hexdigest(), rows)
out["audit"] = re.sub(r"(head \S+ \d+) sha256:[0-9a-f]+", r"\1", out["audit"])
print(json.dumps(out))
"""


def _run(tree: Path, work: Path, name: str, stream: Path, config: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LEDGER_STORE", None)
    done = subprocess.run([sys.executable, "-c", RUN, f"sqlite:///{work}/{name}.db", str(stream), str(config),
                           "2027-06-01T00:00:00Z"], cwd=tree, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _interpreted_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "interpreted"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    assert not list(tree.rglob("*.so"))
    return tree


@pytest.mark.parametrize("rules", ["default", "customer_lock"])
def test_interpreted_and_compiled_builds_give_the_same_bytes(tmp_path, rules):
    _require_build()
    stream = tmp_path / "stream.jsonl"
    write_jsonl(str(stream), 6_000, seed=23)
    config = tmp_path / "rules.toml"
    config.write_text("" if rules == "default" else RULES_LOCK)
    compiled = _run(ROOT, tmp_path, "compiled", stream, config)
    interpreted = _run(_interpreted_tree(tmp_path), tmp_path, "interpreted", stream, config)
    assert compiled.pop("loaded") == ["so", "so"]
    assert interpreted.pop("loaded") == ["py", "py"]
    assert json.loads(compiled["ingest"])["accepted"] > 4_000  # a real stream, not an empty one
    assert compiled["state"][1] > 1_000  # state rows compared
    assert "rules re-executed: every stored record is what the recorded rules produce" in compiled["audit"]
    assert "replay matches live" in compiled["audit"] and "\nhead main " in compiled["audit"]
    for key in compiled:
        assert compiled[key] == interpreted[key], key
