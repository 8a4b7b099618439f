"""``audit replay`` (SPEC §12): re-execute every journal, check every chain and anchor, compare with the live read models, print the digests and heads."""

from __future__ import annotations

import argparse
import sys

from cli.options import Command, Parser, global_options, store_url
from cli.progress import Bars
from cli.errors import UsageError
from cli.render import out
from ledger.chain import Head, parse_heads
from ledger.replay_jobs import default_jobs
from projections.audit import audit_replay, digest_at


def options(parser: argparse.ArgumentParser) -> None:
    audit = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", parser_class=Parser)
    audit.required = True
    summary = ("re-execute every journal, check its hash chain (and --anchor heads), compare with the live read models; "
               "print the digests and one head line per journal")
    replay = audit.add_parser("replay", help=summary, description=summary)
    global_options(replay, suppress=True)
    replay.add_argument("--until", type=int, default=None, metavar="STORE_POSITION",
                        help="also print the digest of the projections as of this store position")
    replay.add_argument("--anchor", default=None, metavar="HEADS",
                        help="head lines kept from an earlier audit (a file, or - for stdin): fail unless each is still in its chain")
    replay.add_argument("--fast", action="store_true",
                        help="skip re-executing the journals: chains, projections, payouts and digests only")
    replay.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                        help="re-execute the journals in N processes at once (default: every core, "
                             f"{default_jobs()} here); the output is the same")
    replay.add_argument("--verify-rules", action="store_true", help=argparse.SUPPRESS)  # the default since chains came


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes ≥ 1, got {text!r}")
    return jobs


def _anchors(source: str | None) -> list[Head]:
    if source is None:
        return []
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as exc:
        raise UsageError(f"--anchor {source}: {exc.strerror}") from None
    heads = parse_heads(text.splitlines())
    if not heads:
        raise UsageError(f"--anchor {source}: no 'head <journal> <position> sha256:<hex>' lines")
    return heads


def run(args: argparse.Namespace) -> int:
    anchors = _anchors(args.anchor)
    with Bars() as bars:
        store = bars.store(store_url(args))
        jobs = args.jobs if args.jobs is not None else default_jobs()
        result = audit_replay(store, fast=args.fast, anchors=anchors, jobs=jobs)
        digest_until = digest_at(store, args.until) if args.until is not None else None
    out(f"records: {result.records}\n")
    out(f"store position: {result.position}\n")
    for line in result.differences:
        out(f"DIFF {line}\n")
    for currency, count in sorted(result.unbalanced.items()):
        out(f"UNBALANCED {currency}: {count} malformed transfers\n")
    for line in result.failures:
        out(f"FAIL {line}\n")
    p = result.payouts
    out(f"payouts checked: {p.checked} of {p.payouts} ({p.checked_second_pass} in a second pass); adjustments checked: {p.adjustments}\n")
    out(f"replay {'matches live' if not result.differences and not result.unbalanced else 'DIFFERS from live'}\n")
    if result.reexecuted:
        out("rules re-executed: every stored record is what the recorded rules produce\n" if not result.failures
            else "rules re-executed: see FAIL lines\n")
    else:
        out("re-execution skipped (--fast): chains, projections, payouts and digests only\n")
    out(f"digest sha256:{result.digest}\n")
    out(f"balances digest sha256:{result.balances_digest}\n")
    if digest_until is not None:
        out(f"digest at store position {args.until}: sha256:{digest_until}\n")
    for head in result.heads:
        out(head.line() + "\n")
    if result.failures:
        print(f"commission-ledger: audit failed: {result.failures[0]}", file=sys.stderr)
    return 0 if result.ok else 1


AUDIT = Command(options, run)
