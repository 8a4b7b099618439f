"""The confluent-kafka raw consume of ``benchmarks.e2e`` (stage ``raw-confluent``).

The twin of the ``raw-consume`` stage with confluent-kafka (librdkafka)
instead of kafka-python: every partition of the topics assigned from the
beginning (no group, like our consumer), every message decoded with msgspec,
nothing else. It shows what the record reading of a C client would leave for
the ledger; confluent-kafka is not a dependency of the project.

Runs in its own virtualenv, created by ``benchmarks.e2e`` on first use; nothing
here imports the project.

    <venv>/bin/python benchmarks/confluent_baseline.py BOOTSTRAP TOPIC[,TOPIC] TOTAL
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

SPAWNED_AT = float(os.environ.get("E2E_SPAWNED_AT") or time.time())
CONFLUENT_KAFKA_VERSION = "2.16.1"
MSGSPEC_VERSION = "0.22.0"
BATCH = 5000


def main(argv: list[str]) -> int:
    bootstrap, topics, total = argv[0], argv[1].split(","), int(argv[2])
    import confluent_kafka
    import msgspec
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    decoder = msgspec.json.Decoder()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-confluent", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    metadata = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata.topics[t].partitions])
    n = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    while n < total:
        for m in consumer.consume(BATCH, timeout=1.0):
            if m.error():
                continue
            try:
                decoder.decode(m.value() or b"")
            except msgspec.DecodeError:
                pass
            n += 1
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    consumer.close()
    print(json.dumps({"events": n, "seconds": seconds, "events_per_s": n / seconds, "cpu_seconds": cpu,
                      "seconds_from_process_start": time.time() - SPAWNED_AT,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "client": f"confluent-kafka {confluent_kafka.version()[0]}, librdkafka {confluent_kafka.libversion()[0]}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
