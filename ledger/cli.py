"""``commission-ledger``: the command line (SPEC §10), a thin layer over ledger.app.

Exit codes: 0 success; 2 bad usage, configuration or store URL (one line on
stderr); 1 a failed audit or a ledger integrity error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, NoReturn, Sequence

import msgspec

from ledger.app import CommandError, IngestCounts, IntegrityError
from ledger.books import Books
from ledger.config import ConfigError, load_rules
from ledger.limits import parse_limits
from ledger.store import Store, StoreError
from projections.render import render, render_json

DEFAULT_STORE = "sqlite:///ledger.db"
FORMATS = ("table", "json", "csv")
BALANCE_COLUMNS = ("promoter_id", "currency", "pending", "payable", "paid")
AMOUNTS = ("pending", "payable", "paid", "amount", "amount_minor")


class UsageError(Exception):
    """Bad usage: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--store", default=default, help=f"store URL (env LEDGER_STORE; default {DEFAULT_STORE}; also postgresql://…, memory://)")
    parser.add_argument("--config", default=default, help="rules TOML file (env LEDGER_CONFIG; built-in defaults when absent)")


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", required=True, metavar="H:P")
    parser.add_argument("--topic", default="commission-events", help="events topic (default commission-events)")
    parser.add_argument("--shares-topic", default="commission-shares", help="shares topic (default commission-shares)")


def _time_travel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", default=None, metavar="TS",
                        help="as recorded at this time (the longest prefix of commits recorded at or before TS)")
    parser.add_argument("--at-position", type=int, default=None, metavar="N",
                        help="as of store position N (the commit sequence number; see `audit replay`)")


def _as_of(args: argparse.Namespace) -> dict:
    from ledger.app import parse_as_of

    if args.as_of is not None and args.at_position is not None:
        raise UsageError("give --as-of or --at-position, not both")
    if args.as_of is not None:
        return {"recorded_until_us": parse_as_of(args.as_of)}
    if args.at_position is not None:
        return {"until_position": args.at_position}
    return {}


def _format_option(parser: argparse.ArgumentParser, choices: Sequence[str] = FORMATS) -> None:
    parser.add_argument("--format", choices=choices, default="table", help="output format (default table)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="commission-ledger", description="Event-sourced commission and attribution ledger for social commerce.")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, suppress=True)
        return sub

    p = command("ingest", "read JSONL files (- = stdin) into the ledger; print accepted, duplicates, parked, dead letters")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--batch-events", type=int, default=5_000, help="events per store transaction (default 5000)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = command("settle", "settle every known order whose return window has passed as of TS (SPEC §7)")
    p.add_argument("--as-of", required=True, metavar="TS")
    p = command("payout", "pay every payable balance ≥ min_payout as of TS; list each line")
    p.add_argument("--as-of", required=True, metavar="TS")
    _format_option(p)
    p = command("payouts", "current balances per promoter and currency")
    p.add_argument("--currency", help="only this currency")
    _time_travel_options(p)
    _format_option(p)
    p = command("statement", "every entry of one promoter, with order, level, rules version")
    p.add_argument("promoter_id", metavar="PROMOTER_ID")
    _time_travel_options(p)
    _format_option(p)
    p = command("explain", "why an order went to whom, and how each amount was computed")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = command("dead-letters", "the dead letters: reason, source, original bytes")
    _format_option(p)
    p = command("adjust", "a manual adjustment to payable (bonus or correction), recorded with actor and reason")
    p.add_argument("promoter_id", metavar="PROMOTER_ID")
    p.add_argument("currency", metavar="CURRENCY")
    p.add_argument("amount", metavar="AMOUNT", help="integer minor units; negative for a correction")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default=None, help="who made it (default: $USER)")
    p = command("audit", "audit tools")
    audit = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", parser_class=_Parser)
    audit.required = True
    replay = audit.add_parser("replay", help="rebuild every projection from the stored events, compare with the live ones, print a digest")
    _global_options(replay, suppress=True)
    replay.add_argument("--until", type=int, default=None, metavar="STORE_POSITION",
                        help="also print the digest of the projections as of this store position")
    replay.add_argument("--verify-rules", action="store_true",
                        help="also re-execute every journal under its recorded rules and check every stored record")
    p = command("project", "the projection process: follow the notification log, snapshot the balances with tracking")
    p.add_argument("--follow", action="store_true", help="keep following until SIGTERM/SIGINT")
    p.add_argument("--every", type=float, default=5.0, metavar="SECONDS", help="with --follow: snapshot interval (default 5)")
    p = command("consume", "the long-running Kafka consumer (exactly-once effect)")
    _kafka_options(p)
    p.add_argument("--group", default=None, help="consumer group: members split the events topic's partitions")
    p.add_argument("--until-idle", type=float, default=None, metavar="SECONDS", help="exit after this long without messages")
    p.add_argument("--max-messages", type=int, default=None, metavar="N", help="exit after about N messages")
    p.add_argument("--max-poll-records", type=int, default=5_000, metavar="N",
                   help="messages per poll and per store transaction (default 5000; smaller = lower latency)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N consumer processes (one core each): with --group, N group members; "
                        "without, a static split of the events partitions (p mod N)")
    p.add_argument("--member", type=_member, default=None, help=argparse.SUPPRESS)  # i/N, set by --workers
    p.add_argument("--session-timeout-ms", type=int, default=10_000, help="group session timeout (default 10000)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="expose Prometheus metrics (lag per partition, batch latency) on 127.0.0.1:PORT")
    p.add_argument("--max-poll-interval-ms", type=int, default=60_000,
                   help="group rebalance timeout: how long a rebalance waits for members (default 60000)")
    p = command("publish", "publish JSONL events to the topics and keys of SPEC §1 (acks=all, idempotent)")
    p.add_argument("file", metavar="FILE")
    _kafka_options(p)
    p.add_argument("--partitions", type=int, default=4, help="partitions for topics created here (default 4)")
    p = command("serve", "the HTTP API and payout pages for finance and auditors")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--tokens", default=None, metavar="FILE", help="tokens TOML (env LEDGER_TOKENS)")
    p.add_argument("--workers", type=int, default=1, help="server processes (each keeps its own read cache)")
    p = command("demo", "the whole pipeline on embedded defaults: broker, publish, consume, settle, pay out, audit")
    p.add_argument("--events", type=int, default=None, help="size of the generated stream (default 20000)")
    p.add_argument("--bootstrap-servers", default=None, metavar="H:P", help="use this broker instead of starting the embedded one")
    return parser


# ---------------------------------------------------------------- helpers
def _store_url(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("LEDGER_STORE") or DEFAULT_STORE


def _config_path(args: argparse.Namespace) -> str | None:
    return args.config or os.environ.get("LEDGER_CONFIG") or None


def _member(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 ≤ I < N, got {text!r}")
    return int(i), int(n)


def _rules(args: argparse.Namespace):
    """The configured rules, or None to keep those recorded in the ledger."""
    path = _config_path(args)
    return load_rules(path) if path is not None else None


def _books(args: argparse.Namespace) -> Books:
    rules = _rules(args)  # before opening the store: a bad config writes nothing
    return Books(Store(_store_url(args)), rules, parse_limits(os.environ))


def _replay_progress() -> Callable[[int], None] | None:
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def report(version: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            print(f"\rreplaying journal: {version:,} records", end="", file=sys.stderr, flush=True)

    return report


def _ingest_progress() -> Callable[[IngestCounts], None] | None:
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()

    def report(counts: IngestCounts) -> None:
        elapsed = max(time.monotonic() - start, 1e-9)
        print(f"\ringested {counts.total:,} events ({counts.total / elapsed:,.0f}/s)", end="", file=sys.stderr, flush=True)

    return report


def _out(text: str) -> None:
    sys.stdout.write(text)


# --------------------------------------------------------------- commands
def cmd_ingest(args: argparse.Namespace) -> int:
    from consumers.jsonl import read_files

    if args.batch_events < 1:
        raise UsageError("--batch-events must be ≥ 1")
    for path in args.files:
        if path != "-" and not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    books = _books(args)
    ledger = books.ledger("main", on_record=_replay_progress())
    progress = _ingest_progress()
    counts = ledger.ingest(read_files(args.files), batch_events=args.batch_events, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    parked_clicks, parked_refunds = ledger.engine.parked_counts()
    summary = {
        "accepted": counts.accepted,
        "duplicates": counts.duplicates,
        "parked": counts.parked,
        "dead_letters": counts.dead_letters,
        "dead_letter_reasons": dict(sorted(counts.reasons.items())),
        "still_parked": {"clicks": parked_clicks, "refunds": parked_refunds},
        "journal_records": ledger.position,
    }
    if args.format == "json":
        _out(render_json(summary) + "\n")
    else:
        _out(f"accepted={counts.accepted} duplicates={counts.duplicates} parked={counts.parked} dead_letters={counts.dead_letters}\n")
        for reason, n in sorted(counts.reasons.items()):
            _out(f"  dead letter {reason}: {n}\n")
        _out(f"still parked: {parked_clicks} clicks (share unknown), {parked_refunds} refunds (order unknown)\n")
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    records = _books(args).settle(args.as_of)
    orders = sum(len(r.order_ids) for r in records)
    entries = sum(len(r.transfers) for r in records)
    total = sum(t.amount_minor for r in records for t in r.transfers)
    _out(f"settled {orders} orders as of {args.as_of}: {entries} entries, {total} minor units moved to payable\n")
    return 0


def cmd_payout(args: argparse.Namespace) -> int:
    from projections.payout_batch import payout_batch, render_batch

    books = _books(args)
    record = books.payout(args.as_of)
    lines = payout_batch(books.records(), record)
    _out(render_json(lines) + "\n" if args.format == "json" else render_batch(lines, args.format))
    return 0


def cmd_payouts(args: argparse.Namespace) -> int:
    from projections.balances import balance_rows
    from projections.live import LiveBalances

    store = Store(_store_url(args))
    as_of = _as_of(args)
    balances = Books(store).balances(**as_of) if as_of else LiveBalances(store).current().balances
    _out(render(balance_rows(balances, args.currency), BALANCE_COLUMNS, args.format, AMOUNTS))
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    from projections.statements import statement

    entries = statement(Books(Store(_store_url(args))).records(**_as_of(args)), args.promoter_id)
    columns = ("journal", "position", "kind", "currency", "amount_minor", "debit", "credit", "order_id", "level", "rules_version", "cause", "pending", "payable", "paid")
    _out(render(entries, columns, args.format, AMOUNTS))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from projections.explain import Explainer

    view = Explainer(Store(_store_url(args))).explain(args.order_id)
    if view is None:
        raise UsageError(f"unknown order {args.order_id!r}")
    if args.format == "json":
        _out(render_json(view) + "\n")
    else:
        _out(_explain_text(view))
    return 0


def _explain_text(view: dict[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in view.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(_explain_text(value, indent + "  ").rstrip("\n"))
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: {'(none)' if not value else ''}")
            for item in value:
                if isinstance(item, dict):
                    lines.append(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
                else:
                    lines.append(f"{indent}  - {item}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines) + "\n"


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from projections.dead_letters import dead_letters

    rows = dead_letters(Books(Store(_store_url(args))).records())
    columns = ("journal", "position", "reason", "source", "detail", "raw")
    if args.format == "table":
        rows = [msgspec.structs.replace(r, raw=r.raw[:60]) for r in rows]
    _out(render(rows, columns, args.format))
    return 0


def cmd_adjust(args: argparse.Namespace) -> int:
    try:
        amount = int(args.amount, 10)
    except ValueError:
        raise UsageError(f"AMOUNT {args.amount!r} must be an integer number of minor units") from None
    actor = args.actor or os.environ.get("USER") or "cli"
    record = _books(args).adjust(args.promoter_id, args.currency, amount, args.reason, actor)
    _out(f"adjusted {record.promoter_id} {record.currency} payable by {record.amount_minor} ({record.reason}; by {record.actor})\n")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from projections.audit import audit_replay

    progress = _replay_progress()
    store = Store(_store_url(args))
    result = audit_replay(store, progress, verify_rules=args.verify_rules)
    if progress is not None:
        print(file=sys.stderr)
    _out(f"records: {result.records}\n")
    _out(f"store position: {result.position}\n")
    for line in result.differences:
        _out(f"DIFF {line}\n")
    for currency, count in sorted(result.unbalanced.items()):
        _out(f"UNBALANCED {currency}: {count} malformed transfers\n")
    ok = not result.differences and not result.unbalanced
    _out(f"replay {'matches live' if ok else 'DIFFERS from live'}\n")
    _out(f"digest sha256:{result.digest}\n")
    _out(f"balances digest sha256:{result.balances_digest}\n")
    if args.until is not None:
        from projections.audit import digest_at

        _out(f"digest at store position {args.until}: sha256:{digest_at(store, args.until)}\n")
    return 0 if ok else 1


def cmd_consume(args: argparse.Namespace) -> int:
    import logging

    from consumers.kafka_consumer import consume_main

    if args.max_poll_records < 1:
        raise UsageError("--max-poll-records must be ≥ 1")
    if args.workers < 1:
        raise UsageError("--workers must be ≥ 1")
    rules = _rules(args)  # a bad config stops here, before any worker starts
    if args.workers > 1:
        return _consume_workers(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own lines say what matters
    stats = consume_main(
        _store_url(args), args.bootstrap_servers, topic=args.topic, shares_topic=args.shares_topic,
        group=args.group, rules=rules, limits=parse_limits(os.environ), until_idle_s=args.until_idle, max_messages=args.max_messages,
        metrics_port=args.metrics_port, max_poll_records=args.max_poll_records,
        member=args.member if args.group is None else None,
        client_options={"session_timeout_ms": args.session_timeout_ms, "max_poll_interval_ms": args.max_poll_interval_ms,
                        "heartbeat_interval_ms": max(100, args.session_timeout_ms // 5)} if args.group else {},
    )
    c = stats.counts
    _out(f"consumed {stats.messages} messages in {stats.batches} batches: accepted={c.accepted} duplicates={c.duplicates} "
         f"parked={c.parked} dead_letters={c.dead_letters}\n")
    return 0


def _consume_workers(args: argparse.Namespace) -> int:
    """``consume --workers N``: N child consumers, signals forwarded; the first
    one to fail stops the others (fail fast: the supervisor restarts the lot,
    and each child resumes from its stored positions)."""
    import signal
    import subprocess

    if args.max_messages is not None:
        raise UsageError("--max-messages counts one process's messages: not with --workers")
    n = args.workers
    Store(_store_url(args)).close()  # one process creates the schema; a bad URL stops here (exit 2)
    base = [sys.executable, "-m", "ledger.cli", "--store", _store_url(args)]
    if _config_path(args) is not None:
        base += ["--config", _config_path(args)]
    base += ["consume", "--bootstrap-servers", args.bootstrap_servers, "--topic", args.topic,
             "--shares-topic", args.shares_topic, "--max-poll-records", str(args.max_poll_records),
             "--session-timeout-ms", str(args.session_timeout_ms), "--max-poll-interval-ms", str(args.max_poll_interval_ms)]
    if args.until_idle is not None:
        base += ["--until-idle", str(args.until_idle)]
    children = []
    for i in range(n):
        argv = base + (["--group", args.group] if args.group else ["--member", f"{i}/{n}"])
        if args.metrics_port:
            argv += ["--metrics-port", str(args.metrics_port + i)]
        children.append(subprocess.Popen(argv))

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    failed = None
    while any(child.poll() is None for child in children):
        failed = next((c for c in children if c.returncode not in (None, 0)), None)
        if failed is not None:
            print(f"commission-ledger: worker exited with {failed.returncode}; stopping the others", file=sys.stderr)
            forward(signal.SIGTERM, None)
            break
        time.sleep(0.2)
    codes = [child.wait() for child in children]
    _out(f"{n} workers exited: {codes}\n")
    return 0 if all(code == 0 for code in codes) else 1


def cmd_publish(args: argparse.Namespace) -> int:
    from consumers.jsonl import read_files
    from consumers.kafka_publish import publish

    if args.file != "-" and not os.path.isfile(args.file):
        raise UsageError(f"no such file: {args.file}")
    counts = publish((raw for raw, _ in read_files([args.file])), args.bootstrap_servers,
                     topic=args.topic, shares_topic=args.shares_topic, partitions=args.partitions)
    _out(f"published {counts.events} events to {args.topic} ({counts.unkeyed} without a key) and {counts.shares} shares to {args.shares_topic}\n")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    import signal
    import time as _time

    from projections.live import LiveBalances

    live = LiveBalances(Store(_store_url(args)))
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    while True:
        state = live.checkpoint()
        if not args.follow or stop:
            break
        _time.sleep(args.every)
    _out(f"balances projection at store position {state.position} ({state.records} records, {len(state.balances)} rows)\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from service.api import create_app
    from service.auth import TokensError, load_tokens

    path = args.tokens or os.environ.get("LEDGER_TOKENS")
    if not path:
        raise UsageError("serve needs --tokens FILE (or LEDGER_TOKENS)")
    try:
        tokens = load_tokens(path)
    except TokensError as exc:
        raise UsageError(str(exc)) from None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # uvicorn's access log shows method, path and status; never headers, so no tokens.
    if args.workers > 1:
        os.environ["LEDGER_SERVE_STORE"] = _store_url(args)
        os.environ["LEDGER_SERVE_TOKENS"] = os.path.abspath(path)
        uvicorn.run("service.api:app_from_env", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level="warning", server_header=False)
        return 0
    app = create_app(_store_url(args), tokens)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.demo import run_demo

    return run_demo(args, _out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": cmd_ingest,
    "settle": cmd_settle,
    "payout": cmd_payout,
    "payouts": cmd_payouts,
    "statement": cmd_statement,
    "explain": cmd_explain,
    "dead-letters": cmd_dead_letters,
    "adjust": cmd_adjust,
    "audit": cmd_audit,
    "consume": cmd_consume,
    "publish": cmd_publish,
    "project": cmd_project,
    "serve": cmd_serve,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parse_limits(os.environ)  # a bad limit is a usage error before anything runs
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, CommandError, StoreError) as exc:
        print(f"commission-ledger: {exc}".replace("commission-ledger: commission-ledger", "commission-ledger"), file=sys.stderr)
        return 2
    except IntegrityError as exc:
        print(f"commission-ledger: integrity error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("commission-ledger: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
