"""Moved to ``consumers.kafka`` (issue 10). Kept only for callers outside
``consumers/`` not yet repointed (``ledger/cli.py``, ``ledger/demo.py``);
delete once they import ``consumers.kafka``."""

from consumers.kafka import ConsumeStats, LedgerConsumer, consume_main

__all__ = ["ConsumeStats", "LedgerConsumer", "consume_main"]
