"""Moved to ``consumers.kafka`` (issue 10). Kept only for callers outside
``consumers/`` not yet repointed (``ledger/cli.py``, ``ledger/demo.py``,
``tests/test_postgres.py``); delete once they import ``consumers.kafka``."""

from consumers.kafka import DEFAULT_SHARES_TOPIC, DEFAULT_TOPIC, ensure_topics, publish

__all__ = ["DEFAULT_SHARES_TOPIC", "DEFAULT_TOPIC", "ensure_topics", "publish"]
