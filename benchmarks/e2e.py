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
  replay          audit replay of the ingested store        (commission-ledger audit replay, --jobs: every core)
  relay           ledger events out (commission-ledger relay): a relay process follows the
                  store while the file is ingested (lag at the end of the ingest, time to
                  drain it), then a relay from scratch over the finished store (messages/s);
                  "events" counts messages here
  raw-consume     baseline: kafka-python consume + msgspec decode only
  raw-consume-fast  the same with our record reader (consumers/kafka/fastrecords) installed
  raw-confluent   the same with confluent-kafka (librdkafka), in its own virtualenv
                  (benchmarks/confluent_baseline.py): what a C client's record reading costs
  quix            baseline: a Quix Streams app (exactly-once, RocksDB state with changelog,
                  a per-key count and nothing else) over the same topics, in its own
                  virtualenv (benchmarks/quix_baseline.py); from process start to last event
  raw-sqlite      baseline: plain SQLite, one row per event, one transaction per 5,000

raw-consume-fast, raw-confluent and quix run only when named in --stages; the
last two create their virtualenvs on first use under $E2E_VENV_DIR (default
~/.cache/commission-ledger-bench) with pinned versions from PyPI.

Prints a table and writes JSON with events/s, seconds, CPU seconds (the stage
process, all its threads: events per CPU second is the number that survives a
noisy machine), peak RSS (MiB), the load average around each stage, and the
ratio of each stage to its raw baseline (ingest/consume vs raw-consume, ingest
vs raw-sqlite). consume and quix are also timed from process start (the
driver's clock when it started the process) to the last event: "start s"
and the ratio consume/quix on that clock.

--profile PATH writes a cProfile of the consume stage's run (its timed part).
--consume-options JSON: LedgerConsumer keyword arguments for the consume stage
(e.g. '{"max_poll_records": 10000, "client_options": {"fetch_max_bytes": 8388608}}').
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

STAGES = ("ingest", "ingest-2w", "publish", "consume", "consume-2w", "replay", "relay", "raw-consume", "raw-consume-fast",
          "raw-confluent", "quix", "raw-sqlite")
# Only when asked for: quix and raw-confluent install into their own virtualenvs
# from PyPI; raw-consume-fast is a measurement of our record reader.
OPT_IN_STAGES = ("raw-consume-fast", "raw-confluent", "quix")
DEFAULT_STAGES = tuple(s for s in STAGES if s not in OPT_IN_STAGES)
IDLE_S = 2.0  # consume-2w: workers exit after this long without messages (not counted)
SPAWNED_ENV = "E2E_SPAWNED_AT"  # the driver's time.time() when it started a stage's process
VENV_DIR = os.environ.get("E2E_VENV_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "commission-ledger-bench")
HERE = os.path.dirname(os.path.abspath(__file__))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_CPU_AT_START = _cpu_s()


def _report(events: int, seconds: float, *, cpu_seconds: float | None = None, **extra) -> None:
    """One JSON line; ``cpu_seconds``: of the timed part (default: since this process started)."""
    cpu = cpu_seconds if cpu_seconds is not None else _cpu_s() - _CPU_AT_START
    spawned = os.environ.get(SPAWNED_ENV)
    print(json.dumps({"events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else 0,
                      "cpu_seconds": cpu, "events_per_cpu_s": events / cpu if cpu else 0,
                      "seconds_from_process_start": time.time() - float(spawned) if spawned else None,
                      "peak_rss_mib": _peak_rss_mib(), **extra}))


# ----------------------------------------------------------------- stages
def stage_ingest(path: str, store: str, config: str = "") -> None:
    from consumers.jsonl import read_files
    from ledger.books import Books
    from ledger.config import load_rules
    from ledger.store import Store

    ledger = Books(Store(store)).ledger("main")
    if config:  # --rules14: the rules of SPEC §14/§15 (devkit/demo_rules.toml)
        ledger.adopt_rules(load_rules(config))
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


def stage_consume(store: str, bootstrap: str, topic: str, total: int, options: str = "{}", profile: str = "") -> None:
    import logging

    from consumers.kafka import LedgerConsumer
    from ledger.store import Store

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    consumer = LedgerConsumer(Store(store), bootstrap, topic=topic, shares_topic=f"{topic}-shares", **json.loads(options))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    started, cpu_started = time.perf_counter(), _cpu_s()
    if profiler is not None:
        profiler.enable()
    stats = consumer.run(max_messages=total, until_idle_s=30)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    _report(stats.messages, time.perf_counter() - started, cpu_seconds=_cpu_s() - cpu_started)


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
    from ledger.replay_jobs import default_jobs
    from ledger.store import Store
    from projections.audit import audit_replay

    started = time.perf_counter()
    result = audit_replay(Store(store), jobs=default_jobs())  # as the command does: every core
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


def stage_raw_consume(bootstrap: str, topic: str, total: int, fast: bool = False) -> None:
    import msgspec
    from kafka import KafkaConsumer, TopicPartition

    decoder = msgspec.json.Decoder()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    if fast:
        from consumers.kafka import fastrecords

        assert fastrecords.install(consumer)
    tps = [TopicPartition(t, p) for t in (topic, f"{topic}-shares") for p in consumer.partitions_for_topic(t)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    n = 0
    started, cpu_started = time.perf_counter(), _cpu_s()
    while n < total:
        for msgs in consumer.poll(timeout_ms=1000, max_records=5000).values():
            for m in msgs:
                try:
                    decoder.decode(m.value)
                except msgspec.DecodeError:
                    pass
            n += len(msgs)
    _report(n, time.perf_counter() - started, cpu_seconds=_cpu_s() - cpu_started)


# ------------------------------------------- baselines in their own virtualenvs
def ensure_venv(name: str, requirements: list[str]) -> str:
    """The python of ``VENV_DIR/name`` with ``requirements`` installed (pip,
    once: a marker file records what was installed)."""
    venv = os.path.join(VENV_DIR, name)
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, "installed.txt")
    wanted = "\n".join(requirements)
    if os.path.exists(marker) and open(marker).read() == wanted:
        return python
    os.makedirs(VENV_DIR, exist_ok=True)
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    print(f"[e2e] installing {' '.join(requirements)} into {venv}", file=sys.stderr, flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *requirements], check=True)
    with open(marker, "w") as f:
        f.write(wanted)
    return python


def _run_baseline(python: str, script: str, *args: str) -> dict:
    env = {**os.environ, SPAWNED_ENV: repr(time.time())}
    done = subprocess.run([python, os.path.join(HERE, script), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage_raw_confluent(bootstrap: str, topic: str, total: int) -> dict:
    from benchmarks.confluent_baseline import CONFLUENT_KAFKA_VERSION, MSGSPEC_VERSION

    python = ensure_venv("confluent-venv", [f"confluent-kafka=={CONFLUENT_KAFKA_VERSION}", f"msgspec=={MSGSPEC_VERSION}"])
    result = _run_baseline(python, "confluent_baseline.py", bootstrap, f"{topic},{topic}-shares", str(total))
    result["events_per_cpu_s"] = result["events"] / result["cpu_seconds"] if result["cpu_seconds"] else 0
    return result


def stage_quix(bootstrap: str, topic: str, total: int, state_dir: str, deserializer: str = "json") -> dict:
    """Quix Streams from process start to its last event; "seconds" is that
    clock (it is what the issue compares), the in-app figures beside it."""
    from benchmarks.quix_baseline import QUIX_VERSION

    python = ensure_venv("quix-venv", [f"quixstreams=={QUIX_VERSION}"])
    result = _run_baseline(python, "quix_baseline.py", bootstrap, f"{topic},{topic}-shares", str(total), state_dir,
                           deserializer)
    seconds = result["seconds"]
    steady = result["seconds_to_last_event"] - result["seconds_to_first_event"]
    return {**result, "events_per_s": result["events"] / seconds, "seconds_from_process_start": seconds,
            "events_per_cpu_s": result["events"] / result["cpu_seconds"] if result.get("cpu_seconds") else 0,
            "events_per_s_first_to_last_event": result["events"] / steady if steady > 0 else 0}


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
def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run_stage(*argv: str) -> dict:
    load_before = _load()
    env = {**os.environ, SPAWNED_ENV: repr(time.time())}
    done = subprocess.run([sys.executable, "-m", "benchmarks.e2e", "--stage", *argv], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"stage {argv[0]} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": load_before, "load_after": _load()}


def _in_driver(run) -> dict:
    load_before = _load()
    return {**run(), "load_before": load_before, "load_after": _load()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated, of: {','.join(STAGES)} (default: all but {', '.join(OPT_IN_STAGES)})")
    parser.add_argument("--profile", default="", help="write a cProfile of the consume stage here")
    parser.add_argument("--consume-options", default="{}", help="LedgerConsumer keyword arguments (JSON) for consume")
    parser.add_argument("--quix-deserializer", default="json", choices=("json", "bytes"),
                        help="the Quix app's value deserializer (json: Quix's default; bytes: no decoding at all)")
    parser.add_argument("--rules14", action="store_true",
                        help="the stream of SPEC §14/§15 (shares of shops and products, fulfillments) and the demo's "
                             "rules (devkit/demo_rules.toml: scope = product, clock = receipt) for ingest")
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
            stage_consume(rest[0], rest[1], rest[2], int(rest[3]), *rest[4:])
        elif name == "consume-2w":
            stage_consume_workers(rest[0], rest[1], rest[2], int(rest[3]))
        elif name == "replay":
            stage_replay(*rest)
        elif name == "relay":
            stage_relay(*rest)
        elif name == "raw-consume":
            stage_raw_consume(rest[0], rest[1], int(rest[2]))
        elif name == "raw-consume-fast":
            stage_raw_consume(rest[0], rest[1], int(rest[2]), fast=True)
        elif name == "raw-sqlite":
            stage_raw_sqlite(*rest)
        return 0

    from devkit.broker import EmbeddedBroker
    from devkit.synthetic import DEMO_RULES, write_jsonl

    wanted = [s for s in args.stages.split(",") if s]
    load_start = os.getloadavg()  # the machine is shared: the 1/5/15-minute load averages, start and end
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        path = os.path.join(tmp, "events.jsonl")
        total = write_jsonl(path, args.events, args.seed, rules14=args.rules14)
        ingest_store = f"sqlite:///{tmp}/ingest.db"
        if "ingest" in wanted or "replay" in wanted:
            results["ingest"] = _run_stage("ingest", path, ingest_store, *([DEMO_RULES] if args.rules14 else []))
        if "replay" in wanted:
            results["replay"] = _run_stage("replay", ingest_store)
        if "ingest-2w" in wanted:
            results["ingest-2w"] = _run_stage("ingest-2w", path, f"sqlite:///{tmp}/ingest2.db", tmp)
        if "raw-sqlite" in wanted:
            results["raw-sqlite"] = _run_stage("raw-sqlite", path, f"{tmp}/raw.db")
        kafka_stages = {"publish", "consume", "consume-2w", "raw-consume", "raw-consume-fast", "raw-confluent", "quix"} & set(wanted)
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
                if "raw-consume-fast" in wanted:
                    results["raw-consume-fast"] = _run_stage("raw-consume-fast", broker.bootstrap, topic, str(total))
                if "raw-confluent" in wanted:
                    results["raw-confluent"] = _in_driver(lambda: stage_raw_confluent(broker.bootstrap, topic, total))
                if "consume" in wanted:
                    results["consume"] = _run_stage("consume", f"sqlite:///{tmp}/consume.db", broker.bootstrap, topic, str(total),
                                                    args.consume_options, os.path.abspath(args.profile) if args.profile else "")
                if "quix" in wanted:
                    results["quix"] = _in_driver(lambda: stage_quix(broker.bootstrap, topic, total, f"{tmp}/quix-state",
                                                                             args.quix_deserializer))
                if "consume-2w" in wanted:
                    results["consume-2w"] = _run_stage("consume-2w", f"sqlite:///{tmp}/consume2.db", broker.bootstrap, topic, str(total))
    raw_consume = results.get("raw-consume", {}).get("events_per_s")
    raw_sqlite = results.get("raw-sqlite", {}).get("events_per_s")
    for name in ("consume", "consume-2w", "raw-consume-fast", "raw-confluent"):
        if raw_consume and name in results:
            results[name]["ratio_to_raw_consume"] = results[name]["events_per_s"] / raw_consume
    quix = results.get("quix")
    if quix and "consume" in results:
        # Both from process start to the last event, one process each.
        results["consume"]["ratio_to_quix"] = quix["seconds"] / results["consume"]["seconds_from_process_start"]
    for name in ("ingest", "ingest-2w"):
        if raw_sqlite and name in results:
            results[name]["ratio_to_raw_sqlite"] = results[name]["events_per_s"] / raw_sqlite
    machine = {"rules14": args.rules14, "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
               "events_requested": args.events, "events_in_file": total,
               "load_average_start": load_start, "load_average_end": os.getloadavg()}
    print(f"{'stage':<16} {'events':>10} {'seconds':>9} {'events/s':>10} {'ev/CPU-s':>9} {'start s':>8} "
          f"{'peak RSS MiB':>13} {'ratio':>7} {'load before/after':>18}")
    for name in STAGES:
        r = results.get(name)
        if r is None:
            continue
        ratio = r.get("ratio_to_raw_consume") or r.get("ratio_to_raw_sqlite")
        per_cpu = r.get("events_per_cpu_s")
        start = r.get("seconds_from_process_start")
        load = f"{r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}" if "load_before" in r else ""
        print(f"{name:<16} {r['events']:>10,} {r['seconds']:>9.2f} {r['events_per_s']:>10,.0f} "
              f"{'' if not per_cpu else f'{per_cpu:,.0f}':>9} {'' if start is None else f'{start:.2f}':>8} "
              f"{r.get('peak_rss_mib', 0):>13.0f} {'' if ratio is None else f'{ratio:.2f}':>7} {load:>18}")
    if quix:
        print(f"quix: {quix['events_per_s']:,.0f} events/s from process start ({quix['seconds_to_first_event']:.1f} s to its "
              f"first event: group join, changelog topics), {quix['events_per_s_first_to_last_event']:,.0f} events/s "
              f"from first to last event; consume/quix from process start: "
              f"{results.get('consume', {}).get('ratio_to_quix', float('nan')):.2f}")
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
