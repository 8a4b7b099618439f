"""Exit codes (SPEC §10): 0 success; 2 bad usage, configuration or store URL, with
one line on stderr; 1 a failed audit or a ledger integrity error."""

from __future__ import annotations

import sys
from typing import Any, Callable

from ledger.errors import CommandError, IntegrityError
from ledger.config import ConfigError
from ledger.store import StoreError

PROG = "commission-ledger"


class UsageError(Exception):
    """Bad usage: one line on stderr, exit 2."""


def exit_code(run: Callable[..., int], *args: Any) -> int:
    """``run(*args)``'s exit code, with the errors a command may raise turned
    into their one line on stderr and their exit code."""
    try:
        return run(*args)
    except (UsageError, ConfigError, CommandError, StoreError) as exc:
        print(f"{PROG}: {exc}".replace(f"{PROG}: {PROG}", PROG), file=sys.stderr)
        return 2
    except IntegrityError as exc:
        print(f"{PROG}: integrity error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
