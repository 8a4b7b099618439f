"""``demo``: the whole pipeline on embedded defaults.

Starts the embedded Kafka broker (Tansu), generates a seeded realistic stream
(re-share trees, two currencies, partial and full refunds, late, duplicate and
malformed messages), publishes it, consumes it into a temporary SQLite ledger,
settles, pays out, relays every money movement to a ledger-events topic (and
prints a few of those messages), and prints the payout lines, the dead letters
and the audit digest.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time

from cli.options import Command, config_path
from cli.render import out
from kafka import KafkaConsumer, TopicPartition

from consumers.kafka import LedgerConsumer, publish
from consumers.relay import Relay
from devkit.broker import EmbeddedBroker
from devkit.synthetic import DEMO_RULES, generate
from ledger.books import Books
from ledger.config import load_rules
from projections.pending_receipt import awaiting_receipt_count
from ledger.store import Store
from projections.audit import audit_replay
from projections.balances import balance_rows
from projections.render import render
from schemas import outbound

DEMO_EVENTS = 20_000
SETTLE_AS_OF = "2026-03-01T00:00:00+08:00"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=None, help="size of the generated stream (default 20000)")
    parser.add_argument("--bootstrap-servers", default=None, metavar="H:P", help="use this broker instead of starting the embedded one")


def run(args: argparse.Namespace) -> int:
    given = config_path(args)
    rules = load_rules(given or DEMO_RULES)  # the demo's own rules file shows SPEC §14/§15 at work
    events = args.events or DEMO_EVENTS
    out(f"rules ({given or 'devkit/demo_rules.toml'}): scope = {rules.scope}, clock = {rules.clock}, "
        f"return_window = {rules.return_window}, auto_receive_after = {rules.auto_receive_after}\n")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    with contextlib.ExitStack() as stack:
        if args.bootstrap_servers:
            bootstrap = args.bootstrap_servers
        else:
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap
            out(f"embedded Kafka broker (Tansu) on {bootstrap}\n")
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="commission-ledger-demo-"))
        suffix = str(int(time.time() * 1000))  # fresh topics when pointed at a shared broker
        topic, shares_topic = f"demo-events-{suffix}", f"demo-shares-{suffix}"

        started = time.monotonic()
        counts = publish(generate(events, seed=7, rules14=True), bootstrap, topic=topic, shares_topic=shares_topic)
        out(f"published {counts.events} events and {counts.shares} shares in {time.monotonic() - started:.2f}s\n")

        store = Store(f"sqlite:///{tmp}/ledger.db")
        started = time.monotonic()
        consumer = LedgerConsumer(store, bootstrap, topic=topic, shares_topic=shares_topic, rules=rules)
        stats = consumer.run(until_idle_s=2.0)
        c = stats.counts
        out(f"consumed {stats.messages} messages in {time.monotonic() - started:.2f}s (incl. 2s idle wait): "
            f"accepted={c.accepted} duplicates={c.duplicates} parked={c.parked} dead_letters={c.dead_letters}\n")

        books = Books(store, rules)
        settled = books.settle(SETTLE_AS_OF)
        out(f"settled {sum(len(s.order_ids) for s in settled)} orders as of {SETTLE_AS_OF}; "
            f"{awaiting_receipt_count(store)} wait for receipt (`pending-receipt` lists them)\n")
        paid = books.payout(SETTLE_AS_OF)
        totals: dict[str, int] = {}
        for t in paid.transfers:
            totals[t.currency] = totals.get(t.currency, 0) + t.amount_minor
        out(f"payout as of {SETTLE_AS_OF}: {len(paid.transfers)} lines, "
            + ", ".join(f"{cur} {amount}" for cur, amount in sorted(totals.items())) + " (minor units)\n\n")
        relay_topic = f"demo-ledger-events-{suffix}"
        relayed = Relay(store, bootstrap, topic=relay_topic).run(until_idle_s=0.5)
        out(f"relay: published {relayed.messages} ledger events (one per money movement) to {relay_topic} "
            f"in {relayed.busy_seconds:.2f}s, keyed by promoter_id; one of each type:\n")
        for value in _sample_messages(bootstrap, relay_topic):
            out(f"  {value}\n")
        out("\n")
        rows = balance_rows(books.balances())
        top = sorted(rows, key=lambda r: (-r.paid, r.promoter_id, r.currency))[:12]
        out("top balances (minor units):\n")
        out(render(top, ("promoter_id", "currency", "pending", "payable", "paid"), "table", ("pending", "payable", "paid")))
        out(f"\ndead letters: {c.dead_letters} {dict(sorted(c.reasons.items()))} (copies on {topic}.dlq and {shares_topic}.dlq)\n")
        result = audit_replay(store)
        verdict = "every journal re-executed, chains intact, matches live" if result.ok else f"FAILED: {(result.failures or result.differences)[0]}"
        out(f"audit replay of {result.records} records: {verdict}; digest sha256:{result.digest}\n")
        out(f"balances digest sha256:{result.balances_digest} (the same for these events however they arrive)\n")
        for head in result.heads:
            out(f"{head.line()}\n")
        out("(keep the head lines: `audit replay --anchor` proves later that nothing recorded up to them changed)\n")
        return 0 if result.ok else 1
    return 1


def _sample_messages(bootstrap: str, topic: str, scan: int = 20_000) -> list[str]:
    """The first message of each type in partition 0 of ``topic`` (reading at
    most ``scan`` messages), as published."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        by_type: dict[str, str] = {}
        read = 0
        deadline = time.monotonic() + 10
        while read < scan and len(by_type) < 6 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5_000).values():
                read += len(records)
                for r in records:
                    by_type.setdefault(outbound.decode(r.value).type, r.value.decode())
        return list(by_type.values())
    finally:
        consumer.close()


DEMO = Command(options, run)
