"""``audit replay --jobs N``: journals re-executed in worker processes give the
same output, digests and exit code as one process, and a failure found in a
worker is reported with its journal and position."""

from __future__ import annotations

import re

from devkit.synthetic import write_jsonl
from ledger.replay_jobs import default_jobs
from tests.test_store_and_cli import _inflate, cli, jsonl, store, tamper  # noqa: F401 - fixtures

HEAD = re.compile(r"^head (\S+) (\d+) sha256:[0-9a-f]{64}$", re.MULTILINE)


def _several_journals(capsys, store: str, tmp_path) -> None:
    """A store with three journals: two ingest workers' and the treasury."""
    stream = tmp_path / "stream.jsonl"
    write_jsonl(str(stream), 4_000, seed=5)
    assert cli(capsys, "--store", store, "ingest", str(stream), "--workers", "2")[0] == 0
    assert cli(capsys, "--store", store, "settle", "--as-of", "2027-01-01T00:00:00Z")[0] == 0
    assert cli(capsys, "--store", store, "payout", "--as-of", "2027-01-01T00:00:00Z")[0] == 0


def test_jobs_1_and_2_print_the_same_bytes(capsys, store, tmp_path):
    _several_journals(capsys, store, tmp_path)
    one = cli(capsys, "--store", store, "audit", "replay", "--jobs", "1")
    two = cli(capsys, "--store", store, "audit", "replay", "--jobs", "2")
    default = cli(capsys, "--store", store, "audit", "replay")
    assert one[0] == 0 and "rules re-executed: every stored record is what the recorded rules produce" in one[1]
    assert one == two == default
    journals = [name for name, _ in HEAD.findall(one[1])]
    assert journals == ["file:0/2", "file:1/2", "treasury"]


def test_a_failure_found_in_a_worker_names_its_journal_and_position(capsys, store, jsonl, tmp_path):
    assert cli(capsys, "--store", store, "ingest", str(jsonl))[0] == 0
    assert cli(capsys, "--store", store, "settle", "--as-of", "2026-03-01T00:00:00Z")[0] == 0
    assert cli(capsys, "--store", store, "payout", "--as-of", "2026-03-01T00:00:00Z")[0] == 0
    tamper(store, "e-O1", _inflate, rechain=True)  # a consistent chain: only re-execution sees it
    one = cli(capsys, "--store", store, "audit", "replay", "--jobs", "1")
    two = cli(capsys, "--store", store, "audit", "replay", "--jobs", "2")
    assert one[0] == two[0] == 1
    assert "FAIL journal main record 5 (Ingested) differs from what the rules produce on replay" in two[1]
    assert "rules re-executed: see FAIL lines" in two[1]
    assert one == two
    fast = cli(capsys, "--store", store, "audit", "replay", "--fast", "--jobs", "2")
    assert "differs from what the rules produce" not in fast[1]  # it was the re-execution that found it


def test_jobs_must_be_a_positive_number(capsys, store):
    code, _, err = cli(capsys, "--store", store, "audit", "replay", "--jobs", "0")
    assert code == 2 and "--jobs: expected a whole number of processes ≥ 1, got '0'" in err


def test_the_default_is_every_core_this_process_may_use():
    import os

    assert default_jobs() == len(os.sched_getaffinity(0)) >= 1
