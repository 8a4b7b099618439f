"""End-to-end benchmark: every stage on the same seeded stream, in one run.

    python -m benchmarks.e2e --events 1000000 [--json out.json] [--stages ...]

Stages (each in its own process, so peak RSS is per stage):
  ingest          file ingest into SQLite                  (commission-ledger ingest)
  ingest-2w       the same split by buyer into two processes (commission-ledger ingest --workers 2),
                  process start included; peak RSS is the largest process's. Also timed: the same
                  two workers alone (no command around them), into one SQLite file and each into
                  its own (no shared write lock), with the seconds each spends in commits: what
                  one SQLite file's serialised commits cost
  publish         publish to the embedded broker            (commission-ledger publish)
  consume         consume into SQLite                       (commission-ledger consume)
  consume-2w      the same with two processes, one per core (commission-ledger consume --workers 2);
                  peak RSS is the largest worker's
  replay          audit replay of the ingested store        (commission-ledger audit replay)
  relay           ledger events out (commission-ledger relay): a relay process follows the
                  store while the file is ingested (lag at the end of the ingest, time to
                  drain it), then a relay from scratch over the finished store (messages/s);
                  "events" counts messages here
  raw-consume     baseline: kafka-python consume + msgspec decode only
  raw-sqlite      baseline: plain SQLite, one row per event, one transaction per 5,000

Prints a table and writes JSON with events/s, seconds, peak RSS (MiB) and the
ratio of each stage to its raw baseline (ingest/consume vs raw-consume,
ingest vs raw-sqlite).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

STAGES = ("ingest", "ingest-2w", "publish", "consume", "consume-2w", "replay", "relay", "raw-consume", "raw-sqlite")
IDLE_S = 2.0  # consume-2w: workers exit after this long without messages (not counted)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(events: int, seconds: float, **extra) -> None:
    print(json.dumps({"events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else 0,
                      "peak_rss_mib": _peak_rss_mib(), **extra}))


# ----------------------------------------------------------------- stages
def stage_ingest(path: str, store: str) -> None:
    from consumers.jsonl import read_files
    from ledger.books import Books
    from ledger.store import Store

    ledger = Books(Store(store)).ledger("main")
    started = time.perf_counter()
    counts = ledger.ingest(read_files([path]))
    _report(counts.total, time.perf_counter() - started)


def stage_ingest_workers(path: str, store: str, tmp: str) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    started = time.perf_counter()
    done = subprocess.run([exe, "--store", store, "ingest", path, "--workers", "2", "--format", "json"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    summary = json.loads(done.stdout)
    events = summary["accepted"] + summary["duplicates"] + summary["parked"] + summary["dead_letters"]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = used.ru_maxrss / 1024, used.ru_utime + used.ru_stime  # the parent and both workers
    # The two workers' work without the command around it, twice: both into one
    # SQLite file (its write lock serialises their commits) and each into its own.
    shared = _halves(path, [f"sqlite:///{tmp}/shared.db"] * 2)
    apart = _halves(path, [f"sqlite:///{tmp}/apart-{i}.db" for i in range(2)])
    print(json.dumps({"events": events, "seconds": seconds, "events_per_s": events / seconds, "peak_rss_mib": peak,
                      "cpu_seconds": cpu, "shared_file": shared, "apart": apart}))


def _halves(path: str, stores: list[str]) -> dict:
    """Worker i of 2 into ``stores[i]``, both at once: wall seconds, and each
    worker's seconds inside its store transactions (commits)."""
    started = time.perf_counter()
    halves = [subprocess.Popen([sys.executable, "-m", "benchmarks.e2e", "--stage", "ingest-half", path, store, str(i), "2"],
                               stdout=subprocess.PIPE, text=True) for i, store in enumerate(stores)]
    outputs = [half.communicate()[0] for half in halves]
    seconds = time.perf_counter() - started
    if any(half.returncode != 0 for half in halves):
        raise RuntimeError("ingest-half failed")
    workers = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return {"seconds": seconds, "commit_seconds": [w["commit_seconds"] for w in workers],
            "worker_seconds": [w["seconds"] for w in workers]}


def stage_ingest_half(path: str, store: str, worker: int, workers: int) -> None:
    """What worker ``worker`` of ``ingest --workers`` does, into ``store``,
    timing its store transactions."""
    from consumers.jsonl import events_for, read_files, share_copies, shares
    from ledger.books import Books
    from ledger.store import JournalStore, Store

    committing = [0.0]
    append = JournalStore.append

    def timed(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return append(self, *args, **kwargs)
        finally:
            committing[0] += time.perf_counter() - began

    JournalStore.append = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    ledger = Books(Store(store)).ledger(f"file:{worker}/{workers}")
    found = shares(read_files([path]))
    ledger.ingest(found if worker == 0 else share_copies(found))
    ledger.ingest(events_for(read_files([path]), worker, workers))
    print(json.dumps({"seconds": time.perf_counter() - started, "commit_seconds": committing[0]}))


def stage_publish(path: str, bootstrap: str, topic: str) -> None:
    from consumers.jsonl import read_files
    from consumers.kafka import publish

    started = time.perf_counter()
    counts = publish((raw for raw, _ in read_files([path])), bootstrap, topic=topic, shares_topic=f"{topic}-shares")
    _report(counts.events + counts.shares, time.perf_counter() - started)


def stage_consume(store: str, bootstrap: str, topic: str, total: int) -> None:
    import logging

    from consumers.kafka import LedgerConsumer
    from ledger.store import Store

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    consumer = LedgerConsumer(Store(store), bootstrap, topic=topic, shares_topic=f"{topic}-shares")
    started = time.perf_counter()
    stats = consumer.run(max_messages=total, until_idle_s=30)
    _report(stats.messages, time.perf_counter() - started)


def stage_consume_workers(store: str, bootstrap: str, topic: str, total: int) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    started = time.perf_counter()
    done = subprocess.run([exe, "--store", store, "consume", "--bootstrap-servers", bootstrap, "--topic", topic,
                           "--shares-topic", f"{topic}-shares", "--workers", "2", "--until-idle", str(IDLE_S)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started - IDLE_S
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # What the workers stored, counted after the clock stopped: every message once.
    from ledger.books import Books
    from ledger.records import DeadLettered, Ingested
    from ledger.store import Store

    events, shares = 0, set()  # each task records the shares it was fed: count those once
    for _, _, record in Books(Store(store)).records():
        source = record.source if isinstance(record, Ingested) else record.letter.source if isinstance(record, DeadLettered) else None
        if source is not None and source.topic == topic:
            events += 1
        elif source is not None and source.topic == f"{topic}-shares":
            shares.add((source.partition, source.offset))
    print(json.dumps({"events": events + len(shares), "seconds": seconds, "events_per_s": total / seconds, "peak_rss_mib": peak}))


def stage_replay(store: str) -> None:
    from ledger.store import Store
    from projections.audit import audit_replay

    started = time.perf_counter()
    result = audit_replay(Store(store))
    assert not result.differences and not result.unbalanced
    _report(result.records, time.perf_counter() - started, digest=result.digest)


def _relay_metrics(port: int) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def stage_relay(path: str, store: str, bootstrap: str, topic: str) -> None:
    """Live: a relay process follows the store while this process ingests the
    file; sample its lag when the ingest ends and time how long it takes to
    drain. Catch-up: a relay from scratch over the finished store (messages/s)."""
    import logging
    import signal

    from consumers.jsonl import read_files
    from consumers.relay import Relay, store_events
    from devkit.broker import free_port
    from ledger.books import Books
    from ledger.store import Store

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    Store(store).close()  # create the schema before the relay opens it
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    relay = subprocess.Popen([exe, "--store", store, "relay", "--bootstrap-servers", bootstrap, "--topic", topic,
                              "--metrics-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _relay_metrics(port)
                break
            except OSError:
                if time.monotonic() > deadline or relay.poll() is not None:
                    raise RuntimeError("relay did not start")
                time.sleep(0.1)
        ledger = Books(Store(store)).ledger("main")
        started = time.perf_counter()
        counts = ledger.ingest(read_files([path]))
        ingest_s = time.perf_counter() - started
        at_end = _relay_metrics(port)
        expected = sum(1 for _ in store_events(Store(store)))
        while True:
            m = _relay_metrics(port)
            if m["ledger_relay_lag_records"] == 0 and m["ledger_relay_messages_total"] >= expected:
                break
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"relay did not catch up: {m}")
            time.sleep(0.05)
        drain_s = time.perf_counter() - started - ingest_s
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=60)
    catch_up = Relay(Store(store), bootstrap, topic=f"{topic}-catch-up").run(until_idle_s=0)
    assert catch_up.messages == expected, (catch_up.messages, expected)
    _report(catch_up.messages, catch_up.busy_seconds, messages_per_input_event=expected / counts.total,
            live_ingest_events_per_s=counts.total / ingest_s,
            live_lag_records_at_ingest_end=at_end["ledger_relay_lag_records"],
            live_lag_seconds_at_ingest_end=at_end["ledger_relay_lag_seconds"],
            live_messages_at_ingest_end=at_end["ledger_relay_messages_total"],
            live_drain_seconds=drain_s)


def stage_raw_consume(bootstrap: str, topic: str, total: int) -> None:
    import msgspec
    from kafka import KafkaConsumer, TopicPartition

    decoder = msgspec.json.Decoder()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    tps = [TopicPartition(t, p) for t in (topic, f"{topic}-shares") for p in consumer.partitions_for_topic(t)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    n = 0
    started = time.perf_counter()
    while n < total:
        for msgs in consumer.poll(timeout_ms=1000, max_records=5000).values():
            for m in msgs:
                try:
                    decoder.decode(m.value)
                except msgspec.DecodeError:
                    pass
            n += len(msgs)
    _report(n, time.perf_counter() - started)


def stage_raw_sqlite(path: str, db: str) -> None:
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body BLOB)")
    n = 0
    started = time.perf_counter()
    with open(path, "rb") as f:
        batch = []
        for line in f:
            batch.append((line,))
            if len(batch) == 5000:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO events (body) VALUES (?)", batch)
                conn.execute("COMMIT")
                n += len(batch)
                batch = []
        if batch:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events (body) VALUES (?)", batch)
            conn.execute("COMMIT")
            n += len(batch)
    _report(n, time.perf_counter() - started)


# ------------------------------------------------------------------ driver
def _run_stage(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.e2e", "--stage", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"stage {argv[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        name, *rest = args.stage
        if name == "ingest":
            stage_ingest(*rest)
        elif name == "ingest-2w":
            stage_ingest_workers(*rest)
        elif name == "ingest-half":
            stage_ingest_half(rest[0], rest[1], int(rest[2]), int(rest[3]))
        elif name == "publish":
            stage_publish(*rest)
        elif name == "consume":
            stage_consume(rest[0], rest[1], rest[2], int(rest[3]))
        elif name == "consume-2w":
            stage_consume_workers(rest[0], rest[1], rest[2], int(rest[3]))
        elif name == "replay":
            stage_replay(*rest)
        elif name == "relay":
            stage_relay(*rest)
        elif name == "raw-consume":
            stage_raw_consume(rest[0], rest[1], int(rest[2]))
        elif name == "raw-sqlite":
            stage_raw_sqlite(*rest)
        return 0

    from devkit.broker import EmbeddedBroker
    from devkit.synthetic import write_jsonl

    wanted = [s for s in args.stages.split(",") if s]
    load_start = os.getloadavg()  # the machine is shared: the 1/5/15-minute load averages, start and end
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        path = os.path.join(tmp, "events.jsonl")
        total = write_jsonl(path, args.events, args.seed)
        ingest_store = f"sqlite:///{tmp}/ingest.db"
        if "ingest" in wanted or "replay" in wanted:
            results["ingest"] = _run_stage("ingest", path, ingest_store)
        if "replay" in wanted:
            results["replay"] = _run_stage("replay", ingest_store)
        if "ingest-2w" in wanted:
            results["ingest-2w"] = _run_stage("ingest-2w", path, f"sqlite:///{tmp}/ingest2.db", tmp)
        if "raw-sqlite" in wanted:
            results["raw-sqlite"] = _run_stage("raw-sqlite", path, f"{tmp}/raw.db")
        kafka_stages = {"publish", "consume", "consume-2w", "raw-consume"} & set(wanted)
        if kafka_stages or "relay" in wanted:
            with EmbeddedBroker() as broker:
                topic = "bench"
                if "relay" in wanted:
                    results["relay"] = _run_stage("relay", path, f"sqlite:///{tmp}/relay.db", broker.bootstrap,
                                                  "bench-ledger-events")
                if kafka_stages:
                    results["publish"] = _run_stage("publish", path, broker.bootstrap, topic)
                if "raw-consume" in wanted:
                    results["raw-consume"] = _run_stage("raw-consume", broker.bootstrap, topic, str(total))
                if "consume" in wanted:
                    results["consume"] = _run_stage("consume", f"sqlite:///{tmp}/consume.db", broker.bootstrap, topic, str(total))
                if "consume-2w" in wanted:
                    results["consume-2w"] = _run_stage("consume-2w", f"sqlite:///{tmp}/consume2.db", broker.bootstrap, topic, str(total))
    raw_consume = results.get("raw-consume", {}).get("events_per_s")
    raw_sqlite = results.get("raw-sqlite", {}).get("events_per_s")
    for name in ("consume", "consume-2w"):
        if raw_consume and name in results:
            results[name]["ratio_to_raw_consume"] = results[name]["events_per_s"] / raw_consume
    for name in ("ingest", "ingest-2w"):
        if raw_sqlite and name in results:
            results[name]["ratio_to_raw_sqlite"] = results[name]["events_per_s"] / raw_sqlite
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
               "events_requested": args.events, "events_in_file": total,
               "load_average_start": load_start, "load_average_end": os.getloadavg()}
    print(f"{'stage':<12} {'events':>10} {'seconds':>9} {'events/s':>10} {'peak RSS MiB':>13} {'ratio':>7}")
    for name in STAGES:
        r = results.get(name)
        if r is None:
            continue
        ratio = r.get("ratio_to_raw_consume") or r.get("ratio_to_raw_sqlite")
        print(f"{name:<12} {r['events']:>10,} {r['seconds']:>9.2f} {r['events_per_s']:>10,.0f} {r['peak_rss_mib']:>13.0f} "
              f"{'' if ratio is None else f'{ratio:.2f}':>7}")
    print(f"load average (1, 5, 15 min): start {machine['load_average_start']}, end {machine['load_average_end']}")
    two = results.get("ingest-2w")
    if two:
        shared, apart = two["shared_file"], two["apart"]
        print(f"ingest-2w: {two['cpu_seconds']:.1f} CPU-s in its three processes. Its two workers alone: "
              f"{shared['seconds']:.2f} s into one SQLite file (in commits: "
              f"{', '.join(f'{c:.2f}' for c in shared['commit_seconds'])} s), {apart['seconds']:.2f} s into a file "
              f"each (in commits: {', '.join(f'{c:.2f}' for c in apart['commit_seconds'])} s)")
    relay = results.get("relay")
    if relay:
        print(f"relay: {relay['events_per_s']:,.0f} messages/s from scratch ({relay['messages_per_input_event']:.2f} "
              f"messages per input event); following a live ingest ({relay['live_ingest_events_per_s']:,.0f} events/s): "
              f"lag at its end {relay['live_lag_records_at_ingest_end']:,.0f} records / "
              f"{relay['live_lag_seconds_at_ingest_end']:.1f} s, drained {relay['live_drain_seconds']:.2f} s later")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
