"""The state changelog (``ledger.statelog``): one delta row per segment,
folded into ``ledger_state`` by a separate process, by the writer at the
bound, or never; killed anywhere. Every way gives the same records, the same
state and the same balances; ``audit replay`` (which compares the live state,
table plus unfolded rows, with a re-execution's byte for byte) passes."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devkit.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.records import Source, decode_segment
from ledger.replay import replay_journal
from ledger.statelog import FOLD_BOUND, decode_delta, fold
from ledger.store import JournalStore, Store
from tests.helpers import kill_by_progress

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
FIXTURES = Path(__file__).parent / "fixtures"
LINES = list(generate(6_000, seed=21))


def _ingest(url: str, batch_events: int = 100) -> Ledger:
    ledger = Books(Store(url)).ledger("main")
    ledger.ingest(((raw, Source("events.jsonl", i + 1)) for i, raw in enumerate(LINES)), batch_events=batch_events)
    return ledger


def _records(store: Store) -> list:
    """Every segment's records (not its bytes: a segment carries its wall-clock
    ``recorded_us``, metadata, and so its chain hash differs run to run)."""
    return [decode_segment(row.state).records for row in JournalStore(store, "main").read()]


def _state(url: str) -> list[tuple[bytes, bytes]]:
    """The live state as a reader sees it (table + unfolded rows), but the
    journal's own row (it holds the chain head: see ``_records``)."""
    journal = JournalStore(Store(url), "main")
    return journal.state.scan(journal.number, b"\x01", b"\xff" * 32)


def _segments(path: Path) -> int:
    """Segments stored so far (0 before the store exists), read as another process would."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not created yet
        return 0
    finally:
        db.close()


def _log_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM ledger_state_log").fetchone()[0]
    finally:
        db.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[bytes], list[tuple[bytes, bytes]], dict]:
    """A memory:// ingest: no changelog at all."""
    url = "memory://"
    ledger = _ingest(url)
    store = ledger.store.store
    records = _records(store)
    state = store.state.scan(ledger.store.number, b"\x01", b"\xff" * 32)
    return records, state, Books(store).balances()


@pytest.mark.parametrize("fold_every", ["1", "3", "0"])
def test_every_folding_cadence_gives_the_same_records_and_state(tmp_path, monkeypatch, reference, fold_every):
    """A folder after every segment, every third, or never (the writer folds
    itself at the bound): the same records and state as memory://, the log
    never above its bound, and the audit's state comparison passes."""
    monkeypatch.setenv("LEDGER_FOLD_EVERY", fold_every)
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    ledger = _ingest(url)
    ledger.store.store.close()  # waits for a folder still running
    segments = ledger.version
    assert segments > FOLD_BOUND  # the bound was reached when nothing else folds
    assert _log_rows(path) < FOLD_BOUND
    if fold_every == "1":
        assert _log_rows(path) <= 2  # the folder ran after every segment (at most one behind)
    records, state, balances = reference
    assert _records(Store(url)) == records
    assert _state(url) == state
    assert Books(Store(url)).balances() == balances
    result = replay_journal(JournalStore(Store(url), "main"), compare_state=True)
    assert result.state_differences == []


def test_a_reader_sees_the_table_and_the_unfolded_rows_in_one_snapshot(tmp_path, monkeypatch, reference):
    """Never folded by a process: every read is table + log; folding then
    changes where the rows are, not what a reader sees."""
    monkeypatch.setenv("LEDGER_FOLD_EVERY", "0")
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    _ingest(url)
    before = _state(url)
    unfolded = _log_rows(path)
    assert unfolded > 0
    reader = Store(url)
    journal = JournalStore(reader, "main")
    keys = [k for k, _ in before[::97]]
    seen_before = journal.state.get_many(journal.number, keys)
    db = sqlite3.connect(path, isolation_level=None)
    fold(db, journal.number)
    db.close()
    assert _log_rows(path) == 0
    assert journal.state.get_many(journal.number, keys) == seen_before  # the same reader, after the fold
    assert _state(url) == before == reference[1]


def test_a_delta_row_is_sorted_and_holds_deletes(tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGER_FOLD_EVERY", "0")
    path = tmp_path / "ledger.db"
    _ingest(f"sqlite:///{path}")
    db = sqlite3.connect(path)
    rows = db.execute("SELECT version, ops FROM ledger_state_log ORDER BY version").fetchall()
    db.close()
    assert rows
    deletes = 0
    for _, data in rows:
        ops = decode_delta(data)
        keys = [k for k, _ in ops]
        assert keys == sorted(set(keys))
        deletes += sum(1 for _, v in ops if v is None)
    assert [v for v, _ in rows] == list(range(rows[0][0], rows[-1][0] + 1))


def test_a_folder_killed_mid_fold_changes_nothing(tmp_path, monkeypatch, reference):
    """SIGKILL the folder process at random moments of its transaction: the
    state a reader sees is the same before, between and after, and a folder
    run to the end empties the log."""
    monkeypatch.setenv("LEDGER_FOLD_EVERY", "0")
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    _ingest(url, batch_events=40)  # many small segments: a fold with work to do
    before = _state(url)
    rows = _log_rows(path)
    rng = random.Random(4)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "ledger.statelog", str(path), "1"])
        time.sleep(rng.uniform(0.05, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _log_rows(path) in (0, rows)  # all or nothing
        assert _state(url) == before
        if _log_rows(path) == 0:
            break
    subprocess.run([sys.executable, "-m", "ledger.statelog", str(path), "1"], check=True)
    assert _log_rows(path) == 0
    assert _state(url) == before  # (other batch sizes than the reference's: other positions in `seen`)
    assert replay_journal(JournalStore(Store(url), "main"), compare_state=True).state_differences == []


@pytest.mark.parametrize("fold_every", ["1", "8"])
def test_ingest_killed_inside_batches_and_folds_gives_a_clean_ingests_balances(tmp_path, fold_every):
    """SIGKILL the whole process group (the ingest and any folder it started)
    at random moments, inside a batch, inside a fold or between them; then
    ingest again to the end. The balances are a clean ingest's and the audit
    passes (every record, every link, the live state byte for byte)."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    env = {**os.environ, "LEDGER_FOLD_EVERY": fold_every}
    clean = f"sqlite:///{tmp_path}/clean.db"
    subprocess.run([EXE, "--store", clean, "ingest", str(path)], check=True, capture_output=True, env=env)
    url = f"sqlite:///{tmp_path}/killed.db"
    cmd = [EXE, "--store", url, "ingest", "--batch-events", "50", str(path)]
    rng = random.Random(int(fold_every))
    kills = kill_by_progress(cmd, lambda: _segments(tmp_path / "killed.db"), rng, env=env)
    assert kills >= 2  # 120 segments of 50 events: each round stops a dozen segments in at most
    done = subprocess.run(cmd, capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert Books(Store(url)).balances() == Books(Store(clean)).balances()
    audit = subprocess.run([EXE, "--store", url, "audit", "replay"], capture_output=True, env=env)
    assert audit.returncode == 0 and b"FAIL" not in audit.stdout, audit.stdout.decode()[-2000:]
    assert b"replay matches live" in audit.stdout
    clean_audit = subprocess.run([EXE, "--store", clean, "audit", "replay"], capture_output=True, text=True).stdout
    balances_line = [l for l in audit.stdout.decode().splitlines() if l.startswith("balances digest")]
    assert balances_line and balances_line[0] in clean_audit.splitlines()


def test_a_store_in_the_previous_state_format_is_refused_then_migrated(tmp_path):
    """tests/fixtures/state_format0.db.gz was written by the version before the
    changelog (main at 01c0dba: two ingests, a settle, a payout). It is refused
    with one line naming ``migrate``; after ``migrate`` the audit gives the same
    digests and heads as that version's audit did, and the same balances."""
    db = tmp_path / "old.db"
    with gzip.open(FIXTURES / "state_format0.db.gz") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    url = f"sqlite:///{db}"
    refused = subprocess.run([EXE, "--store", url, "settle", "--as-of", "2026-01-22T00:00:00Z"], capture_output=True, text=True)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "format 0" in refused.stderr and "`commission-ledger migrate`" in refused.stderr
    migrated = subprocess.run([EXE, "--store", url, "migrate"], capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated journal main: 4 segments" in migrated.stdout
    assert "migrated journal treasury: 2 segments" in migrated.stdout
    audit = subprocess.run([EXE, "--store", url, "audit", "replay"], capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    # That version's audit output, line for line (this one adds its payout-check counts, issue 18).
    lines = [line for line in audit.stdout.splitlines(True) if not line.startswith("payouts checked:")]
    assert "".join(lines) == (FIXTURES / "state_format0.audit.txt").read_text()
    payouts = subprocess.run([EXE, "--store", url, "payouts", "--format", "json"], capture_output=True, text=True, check=True)
    assert payouts.stdout == (FIXTURES / "state_format0.payouts.json").read_text()
    again = subprocess.run([EXE, "--store", url, "migrate"], capture_output=True, text=True, check=True)
    assert "nothing to migrate" in again.stdout
    settled = subprocess.run([EXE, "--store", url, "settle", "--as-of", "2026-01-22T00:00:00Z"], capture_output=True, text=True)
    assert settled.returncode == 0, settled.stderr
    assert "settled 225 orders" in settled.stdout


def test_migrate_refuses_a_tampered_journal_and_leaves_it_as_it_was(tmp_path):
    """``migrate`` re-executes with ``audit replay``'s checks: a stored segment
    whose bytes were changed is an integrity error (exit 1, one line ending in
    "not migrated"), and the store keeps its old state format."""
    db = tmp_path / "old.db"
    with gzip.open(FIXTURES / "state_format0.db.gz") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst)
    con = sqlite3.connect(db)
    rowid, state = con.execute("SELECT rowid, state FROM stored_events WHERE originator_version = 2 "
                               "AND length(state) > 1000 LIMIT 1").fetchone()
    con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state[:-40] + bytes(40), rowid))
    con.commit()
    con.close()
    url = f"sqlite:///{db}"
    migrated = subprocess.run([EXE, "--store", url, "migrate"], capture_output=True, text=True)
    assert migrated.returncode == 1, migrated.stdout + migrated.stderr
    assert len(migrated.stderr.strip().splitlines()) == 1 and migrated.stderr.strip().endswith("not migrated")
    refused = subprocess.run([EXE, "--store", url, "settle", "--as-of", "2026-01-22T00:00:00Z"], capture_output=True, text=True)
    assert refused.returncode != 0 and "format 0" in refused.stderr


def test_the_writer_adopts_its_own_delta_rows_without_reading_them_back(tmp_path, monkeypatch):
    """The ingesting process's reader takes each committed delta from memory
    (``Overlay.adopt``): it decodes none of its own rows, and what it reads is
    what a fresh process reads from the store."""
    from ledger import statelog

    monkeypatch.setenv("LEDGER_FOLD_EVERY", "0")
    decoded: list[int] = []
    real = statelog.decode_delta
    monkeypatch.setattr(statelog, "decode_delta", lambda data: decoded.append(len(data)) or real(data))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Books(Store(url)).ledger("main")
    items = [(raw, Source("events.jsonl", i + 1)) for i, raw in enumerate(LINES)]
    for start in range(0, len(items), 1_000):  # 6 segments, each committed on this thread: below the bound
        records, _, _ = ledger.apply(items[start:start + 1_000])  # (an ingest's writer thread may lose the race
        ledger.commit(records, [])                                 # to the next batch's read: then it reads back)
    journal = ledger.store
    writer_view = journal.state.scan(journal.number, b"\x01", b"\xff" * 32)
    # At most the first row (the rules' segment, which may be written before
    # this process has read any state, so before it has an overlay) is read
    # back; the six batches' rows are adopted (before Overlay.adopt: 7 read).
    assert len(decoded) <= 1
    assert _log_rows(tmp_path / "ledger.db") > 0  # and some were still unfolded when read
    assert writer_view == _state(url)  # (not the reference's: positions in the state follow the batch size)


def test_one_folder_process_serves_every_fold_and_a_killed_one_is_replaced(tmp_path, monkeypatch, reference):
    """``Folder`` keeps one folder process for the writer's folds (not one per
    fold); SIGKILL it in the middle of an ingest and the next fold starts a
    new one: the same records and state as memory://, the log emptied."""
    from ledger import statelog

    monkeypatch.setenv("LEDGER_FOLD_EVERY", "1")
    started: list[subprocess.Popen] = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(statelog.subprocess, "Popen", popen)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Books(Store(url)).ledger("main")
    kills: list[int] = []

    def progress(counts) -> None:
        if counts.total >= 3_000 and not kills:
            started[-1].send_signal(signal.SIGKILL)
            kills.append(counts.total)

    ledger.ingest(((raw, Source("events.jsonl", i + 1)) for i, raw in enumerate(LINES)), batch_events=100,
                  progress=progress)
    assert kills and ledger.version > 50  # 60 segments, a fold asked after each
    assert len(started) == 2  # one process, and its replacement after the kill
    assert all(p.poll() is not None for p in started)  # the ingest's end closed the second
    assert _log_rows(tmp_path / "ledger.db") == 0
    records, state, _ = reference
    assert _records(Store(url)) == records and _state(url) == state
