"""The Kafka commands: ``consume`` (one process, or ``--workers N``) and ``publish``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cli.errors import UsageError
from cli.options import Command, config_path, kafka_options, require_positive, rules, store_url
from cli.render import out
from cli.supervisor import supervise
from consumers.jsonl import STDIN, read_files
from consumers.kafka import consume_main, publish
from ledger.limits import parse_limits
from ledger.store import Store


def _member(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 ≤ I < N, got {text!r}")
    return int(i), int(n)


def consume_options(parser: argparse.ArgumentParser) -> None:
    kafka_options(parser)
    parser.add_argument("--group", default=None, help="consumer group: members split the events topic's partitions")
    parser.add_argument("--until-idle", type=float, default=None, metavar="SECONDS", help="exit after this long without messages")
    parser.add_argument("--max-messages", type=int, default=None, metavar="N", help="exit after about N messages")
    parser.add_argument("--max-poll-records", type=int, default=5_000, metavar="N",
                        help="messages per poll and per store transaction (default 5000; smaller = lower latency)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="run N consumer processes (one core each): with --group, N group members; "
                             "without, a static split of the events partitions (p mod N)")
    parser.add_argument("--member", type=_member, default=None, help=argparse.SUPPRESS)  # i/N: one of --workers N
    parser.add_argument("--session-timeout-ms", type=int, default=10_000, help="group session timeout (default 10000)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="expose Prometheus metrics (lag per partition, batch latency) on 127.0.0.1:PORT")
    parser.add_argument("--on-truncated-log", choices=("stop", "earliest", "latest"), default="stop",
                        help="a stored position outside the log (topic re-created, log truncated): stop that partition "
                             "(default), or accept the loss and continue from the log's earliest or latest offset")
    parser.add_argument("--max-poll-interval-ms", type=int, default=60_000,
                        help="group rebalance timeout: how long a rebalance waits for members (default 60000)")


def consume(args: argparse.Namespace) -> int:
    require_positive(args, "--max-poll-records", "--workers")
    configured = rules(args)  # a bad config stops here, before any worker starts
    if args.workers > 1:
        return _consume_workers(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own lines say what matters
    stats = consume_main(
        store_url(args), args.bootstrap_servers, topic=args.topic, shares_topic=args.shares_topic,
        group=args.group, rules=configured, limits=parse_limits(os.environ), until_idle_s=args.until_idle,
        max_messages=args.max_messages, metrics_port=args.metrics_port, max_poll_records=args.max_poll_records,
        member=args.member if args.group is None else None, on_truncated_log=args.on_truncated_log,
        client_options={"session_timeout_ms": args.session_timeout_ms, "max_poll_interval_ms": args.max_poll_interval_ms,
                        "heartbeat_interval_ms": max(100, args.session_timeout_ms // 5)} if args.group else {},
    )
    c = stats.counts
    out(f"consumed {stats.messages} messages in {stats.batches} batches: accepted={c.accepted} duplicates={c.duplicates} "
        f"parked={c.parked} dead_letters={c.dead_letters}\n")
    if stats.stopped:
        stopped = ", ".join(f"{topic}/{partition}" for topic, partition in sorted(stats.stopped))
        print(f"partitions stopped on a truncated log: {stopped} (see --on-truncated-log)", file=sys.stderr)
        return 1
    return 0


def _consume_workers(args: argparse.Namespace) -> int:
    """``consume --workers N``: N consumer processes, each this command with one
    process's options: with --group, N members of the group; without, member
    i/N of a static split of the events partitions. Metrics of child i on port P+i."""
    if args.max_messages is not None:
        raise UsageError("--max-messages counts one process's messages: not with --workers")
    n = args.workers
    Store(store_url(args)).close()  # one process creates the schema; a bad URL stops here (exit 2)
    members = [
        argparse.Namespace(**{
            **vars(args), "store": store_url(args), "config": config_path(args), "workers": 1,
            "member": None if args.group else (i, n),
            "metrics_port": args.metrics_port + i if args.metrics_port else None,
        })
        for i in range(n)
    ]
    codes = supervise(consume, members, fail_fast=False)  # one worker's trouble does not stop the others' partitions
    out(f"{n} workers exited: {codes}\n")
    return 0 if all(code == 0 for code in codes) else 1


def publish_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE")
    kafka_options(parser)
    parser.add_argument("--partitions", type=int, default=4, help="partitions for topics created here (default 4)")


def publish_file(args: argparse.Namespace) -> int:
    if args.file != STDIN and not os.path.isfile(args.file):
        raise UsageError(f"no such file: {args.file}")
    counts = publish((raw for raw, _ in read_files([args.file])), args.bootstrap_servers,
                     topic=args.topic, shares_topic=args.shares_topic, partitions=args.partitions)
    out(f"published {counts.events} events to {args.topic} ({counts.unkeyed} without a key) and {counts.shares} shares to {args.shares_topic}\n")
    return 0


CONSUME = Command(consume_options, consume)
PUBLISH = Command(publish_options, publish_file)
