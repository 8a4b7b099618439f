"""The errors the ledger's commands raise to their callers (the CLI maps
them to exit codes, the service to HTTP statuses)."""

from __future__ import annotations

from ledger.store import StoreError


class IntegrityError(RuntimeError):
    """A stored record differs from what the rules produce when replayed, or
    a journal and its state tables disagree."""


class MigrationNeeded(StoreError):
    """A journal written before this version's state tables and hash chain."""


class CommandError(ValueError):
    """A command's arguments are invalid (one line, exit 2)."""


class NotFoundError(CommandError):
    """A command names an order the ledger does not know (exit 2, HTTP 404)."""


class ConflictError(CommandError):
    """A command does not apply in the state the ledger is in: an order
    already settled or rejected, nothing held (exit 2, HTTP 409)."""
