"""``relay``: ledger events out to Kafka (SPEC §13), at least once, never skipping."""

from __future__ import annotations

import argparse
import logging
import sys

from cli.errors import UsageError
from cli.options import Command, require_positive, store_url
from cli.render import out
from consumers.relay import CHUNK_MESSAGES, DEFAULT_PARTITIONS, DEFAULT_TOPIC, relay_main


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", required=True, metavar="H:P")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"topic to publish to (default {DEFAULT_TOPIC})")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS,
                        help=f"partitions if the relay creates the topic (default {DEFAULT_PARTITIONS})")
    parser.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                        help="exit once nothing new arrived for this long (default: run until SIGTERM/SIGINT)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="expose Prometheus metrics (lag in records and seconds, messages, send failures) "
                             "on 127.0.0.1:PORT")
    parser.add_argument("--chunk-messages", type=int, default=CHUNK_MESSAGES, metavar="N",
                        help=f"messages acknowledged per stored position (default {CHUNK_MESSAGES}; "
                             "at most this many plus one segment are sent again after a crash)")


def run(args: argparse.Namespace) -> int:
    require_positive(args, "--partitions", "--chunk-messages")
    if args.until_idle is not None and args.until_idle < 0:
        raise UsageError("--until-idle must be ≥ 0")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own lines say what matters
    stats = relay_main(store_url(args), args.bootstrap_servers, topic=args.topic, partitions=args.partitions,
                       until_idle_s=args.until_idle, metrics_port=args.metrics_port, chunk_messages=args.chunk_messages)
    rate = stats.messages / stats.busy_seconds if stats.busy_seconds else 0.0
    out(f"relayed {stats.messages} messages from {stats.segments} segments to {args.topic}: store position "
        f"{stats.started_at} → {stats.position}, {rate:,.0f} messages/s, {stats.failures} send failures retried\n")
    return 0


RELAY = Command(options, run)
