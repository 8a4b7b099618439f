"""The Kafka pipeline against a real broker over the Kafka protocol.

Each test checks the consumer's result against a clean file ingest of the same
events (the reference for "nothing lost, nothing doubled").
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consumers.kafka import LedgerConsumer, ensure_topics, publish
from devkit.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.records import Ingested, Source
from ledger.store import JournalStore, Store

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")


def reference_balances(lines: list[bytes]) -> dict:
    """Balances of a single clean file ingest of ``lines``."""
    store = Store("memory://")
    ledger = Ledger(JournalStore(store, "main"))
    ledger.ingest((raw, Source(file="ref", line=i)) for i, raw in enumerate(lines, 1))
    return _nonzero(Books(store).balances())


def _nonzero(balances: dict) -> dict:
    return {k: tuple(v) for k, v in sorted(balances.items()) if any(v)}


def consume(store_url: str, bootstrap: str, topics, **kwargs):
    topic, shares = topics
    consumer = LedgerConsumer(Store(store_url), bootstrap, topic=topic, shares_topic=shares, **kwargs)
    return consumer.run(until_idle_s=2.0)


def accepted_event_ids(store_url: str) -> list[str]:
    return [r.event_id for _, _, r in Books(Store(store_url)).records()
            if isinstance(r, Ingested) and r.outcome in ("accepted", "parked") and not r.source.topic.startswith("sh-")]


def test_publish_then_consume_equals_file_ingest_and_dead_letters_reach_the_dlq(tmp_path, kafka_bootstrap, topics):
    lines = list(generate(3_000, seed=11, malformed_rate=0.01))
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    url = f"sqlite:///{tmp_path}/ledger.db"
    stats = consume(url, kafka_bootstrap, topics)
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
    assert stats.counts.dead_letters > 0

    from kafka import KafkaConsumer, TopicPartition

    dlq = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    dlq.assign([TopicPartition(f"{topics[0]}.dlq", 0)])
    dlq.seek_to_beginning()
    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < stats.counts.dead_letters and time.monotonic() < deadline:
        for batch in dlq.poll(timeout_ms=500).values():
            messages += batch
    dlq.close()
    assert len(messages) == stats.counts.dead_letters
    headers = dict(messages[0].headers)
    assert headers["reason"].decode() in {"malformed_json", "unknown_type", "invalid_timestamp", "schema_violation"}
    assert headers["source.topic"].decode() == topics[0]
    src_partition, src_offset = int(headers["source.partition"]), int(headers["source.offset"])
    # The DLQ value is the original message, byte for byte.
    src = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topics[0], src_partition)
    src.assign([tp])
    src.seek(tp, src_offset)
    original = next(iter(src.poll(timeout_ms=5000, max_records=1).values()))[0]
    src.close()
    assert original.value == messages[0].value
    # Every dead letter is also in the ledger with its source position.
    out = subprocess.run([EXE, "--store", url, "dead-letters", "--format", "json"], capture_output=True, check=True).stdout
    rows = json.loads(out)
    assert len(rows) == stats.counts.dead_letters
    assert f"{topics[0]}/{src_partition}@{src_offset}" in {r["source"] for r in rows}


def test_consumer_killed_with_sigkill_resumes_exactly_once(tmp_path, kafka_bootstrap, topics):
    lines = list(generate(30_000, seed=5))
    events = sum(1 for raw in lines if b'"type":"share"' not in raw)
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    url = f"sqlite:///{tmp_path}/ledger.db"
    # Small batches (many transactions) so each kill lands inside the stream, not after it.
    cmd = [EXE, "--store", url, "consume", "--bootstrap-servers", kafka_bootstrap,
           "--topic", topics[0], "--shares-topic", topics[1], "--until-idle", "3", "--max-poll-records", "300"]
    rng = random.Random(3)
    killed_at = []
    # The state changelog folded after every segment, by a process the consumer
    # starts: a kill of the process group lands inside batches and inside folds.
    env = {**os.environ, "LEDGER_FOLD_EVERY": "1"}
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.85):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        target = int(events * fraction)
        deadline = time.monotonic() + 120
        while _consumed(url, topics[0]) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.02))  # somewhere inside the next batch
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at.append(_consumed(url, topics[0]))
        proc.wait()
    mid_stream = [n for n in killed_at if 0 < n < events]
    assert len(mid_stream) >= 3, (killed_at, events)  # at least three kills with work still to do
    done = subprocess.run(cmd, capture_output=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert _consumed(url, topics[0]) == events
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
    ids = accepted_event_ids(url)
    assert len(ids) == len(set(ids)), "an event was applied twice"
    # The audit re-executes every partition's journal and compares the state
    # tables the killed batches wrote with those the re-execution produces,
    # and each stored Kafka position with the records it covers.
    audit = subprocess.run([EXE, "--store", url, "audit", "replay"], capture_output=True)
    assert audit.returncode == 0 and b"FAIL" not in audit.stdout, audit.stdout.decode()[-2000:]
    assert b"rules re-executed: every stored record is what the recorded rules produce" in audit.stdout
    # The same events ingested from a file give the same balances digest.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    file_store = f"sqlite:///{tmp_path}/file.db"
    subprocess.run([EXE, "--store", file_store, "ingest", str(path)], check=True, capture_output=True)
    from_file = subprocess.run([EXE, "--store", file_store, "audit", "replay"], capture_output=True, text=True).stdout
    balances_line = [l for l in audit.stdout.decode().splitlines() if l.startswith("balances digest")]
    assert balances_line and balances_line[0] in from_file.splitlines()


@pytest.mark.parametrize("mode", ["static", "group"])
def test_consume_with_two_worker_processes(tmp_path, kafka_bootstrap, topics, mode):
    """``consume --workers 2``: two processes split the events partitions (p mod 2,
    or as group members), each reads every shares partition; the books equal a
    single clean ingest."""
    lines = list(generate(8_000, seed=21))
    events = sum(1 for raw in lines if b'"type":"share"' not in raw)
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    url = f"sqlite:///{tmp_path}/ledger.db"
    cmd = [EXE, "--store", url, "consume", "--bootstrap-servers", kafka_bootstrap, "--topic", topics[0],
           "--shares-topic", topics[1], "--workers", "2", "--until-idle", "4"]
    if mode == "group":
        cmd += ["--group", f"g-{topics[0]}", "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("2 workers exited: [0, 0]")
    if mode == "static":
        assert "member 0/2: partitions [0, 2]" in done.stderr and "member 1/2: partitions [1, 3]" in done.stderr
    assert _consumed(url, topics[0]) == events
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
    ids = accepted_event_ids(url)
    assert len(ids) == len(set(ids)), "an event was applied twice"
    bad = subprocess.run(cmd[:cmd.index("--workers")] + ["--workers", "2", "--max-messages", "5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not with --workers" in bad.stderr


def test_two_consumers_in_a_group_split_partitions_and_one_stops(tmp_path, kafka_bootstrap, topics):
    lines = list(generate(12_000, seed=9))
    ensure_topics(kafka_bootstrap, {topics[0]: 4, topics[1]: 2})
    publish(lines[:6_000], kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    url = f"sqlite:///{tmp_path}/ledger.db"
    options = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}
    group = f"g-{topics[0]}"
    seen_partitions: dict[str, set[int]] = {"a": set(), "b": set()}

    def member(name: str, **run_kwargs):
        consumer = LedgerConsumer(Store(url), kafka_bootstrap, topic=topics[0], shares_topic=topics[1], group=group,
                                  client_options=options,
                                  on_batch=lambda info: seen_partitions[name].add(info["partition"]))
        return consumer, threading.Thread(target=consumer.run, kwargs=run_kwargs, daemon=True)

    a, a_thread = member("a", until_idle_s=12)
    b, b_thread = member("b", until_idle_s=12)
    a_thread.start()
    b_thread.start()
    time.sleep(6)
    b.stop()  # stopped mid-stream: its partitions move to a
    b_thread.join(timeout=30)
    publish(lines[6_000:], kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    a_thread.join(timeout=120)
    assert not a_thread.is_alive()
    assert seen_partitions["a"] and seen_partitions["b"], seen_partitions
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
    ids = accepted_event_ids(url)
    assert len(ids) == len(set(ids))


class FlakyProxy:
    """A TCP proxy to the broker that can go away (connections dropped, the
    port refusing) and come back: to the consumer, the broker restarts.

    ``outage()`` cuts at once: the listener is shut down before it is closed
    (closing alone does not wake the thread blocked in ``accept()`` on Linux,
    and that thread would accept — and proxy — one more connection), and a
    connection accepted in the same instant is dropped, not proxied."""

    def __init__(self, target: str, port: int) -> None:
        host, target_port = target.split(":")
        self.target = (host, int(target_port))
        self.port = port
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        with self.lock:
            self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # shut down by outage()
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                live = self.server is server  # not cut since accept() returned
                if live:
                    self.sockets |= {client, upstream}
            if not live:
                _close(client, upstream)
                return
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.sockets -= {src, dst}
            _close(src, dst)

    def outage(self) -> None:
        with self.lock:
            server, self.server = self.server, None
            sockets, self.sockets = self.sockets, set()
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress: the port refuses from now on
            except OSError:
                pass
            server.close()
        _close(*sockets)

    def close(self) -> None:
        self.outage()


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def test_the_flaky_proxy_really_cuts_and_comes_back():
    """No broker needed: an echo server behind the proxy. During an outage
    every connection is refused (the first one too) and open ones are cut."""
    from devkit.broker import free_port

    echo = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")],
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    port = free_port()
    proxy = FlakyProxy(f"127.0.0.1:{echo.getsockname()[1]}", port)
    try:
        for _ in range(2):
            before = socket.create_connection(("127.0.0.1", port), timeout=2)
            before.sendall(b"ping")
            assert before.recv(16) == b"ping"
            proxy.outage()
            for _ in range(3):
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=2)
            try:
                cut = before.recv(16) == b""
            except OSError:
                cut = True
            assert cut
            before.close()
            proxy.restore()
    finally:
        proxy.close()
        echo.close()


def _consumed(url: str, topic: str, partitions: int = 4) -> int:
    """Messages of ``topic`` the ledger has committed: its stored positions."""
    try:
        store = Store(url)
        return sum(store.position(f"kafka:{topic}:{p}|{topic}|{p}") or 0 for p in range(partitions))
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return 0


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_broker_unreachable_at_start_and_outage_mid_stream(tmp_path, topics):
    """The broker is started after the consumer, then (through a proxy that is
    the consumer's only route to it) disappears mid-stream and comes back."""
    from devkit.broker import EmbeddedBroker, free_port

    lines = list(generate(8_000, seed=21))
    url = f"sqlite:///{tmp_path}/ledger.db"
    proxy_port = free_port()
    log = tmp_path / "consume.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [EXE, "--store", url, "consume", "--bootstrap-servers", f"127.0.0.1:{proxy_port}",
             "--topic", topics[0], "--shares-topic", topics[1], "--until-idle", "20"],
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
        time.sleep(3)  # nothing listens yet: the consumer waits and retries
        assert proc.poll() is None
        with EmbeddedBroker(advertised_port=proxy_port) as broker:
            # Clients only ever reach the broker through the proxy (it is what
            # the broker advertises), so the proxy's outage is the broker's.
            proxy = FlakyProxy(broker.bootstrap, proxy_port)
            via_proxy = f"127.0.0.1:{proxy_port}"
            try:
                publish(lines[:4_000], via_proxy, topic=topics[0], shares_topic=topics[1])
                first_half_events = sum(1 for raw in lines[:4_000] if b'"type":"share"' not in raw)
                _wait_for(lambda: _consumed(url, topics[0]) >= first_half_events, 60)
                proxy.outage()
                with pytest.raises(ConnectionRefusedError):  # the broker is really gone for the consumer
                    socket.create_connection(("127.0.0.1", proxy_port), timeout=2)
                time.sleep(4)
                proxy.restore()
                publish(lines[4_000:], via_proxy, topic=topics[0], shares_topic=topics[1])
                proc.wait(timeout=180)
            finally:
                proxy.close()
                if proc.poll() is None:
                    proc.kill()
    text = log.read_text()
    assert "unreachable (connection refused); retrying" in text, text[-3000:]  # at start
    assert "unreachable; the client is retrying" in text, text[-3000:]  # mid-stream
    assert "reachable again" in text, text[-3000:]
    assert proc.returncode == 0, text[-2000:]
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)


INTEROP = Path(__file__).parent / "interop"


def _produce_with_kcat(bootstrap: str, topics, lines: list[bytes], tmp_path: Path) -> None:
    events_file, shares_file = tmp_path / "events.txt", tmp_path / "shares.txt"
    with open(events_file, "wb") as ev, open(shares_file, "wb") as sh:
        for raw in lines:
            obj = json.loads(raw)
            key = obj.get("promoter_id") if obj["type"] == "share" else obj.get("buyer_id")
            (sh if obj["type"] == "share" else ev).write(key.encode() + b"\t" + raw + b"\n")
    for path, topic in ((events_file, topics[0]), (shares_file, topics[1])):
        subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", str(path)], check=True, timeout=60)


def _produce_with_kafkajs(bootstrap: str, topics, lines: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(["node", str(INTEROP / "produce.js"), bootstrap, topics[0], topics[1], str(path)],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("client", ["kafkajs", "kcat"])
def test_events_produced_by_another_client_are_consumed(tmp_path, kafka_bootstrap, kafka_kind, topics, client):
    """Interop with clients nobody here wrote: KafkaJS (Node) and kcat (librdkafka)."""
    if client == "kafkajs" and not (INTEROP / "node_modules" / "kafkajs").is_dir():
        pytest.skip("KafkaJS not installed (scripts/install.sh installs it with npm)")
    if client == "kcat" and shutil.which("kcat") is None:
        pytest.skip("kcat not installed (scripts/install.sh installs the Debian package)")
    if client == "kcat" and kafka_kind == "tansu":
        pytest.skip("kcat's librdkafka (2.0.2, Debian's kcat 1.7.1) fails its ApiVersions v3 exchange with Tansu "
                    "('Read underflow'; librdkafka 2.12 and 2.16 negotiate fine); "
                    "kcat runs against a real Apache Kafka (testcontainers or LEDGER_TEST_KAFKA)")
    lines = list(generate(500, seed=2, malformed_rate=0, duplicate_rate=0))
    ensure_topics(kafka_bootstrap, {topics[0]: 2, topics[1]: 1, f"{topics[0]}.dlq": 1})
    (_produce_with_kafkajs if client == "kafkajs" else _produce_with_kcat)(kafka_bootstrap, topics, lines, tmp_path)
    url = f"sqlite:///{tmp_path}/ledger.db"
    stats = consume(url, kafka_bootstrap, topics)
    assert stats.counts.dead_letters == 0
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)


def test_consumer_exposes_lag_and_batch_latency_metrics(tmp_path, kafka_bootstrap, topics):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from devkit.broker import free_port

    lines = list(generate(2_000, seed=8))
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    port = free_port()
    proc = subprocess.Popen([EXE, "--store", f"sqlite:///{tmp_path}/l.db", "consume", "--bootstrap-servers", kafka_bootstrap,
                             "--topic", topics[0], "--shares-topic", topics[1], "--until-idle", "6",
                             "--metrics-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                time.sleep(0.3)
                continue
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in text_string_to_metric_families(text) for s in f.samples}
            if samples.get(("ledger_consumer_batch_seconds_count", ()), 0) >= 1 and any(
                    k[0] == "ledger_consumer_lag" for k in samples):
                break
            time.sleep(0.3)
        assert samples.get(("ledger_consumer_batch_seconds_count", ()), 0) >= 1
        lags = {dict(k[1])["partition"]: v for k, v in samples.items() if k[0] == "ledger_consumer_lag"}
        assert set(lags) <= {"0", "1", "2", "3"} and lags and all(v >= 0 for v in lags.values())
        assert samples.get(("ledger_consumer_events_total", (("outcome", "accepted"),)), 0) > 0
    finally:
        proc.wait(timeout=60)


def test_a_consume_leaves_no_polled_records_frozen_in_cyclic_garbage(tmp_path, kafka_bootstrap, topics):
    """The ledger freezes the heap after each commit (``gc.freeze``: the cached
    state out of the collector's reach). A poll that times out inside
    kafka-python leaves a cycle (exception, traceback, frames) reaching the
    polling frames; frozen, it kept the records those frames held for good (a
    1M consume grew to 1.2 GB). After a consume, the garbage freed by
    unfreezing holds no polled record."""
    import gc

    from kafka.consumer.fetcher import ConsumerRecord

    lines = list(generate(20_000, seed=31))
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    stats = consume(f"sqlite:///{tmp_path}/ledger.db", kafka_bootstrap, topics)
    assert stats.messages == len(lines)
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        kept = sum(1 for o in gc.garbage if type(o) is ConsumerRecord)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert kept == 0
