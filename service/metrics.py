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
