"""Memory and work bounds of a ledger process: one frozen value passed down explicitly.

The command line reads them from the environment (``parse_limits``); the
embedding API and the tests pass a ``Limits`` to ``Books``/``Ledger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ledger.config import ConfigError

DAY_US = 86_400_000_000
MIB = 1 << 20
DEFAULT_CACHE_MB = 256


@dataclass(frozen=True)
class Limits:
    # The state this process keeps decoded in memory, over all the journals it
    # has open (an estimate of the Python objects; the rest is read from the
    # state tables when needed).
    cache_bytes: int = DEFAULT_CACHE_MB * MIB
    # A buyer's clicks older than the watermark minus the longest window minus
    # this slack move to cold rows: events up to this late find them at hand.
    late_slack_us: int = DAY_US
    # ... in whole buckets of this width (event time), once at least this many
    # have gathered (a row holds fewer old clicks than this). With 32, a buyer
    # clicking a few times a week kept months of clicks in the row that every
    # click, order and settle of theirs decodes and rewrites: settle on 5× the
    # history cost 2.4×. With 4 the row is the buyer's recent activity at any age.
    evict_bucket_us: int = DAY_US
    cold_clicks_min: int = 4
    # A network walk longer than this (shares after the change point) is
    # deferred to the end of the batch: in-order shares walk a few steps at
    # once, a backfill of old shares walks once per batch, not once per share.
    immediate_walk_max: int = 64
    # One settle record (one transaction) settles at most this many orders: a
    # bulk settle holds this many orders, their buyers and transfers at once
    # (~4.5 KB an order), not all that are due.
    settle_batch_orders: int = 20_000


DEFAULT_LIMITS = Limits()


def parse_limits(environ: Mapping[str, str]) -> Limits:
    """Limits from ``LEDGER_*`` environment variables; ConfigError (one line) when bad."""
    text = environ.get("LEDGER_CACHE_MB")
    if text is None:
        return DEFAULT_LIMITS
    if not text.strip().isdigit():
        raise ConfigError(f"LEDGER_CACHE_MB={text!r} must be a whole number of MiB ≥ 0")
    return Limits(cache_bytes=int(text) * MIB)
