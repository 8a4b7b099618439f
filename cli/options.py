"""The parser's shared pieces, and what every command resolves from its options."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Sequence

from cli.errors import UsageError
from ledger.arguments import parse_as_of
from ledger.config import Rules, load_rules

DEFAULT_STORE = "sqlite:///ledger.db"
FORMATS = ("table", "json", "csv")


@dataclass(frozen=True)
class Command:
    """One command: its options, and what runs it (its name and help line are
    in ``cli.main``'s table)."""

    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--store", default=default, help=f"store URL (env LEDGER_STORE; default {DEFAULT_STORE}; also postgresql://…, memory://)")
    parser.add_argument("--config", default=default, help="rules TOML file (env LEDGER_CONFIG; built-in defaults when absent)")


def kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", required=True, metavar="H:P")
    parser.add_argument("--topic", default="commission-events", help="events topic (default commission-events)")
    parser.add_argument("--shares-topic", default="commission-shares", help="shares topic (default commission-shares)")


def time_travel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", default=None, metavar="TS",
                        help="as recorded at this time (the longest prefix of commits recorded at or before TS)")
    parser.add_argument("--at-position", type=int, default=None, metavar="N",
                        help="as of store position N (the commit sequence number; see `audit replay`)")


def format_option(parser: argparse.ArgumentParser, choices: Sequence[str] = FORMATS) -> None:
    parser.add_argument("--format", choices=choices, default="table", help="output format (default table)")


def as_of(args: argparse.Namespace) -> dict:
    """The time-travel options as keyword arguments of ``Books.records``."""
    if args.as_of is not None and args.at_position is not None:
        raise UsageError("give --as-of or --at-position, not both")
    if args.as_of is not None:
        return {"recorded_until_us": parse_as_of(args.as_of)}
    if args.at_position is not None:
        return {"until_position": args.at_position}
    return {}


def require_positive(args: argparse.Namespace, *options: str) -> None:
    """A usage error naming the first of these integer options below 1."""
    for option in options:
        if getattr(args, option.lstrip("-").replace("-", "_")) < 1:
            raise UsageError(f"{option} must be ≥ 1")


def store_url(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("LEDGER_STORE") or DEFAULT_STORE


def config_path(args: argparse.Namespace) -> str | None:
    return args.config or os.environ.get("LEDGER_CONFIG") or None


def rules(args: argparse.Namespace) -> Rules | None:
    """The configured rules, or None to keep those recorded in the ledger."""
    path = config_path(args)
    return load_rules(path) if path is not None else None
