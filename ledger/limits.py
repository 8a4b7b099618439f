"""Memory and work bounds of a ledger process: one frozen value passed down explicitly.

The command line reads them from the environment (``parse_limits``); the
embedding API and the tests pass a ``Limits`` to ``Books``/``Ledger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ledger.config import ConfigError

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Limits:
    # Old clicks leave memory once more than this many are resident (~85 bytes
    # each); see ledger.engine.
    resident_clicks_max: int = 1_000_000
    # Events up to this late find their clicks resident.
    late_slack_us: int = DAY_US
    # Clicks are spilled in whole buckets of this width (event time).
    evict_bucket_us: int = DAY_US
    # A network walk longer than this (shares after the change point) is
    # deferred to the end of the batch: in-order shares walk a few steps at
    # once, a backfill of old shares walks once per batch, not once per share.
    immediate_walk_max: int = 64


DEFAULT_LIMITS = Limits()


def parse_limits(environ: Mapping[str, str]) -> Limits:
    """Limits from ``LEDGER_*`` environment variables; ConfigError (one line) when bad."""
    text = environ.get("LEDGER_RESIDENT_CLICKS_MAX")
    if text is None:
        return DEFAULT_LIMITS
    if not text.strip().isdigit():
        raise ConfigError(f"LEDGER_RESIDENT_CLICKS_MAX={text!r} must be a whole number ≥ 0")
    return Limits(resident_clicks_max=int(text))
