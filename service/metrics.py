"""Prometheus metrics for the service (prometheus-client, its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

REGISTRY = CollectorRegistry()
PAYOUTS = Counter("ledger_payouts", "Payout commands run through the API", registry=REGISTRY)
PAYOUT_LINES = Counter("ledger_payout_lines", "Payout lines paid through the API", registry=REGISTRY)
ADJUSTMENTS = Counter("ledger_adjustments", "Manual adjustments posted through the API", registry=REGISTRY)
ERRORS = Counter("ledger_http_errors", "Error responses by status", ["status"], registry=REGISTRY)


class _LedgerCollector:
    """Figures read from the balances cache at scrape time."""

    def __init__(self) -> None:
        self.cache = None

    def collect(self):
        cache = self.cache
        if cache is None:
            return
        records = CounterMetricFamily("ledger_records", "Journal records seen by this server, by kind", labels=["kind"])
        for kind, n in sorted(cache.outcomes.items()):
            records.add_metric([kind], n)
        yield records
        letters = CounterMetricFamily("ledger_dead_letters", "Dead letters seen by this server, by reason", labels=["reason"])
        for reason, n in sorted(cache.dead_letters.items()):
            letters.add_metric([reason], n)
        yield letters
        yield GaugeMetricFamily("ledger_store_position", "Newest store position (segment commit sequence) applied", value=cache.position)
        yield GaugeMetricFamily("ledger_journal_records", "Records in all journals up to that position", value=cache.records)
        yield GaugeMetricFamily("ledger_balance_rows", "(promoter, currency) balance rows", value=len(cache.balances))


_collector = _LedgerCollector()
REGISTRY.register(_collector)


def render(cache) -> bytes:
    _collector.cache = cache
    return generate_latest(REGISTRY)


class ConsumerMetrics:
    """What a running consumer exposes on ``consume --metrics-port``."""

    def __init__(self) -> None:
        from prometheus_client import Gauge, Histogram

        self.registry = REGISTRY
        self.lag = Gauge("ledger_consumer_lag", "Messages behind the high-water mark, per partition",
                         ["topic", "partition"], registry=REGISTRY)
        self.position = Gauge("ledger_consumer_position", "Next offset to apply, per partition",
                              ["topic", "partition"], registry=REGISTRY)
        self.batch_seconds = Histogram("ledger_consumer_batch_seconds", "Time to apply and commit one batch",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)
        self.events = Counter("ledger_consumer_events", "Events applied, by outcome", ["outcome"], registry=REGISTRY)
        self.dead_letters = Counter("ledger_consumer_dead_letters", "Dead letters, by reason", ["reason"], registry=REGISTRY)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=REGISTRY)
