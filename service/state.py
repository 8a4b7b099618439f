"""What one server process shares between requests."""

from __future__ import annotations

import threading

from ledger.store import Store
from projections.explain import Explainer
from service.auth import Principal
from service.cache import BalancesCache


class Service:
    """The store and the read models kept over it; handlers receive it as the ``service`` dependency."""

    def __init__(self, store_url: str, tokens: dict[str, Principal]) -> None:
        self.store = Store(store_url)
        self.tokens = tokens
        self.cache = BalancesCache(self.store)
        self.explainer = Explainer(self.store)  # replays each journal on first use, then catches up
        self.write_lock = threading.Lock()  # one write at a time per process; the store serialises across processes
