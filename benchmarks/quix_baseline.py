"""The Quix Streams baseline of ``benchmarks.e2e`` (stage ``quix``).

A Quix Streams application with exactly-once processing that does nothing
but count messages per key (a stateful ``apply``: RocksDB state with its
changelog topic, Kafka transactions) over the benchmark's events and shares
topics, on the same broker. It stops at the last message and prints one JSON
line: messages, seconds from process start (``E2E_SPAWNED_AT``, set by the
driver just before it starts this process) to the last message processed and
to ``run()`` returned (the last checkpoint committed, the clients closed).

Runs in its own virtualenv (Quix Streams is not a dependency of the project):
``benchmarks.e2e`` creates it on first use (``ensure_quix_venv``) and runs this
file with its interpreter; nothing here imports the project.

    <venv>/bin/python benchmarks/quix_baseline.py BOOTSTRAP TOPIC[,TOPIC] TOTAL STATE_DIR [json|bytes]
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

SPAWNED_AT = float(os.environ.get("E2E_SPAWNED_AT") or time.time())
QUIX_VERSION = "3.28.1"
SESSION_TIMEOUT_MS = int(os.environ.get("QUIX_SESSION_TIMEOUT_MS", "6000"))


def main(argv: list[str]) -> int:
    bootstrap, topics, total, state_dir = argv[0], argv[1].split(","), int(argv[2]), argv[3]
    deserializer = argv[4] if len(argv) > 4 else "json"
    from quixstreams import Application

    seen = 0
    skipped = 0
    first_at = last_at = 0.0
    app: Application

    def on_error(exc, row, logger) -> bool:
        # A message the deserializer cannot read (the stream has a few on
        # purpose): counted and skipped, as our consumer dead-letters them.
        nonlocal seen, skipped, last_at
        seen += 1
        skipped += 1
        last_at = time.time()
        if seen >= total:
            app.stop()
        return True

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-bench-{time.time_ns()}",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=state_dir,
        loglevel=os.environ.get("QUIX_LOGLEVEL", "WARNING"),
        on_consumer_error=on_error,
        on_processing_error=on_error,
        # Tansu holds a group's first join for about half the session timeout
        # (librdkafka's default 45 s: 23 s measured before any message); short,
        # as the project's own group tests use with Tansu.
        consumer_extra_config={"session.timeout.ms": SESSION_TIMEOUT_MS},
    )

    def count(value, state):
        nonlocal seen, first_at, last_at
        if not seen:
            first_at = time.time()
        n = state.get("n", 0) + 1
        state.set("n", n)
        seen += 1
        if seen >= total:
            last_at = time.time()
            app.stop()
        return n

    for name in topics:
        topic = app.topic(name, value_deserializer=deserializer, key_deserializer="bytes")
        # Tansu's DescribeConfigs answer has no retention.ms, which Quix reads
        # (unguarded) to configure the changelog topic: infinite, as Kafka's default.
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        app.dataframe(topic).apply(count, stateful=True)
    app.run()
    returned_at = time.time()
    print(json.dumps({"events": seen, "skipped": skipped, "deserializer": deserializer,
                      "seconds_to_first_event": first_at - SPAWNED_AT, "seconds_to_last_event": last_at - SPAWNED_AT,
                      "seconds": returned_at - SPAWNED_AT, "cpu_seconds": time.process_time(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0 if seen >= total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
