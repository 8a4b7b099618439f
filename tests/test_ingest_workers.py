"""``ingest FILE… --workers N``: the files split by buyer among N processes, child
*i* writing the journal ``file:i/N`` (real SQLite stores, the console script).

The books of a split ingest equal those of one process; every line is applied
once (a share once per journal); bad lines, bad shares included, are
dead-lettered once; a store split with N is always ingested with N; and the two
caveats that partitioning by buyer brings (as on Kafka) behave as documented.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest

from consumers.jsonl import events_for, read_lines, share_copies, shares, worker_of
from devkit.synthetic import generate
from ledger.books import Books
from ledger.records import DeadLettered, Ingested, Source
from ledger.store import Store
from schemas.decode import Decoded, decode_event
from schemas.events import Share
from schemas.peek import route_key
from tests.helpers import click, order, refund, share

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
AT = "2026-01-01T00:00:00Z"

# Shares that are bad in every way a share can be, appended to the stream: each
# must be dead-lettered once, not once per journal.
BAD_SHARES = [
    b'{"type":"share","event_id":"bs-ts","occurred_at":"2026-02-30T00:00:00Z","share_id":"bs1","promoter_id":"p0"}',
    b'{"type":"share","event_id":"bs-schema","occurred_at":"2026-01-01T00:00:00Z","share_id":"bs2"}',
    b'{"type":"share","event_id":"bs-ver","schema_version":2,"occurred_at":"2026-01-01T00:00:00Z","share_id":"bs3","promoter_id":"p0"}',
    # sh0 exists: its event id with other content (conflicting), its share id under another event id (kept, twice)
    b'{"type":"share","event_id":"e-sh0","occurred_at":"2026-01-01T00:00:00Z","share_id":"sh0","promoter_id":"p-other"}',
    b'{"type":"share","event_id":"bs-reuse","occurred_at":"2026-01-01T00:00:00Z","share_id":"sh1","promoter_id":"p9"}',
    b'{"type":"share","event_id":"bs-reuse","occurred_at":"2026-01-01T00:00:00Z","share_id":"sh1","promoter_id":"p9"}',
    # a share written with escapes (no literal "share" in the bytes), valid, and its duplicate
    b'{"type":"sh\\u0061re","event_id":"bs-esc","occurred_at":"2026-01-01T00:00:00Z","share_id":"bs-esc","promoter_id":"p1"}',
    b'{"type":"share","event_id":"bs-esc","occurred_at":"2026-01-01T00:00:00Z","share_id":"bs-esc","promoter_id":"p1"}',
    b'{"type":"share","event_id":"bs-nest","occurred_at":"2026-01-01T00:00:00Z","share_id":"bs-nest",' + b'"x":' + b"[" * 200 + b"]" * 200 + b"}",
]


def _run(store: str, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "--store", store, *argv], capture_output=True, text=True, timeout=timeout)


def _ingest(store: str, *argv: str) -> dict:
    done = _run(store, "ingest", *argv, "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _nonzero(store: str) -> dict:
    return {k: tuple(v) for k, v in sorted(Books(Store(store)).balances().items()) if any(v)}


def _letters(store: str) -> Counter:
    rows = json.loads(_run(store, "dead-letters", "--format", "json").stdout)
    return Counter((row["reason"], base64.b64decode(row["raw_base64"])) for row in rows)


def _applied(store: str) -> dict[tuple[str, int], list[str]]:
    """(file, line) → the journals whose records hold that line as applied."""
    found: dict[tuple[str, int], list[str]] = {}
    for journal, _, record in Books(Store(store)).records():
        source = record.source if isinstance(record, Ingested) else record.letter.source if isinstance(record, DeadLettered) else None
        if source is not None:
            found.setdefault((source.file, source.line), []).append(journal)
    return found


def _write(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def _same_totals(single: dict, split: dict) -> None:
    """The counts of a split ingest: those of one process, except that a click
    met before its share is parked in a file's order and not once the shares go
    first (the split applies every share first)."""
    assert split["accepted"] + split["parked"] == single["accepted"] + single["parked"]
    for key in ("duplicates", "dead_letters", "dead_letter_reasons", "still_parked"):
        assert split[key] == single[key], key


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """A realistic stream (duplicates, malformed lines) with bad shares spliced
    in, cut in two files: the second ingest continues the first."""
    lines = list(generate(24_000, seed=13))
    lines[500:500] = BAD_SHARES
    cut = 18_000
    tmp = tmp_path_factory.mktemp("streams")
    return lines, _write(tmp / "part1.jsonl", lines[:cut]), _write(tmp / "part2.jsonl", lines[cut:])


def test_two_workers_equal_one_process_and_continue(tmp_path, streams):
    lines, part1, part2 = streams
    single, split = f"sqlite:///{tmp_path}/single.db", f"sqlite:///{tmp_path}/split.db"

    one = _ingest(single, part1)
    two = _ingest(split, part1, "--workers", "2")
    _same_totals(one, two)
    assert set(two["journals"]) == {"file:0/2", "file:1/2"}
    assert two["journal_records"] == sum(two["journals"].values())
    assert _nonzero(split) == _nonzero(single)
    assert _letters(split) == _letters(single)
    assert sum(1 for (reason, raw) in _letters(split).elements() if route_key(raw)[0]) == 6  # the bad shares, once each

    # Every line applied once: an event in its buyer's journal, a line without a
    # buyer in worker 0's, a share in every journal (a bad one in worker 0's only).
    applied = _applied(split)
    cut = lines[:18_000]
    assert len(applied) == len(cut)  # no empty lines in the stream
    for number, raw in enumerate(cut, 1):
        journals = sorted(applied[(part1, number)])
        is_share, key = route_key(raw)
        if not is_share:
            assert journals == [f"file:{0 if key is None else zlib.crc32(key) % 2}/2"], (number, raw)
        elif isinstance(decode_event(raw), Decoded):
            assert journals in (["file:0/2", "file:1/2"], ["file:0/2"]), (number, raw)  # repeats: worker 0 alone
        else:
            assert journals == ["file:0/2"], (number, raw)
    assert _run(split, "audit", "replay").returncode == 0

    # A second ingest of more events continues the split; the books still agree.
    one = _ingest(single, part2)
    two = _ingest(split, part2, "--workers", "2")
    _same_totals(one, two)
    assert _nonzero(split) == _nonzero(single)
    assert _letters(split) == _letters(single)
    audit = _run(split, "audit", "replay")
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]

    # Re-ingesting the same file: every line a duplicate, or dead-lettered again
    # where it claims nothing (SPEC §8), exactly as with one process.
    one = _ingest(single, part2)
    two = _ingest(split, part2, "--workers", "2")
    _same_totals(one, two)
    assert two["accepted"] == 0 and _letters(split) == _letters(single)

    # The split is fixed: another N, or one process, is refused with one line.
    for workers in ("3", "1"):
        refused = _run(split, "ingest", part2, "--workers", workers)
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and "--workers 2" in refused.stderr, refused.stderr
    refused = _run(split, "ingest", part2)
    assert refused.returncode == 2 and "--workers 2" in refused.stderr
    # ... and a store fed by `main` is never split.
    refused = _run(single, "ingest", part2, "--workers", "2")
    assert refused.returncode == 2 and "'main'" in refused.stderr and refused.stderr.count("\n") == 1
    assert Books(Store(single)).journals() == ["main"]


def test_two_workers_on_postgresql_equal_one_process(tmp_path, postgres_url):
    """The store for scale-out: the same books as one process on SQLite."""
    path = _write(tmp_path / "pg.jsonl", list(generate(6_000, seed=17)))
    single = f"sqlite:///{tmp_path}/single.db"
    _same_totals(_ingest(single, path), _ingest(postgres_url, path, "--workers", "2"))
    assert _nonzero(postgres_url) == _nonzero(single)
    assert _letters(postgres_url) == _letters(single)
    assert _run(postgres_url, "audit", "replay").returncode == 0
    refused = _run(postgres_url, "ingest", path, "--workers", "3")
    assert refused.returncode == 2 and "--workers 2" in refused.stderr


def _buyers_apart() -> tuple[str, str]:
    """Two buyer ids on different workers of two."""
    first = "buyer-a"
    other = next(f"buyer-{i}" for i in range(100) if worker_of(f"buyer-{i}".encode(), 2) != worker_of(first.encode(), 2))
    return first, other


def test_caveats_of_partitioning_by_buyer(tmp_path):
    """As on Kafka: one event id under two buyers lands in two journals (both
    applied, where one process dead-letters the second as a conflicting
    duplicate); a refund naming another buyer's order stays parked in its own
    buyer's journal (one process rejects it as refund_buyer_mismatch)."""
    a, b = _buyers_apart()
    events = [
        share("S1", "alice", AT),
        click(a, "S1", "2026-01-02T00:00:00Z", event_id="c-a"),
        order("O1", a, "2026-01-02T01:00:00Z", amount=10_000),
        click(b, "S1", "2026-01-02T00:00:00Z", event_id="c-b"),
        click(b, "S1", "2026-01-02T00:00:00Z", event_id="c-a"),  # c-a again, other buyer: other content
        refund("R1", "O1", b, 1_000),  # O1 is a's order
    ]
    path = _write(tmp_path / "caveats.jsonl", [json.dumps(e).encode() for e in events])
    single, split = f"sqlite:///{tmp_path}/single.db", f"sqlite:///{tmp_path}/split.db"
    one = _ingest(single, path)
    two = _ingest(split, path, "--workers", "2")
    assert one["dead_letter_reasons"] == {"conflicting_duplicate": 1, "refund_buyer_mismatch": 1}
    assert two["dead_letters"] == 0 and two["accepted"] == 5
    assert two["still_parked"] == {"clicks": 0, "refunds": 1}
    parked_in = [j for (_, line), journals in _applied(split).items() if line == 6 for j in journals]
    assert parked_in == [f"file:{worker_of(b.encode(), 2)}/2"]
    assert _nonzero(split) == _nonzero(single)  # the refund posted nothing either way


def test_a_stopped_split_ingest_resumes(tmp_path):
    """SIGTERM reaches every worker; the parent exits 1 with one line; what was
    committed stays, and the same command again finishes the job."""
    lines = list(generate(60_000, seed=5))
    path = _write(tmp_path / "big.jsonl", lines)
    split = f"sqlite:///{tmp_path}/split.db"
    proc = subprocess.Popen([EXE, "--store", split, "ingest", path, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if (Store(split).recorder.max_notification_id() or 0) >= 5:  # a few segments committed
                break
        except Exception:  # noqa: BLE001 - the store may not be created yet
            pass
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.skip("the ingest finished before it could be stopped")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "the same command again finishes the job" in err and out == ""
    again = _ingest(split, path, "--workers", "2")
    assert again["duplicates"] > 0
    reference = f"sqlite:///{tmp_path}/single.db"
    _ingest(reference, path)
    assert _nonzero(split) == _nonzero(reference)
    assert _run(split, "audit", "replay").returncode == 0


def test_stdin_and_bad_worker_counts_are_refused(tmp_path):
    path = _write(tmp_path / "one.jsonl", [json.dumps(share("S1", "alice", AT)).encode()])
    store = f"sqlite:///{tmp_path}/s.db"
    for argv, says in (([path, "-", "--workers", "2"], "standard input"), ([path, "--workers", "0"], "--workers must be")):
        done = _run(store, "ingest", *argv)
        assert done.returncode == 2 and says in done.stderr and done.stderr.count("\n") == 1, done.stderr


# ------------------------------------------------------------ the split itself
def _items(lines: list[bytes]) -> list[tuple[bytes, Source]]:
    return [(raw, Source(file="f", line=i)) for i, raw in enumerate(lines, 1)]


def test_split_routes_every_line_to_one_worker_and_every_share_to_all():
    hostile = [b"", b"not json", b"[1]", b'{"buyer_id": 7}', b'{"type":"click"}', b'{"type":"share"}',
               b'{"type":"sh\\u0061re","promoter_id":"p"}', b'{"type":"click","buyer_id":"b\\u00e9"}', b"\xff\xfe",
               b'{"type":"click","buyer_id":"share"}', b'{"buyer_id":"x","type":"share"}']
    items = _items(list(generate(3_000, seed=3)) + hostile)
    expected_shares = [item for item in items if route_key(item[0])[0]]
    assert list(shares(items)) == expected_shares
    for n in (1, 2, 3):
        seen: Counter = Counter()
        for worker in range(n):
            for raw, source in events_for(items, worker, n):
                is_share, key = route_key(raw)
                assert not is_share and worker == (0 if key is None else zlib.crc32(key) % n)
                seen[source.line] += 1
        assert sorted(seen) == sorted(s.line for raw, s in items if not route_key(raw)[0])
        assert set(seen.values()) == {1}


def test_worker_of_is_stable():
    """CRC-32 of the UTF-8 buyer id: the same in every process and release."""
    assert (worker_of(b"b1", 2), worker_of(b"b1", 3), worker_of("买家".encode(), 4)) == (1204558816 % 2, 1204558816 % 3, 2166180189 % 4)


def test_share_copies_keep_what_worker_0_accepts():
    """The shares a worker other than 0 applies: the valid ones, first under
    their event id and share id (worker 0 applies them all and dead-letters the rest)."""
    s = lambda eid, sid, **kw: json.dumps(share(sid, kw.pop("p", "p1"), AT, event_id=eid, **kw)).encode()  # noqa: E731
    lines = [s("e1", "s1"), s("e1", "s1"), s("e1", "s1", p="p2"), s("e2", "s1"), s("e2", "s1"), s("e3", "s2"),
             b'{"type":"share","event_id":"e4","occurred_at":"nope","share_id":"s4","promoter_id":"p"}', s("e4", "s4")]
    kept = [source.line for _, source in share_copies(_items(lines))]
    assert kept == [1, 6, 8]
    assert all(isinstance(decode_event(raw).event, Share) for raw, _ in share_copies(_items(lines)))


def test_read_lines_numbers_are_the_files_own(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"b":2}\n')
    with open(path, "rb") as f:
        assert [(raw, s.line) for raw, s in read_lines(f, str(path))] == [(b'{"a":1}', 1), (b'{"b":2}', 3)]
