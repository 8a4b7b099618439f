"""Prometheus metrics of a running consumer (``consume --metrics-port``).

Its own registry, not prometheus-client's global one: a second consumer in
one process (tests, embedding) would clash there.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from consumers.kafka.dlq import CopyReport
from ledger.outcomes import IngestCounts


class ConsumerMetrics:
    """What a running consumer exposes on ``consume --metrics-port``."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.lag = Gauge("ledger_consumer_lag", "Messages behind the high-water mark, per partition",
                         ["topic", "partition"], registry=registry)
        self.position = Gauge("ledger_consumer_position", "Next offset to apply, per partition",
                              ["topic", "partition"], registry=registry)
        self.batch_seconds = Histogram("ledger_consumer_batch_seconds", "Time to apply and commit one batch",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry)
        self.events = Counter("ledger_consumer_events", "Events applied, by outcome", ["outcome"], registry=registry)
        self.dead_letters = Counter("ledger_consumer_dead_letters", "Dead letters, by reason", ["reason"], registry=registry)
        # The copies to <topic>.dlq (see consumers.kafka.dlq): written, given up on, and retry rounds.
        self.dlq_copies = Counter("ledger_dlq_copies_sent", "Dead-letter copies written to the dead-letter topic",
                                  registry=registry)
        self.dlq_failures = Counter("ledger_dlq_send_failures", "Dead-letter copies given up on after their batch's budget, "
                                    "by reason", ["reason"], registry=registry)
        self.dlq_retries = Counter("ledger_dlq_send_retries", "Rounds of dead-letter sends retried after a pause",
                                   registry=registry)

        self.truncated = Counter("ledger_consumer_truncated_logs", "Stored positions found outside the log, by what was "
                                 "done (stop, earliest, latest)", ["topic", "partition", "action"], registry=registry)

    def observe_truncated(self, topic: str, partition: int, action: str) -> None:
        self.truncated.labels(topic, str(partition), action).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def observe_batch(self, seconds: float, counts: IngestCounts) -> None:
        self.batch_seconds.observe(seconds)
        for outcome, n in (("accepted", counts.accepted), ("duplicate", counts.duplicates), ("parked", counts.parked)):
            if n:
                self.events.labels(outcome).inc(n)
        for reason, n in counts.reasons.items():
            self.dead_letters.labels(reason).inc(n)

    def observe_dlq(self, report: CopyReport) -> None:
        if report.sent:
            self.dlq_copies.inc(report.sent)
        for failure in report.failures:
            self.dlq_failures.labels(failure.reason).inc()
        if report.retries:
            self.dlq_retries.inc(report.retries)

    def observe_position(self, topic: str, partition: int, next_offset: int, lag: int | None) -> None:
        labels = (topic, str(partition))
        self.position.labels(*labels).set(next_offset)
        if lag is not None:
            self.lag.labels(*labels).set(lag)
