"""What one server process shares between requests."""

from __future__ import annotations

import logging
import threading

from ledger.store import Store
from projections.explain import Explainer
from projections.projector import catch_up
from projections.tables import database
from service.auth import Principal
from service.login_limit import FailedLogins
from service.sessions import Sessions


class Service:
    """The store, the explainer and the write lock; handlers receive it as the
    ``service`` dependency. No read model of its own: reads answer from the
    read-model tables, which every read first catches up (so a worker starts
    at once, whatever the store's age, and holds no per-promoter state)."""

    def __init__(self, store_url: str, tokens: dict[str, Principal], *, behind_tls: bool = False) -> None:
        self.store = Store(store_url)
        self.tokens = tokens
        self.behind_tls = behind_tls  # TLS ends at a proxy in front: cookies are Secure, HSTS is sent
        self.explainer = Explainer(self.store)  # reads the state tables and read models: no replay
        # Bounded reads run on the event loop on SQLite (service.blocking.bounded_read).
        self.reads_on_loop = not database(self.store).postgres
        self.write_lock = threading.Lock()  # one write at a time per process; the store serialises across processes
        self.sessions = Sessions(database(self.store))  # the tables exist (created on a new store), and the sessions'
        self.failed_logins = FailedLogins()
        # Catch the tables up in the background: the server listens at once,
        # and the first reads wait only for what this has not folded yet.
        threading.Thread(target=self._warm_up, name="read-models catch-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            catch_up(self.store)
        except Exception:  # the first read will catch up (and report) instead
            logging.getLogger("commission_ledger.http").exception("read models: background catch-up failed")
