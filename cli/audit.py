"""``audit replay``: rebuild every projection from the stored events, compare, digest."""

from __future__ import annotations

import argparse

from cli.options import Command, Parser, global_options, store_url
from cli.progress import Bars
from cli.render import out
from projections.audit import audit_replay, digest_at


def options(parser: argparse.ArgumentParser) -> None:
    audit = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", parser_class=Parser)
    audit.required = True
    replay = audit.add_parser("replay", help="rebuild every projection from the stored events, compare with the live ones, print a digest")
    global_options(replay, suppress=True)
    replay.add_argument("--until", type=int, default=None, metavar="STORE_POSITION",
                        help="also print the digest of the projections as of this store position")
    replay.add_argument("--verify-rules", action="store_true",
                        help="also re-execute every journal under its recorded rules and check every stored record")


def run(args: argparse.Namespace) -> int:
    with Bars() as bars:
        store = bars.store(store_url(args))
        result = audit_replay(store, verify_rules=args.verify_rules)
        digest_until = digest_at(store, args.until) if args.until is not None else None
    out(f"records: {result.records}\n")
    out(f"store position: {result.position}\n")
    for line in result.differences:
        out(f"DIFF {line}\n")
    for currency, count in sorted(result.unbalanced.items()):
        out(f"UNBALANCED {currency}: {count} malformed transfers\n")
    ok = not result.differences and not result.unbalanced
    out(f"replay {'matches live' if ok else 'DIFFERS from live'}\n")
    out(f"digest sha256:{result.digest}\n")
    out(f"balances digest sha256:{result.balances_digest}\n")
    if digest_until is not None:
        out(f"digest at store position {args.until}: sha256:{digest_until}\n")
    return 0 if ok else 1


AUDIT = Command("audit", "audit tools", options, run)
