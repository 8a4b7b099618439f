"""Prometheus metrics for the service (prometheus-client, its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from projections.readmodels import Figures

REGISTRY = CollectorRegistry()
PAYOUTS = Counter("ledger_payouts", "Payout commands run through the API", registry=REGISTRY)
PAYOUT_LINES = Counter("ledger_payout_lines", "Payout lines paid through the API", registry=REGISTRY)
ADJUSTMENTS = Counter("ledger_adjustments", "Manual adjustments posted through the API", registry=REGISTRY)
HOLD_COMMANDS = Counter("ledger_hold_commands", "SPEC §16 commands run through the API, by route", ["route"], registry=REGISTRY)
AWAITING_RECEIPT = Gauge("ledger_orders_awaiting_receipt",
                         "Orders pending under the receipt clock, not received nor fully refunded (SPEC §15)",
                         registry=REGISTRY)
ERRORS = Counter("ledger_http_errors", "Error responses by status", ["status"], registry=REGISTRY)


class _LedgerCollector:
    """Figures of the store, read from the read-model tables at scrape time."""

    def __init__(self) -> None:
        self.figures: Figures | None = None

    def collect(self):
        figures = self.figures
        if figures is None:
            return
        records = CounterMetricFamily("ledger_records", "Journal records in the store, by kind", labels=["kind"])
        for kind, n in sorted(figures.records_by_kind.items()):
            records.add_metric([kind], n)
        yield records
        letters = CounterMetricFamily("ledger_dead_letters", "Dead letters in the store, by reason", labels=["reason"])
        for reason, n in sorted(figures.dead_letters_by_reason.items()):
            letters.add_metric([reason], n)
        yield letters
        yield GaugeMetricFamily("ledger_store_position", "Newest store position (segment commit sequence) in the read models",
                                value=figures.position)
        yield GaugeMetricFamily("ledger_journal_records", "Records in all journals up to that position", value=figures.records)
        yield GaugeMetricFamily("ledger_balance_rows", "(promoter, currency) balance rows", value=figures.balance_rows)


_collector = _LedgerCollector()
REGISTRY.register(_collector)


def render(figures: Figures) -> bytes:
    _collector.figures = figures
    return generate_latest(REGISTRY)
