"""Failed logins per client, limited: a token is 256 bits, but a form that
answers as fast as it is asked invites guessing and fills logs.

A client is its address (the peer, or with ``--behind-tls`` the last
``X-Forwarded-For`` hop the proxy appended). Each may fail ``FAILURES`` times
per ``WINDOW_S``; then the login answers 429 with ``Retry-After`` until the
window ends. Memory is bounded: at most ``CLIENTS`` addresses are tracked, the
least recently failing forgotten first. One process's count (with ``serve
--workers N`` each worker counts its own).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from litestar.connection import ASGIConnection

FAILURES = 10
WINDOW_S = 60.0
CLIENTS = 10_000


class FailedLogins:
    def __init__(self, *, failures: int = FAILURES, window_s: float = WINDOW_S, clients: int = CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.window_s, self.clients, self.clock = failures, window_s, clients, clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # client → (window start, failures)
        self._lock = threading.Lock()

    def retry_after_s(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        with self._lock:
            entry = self._seen.get(client)
            if entry is None:
                return 0
            elapsed = self.clock() - entry[0]
            if elapsed >= self.window_s:
                del self._seen[client]
                return 0
            return math.ceil(self.window_s - elapsed) if entry[1] >= self.failures else 0

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            start, n = self._seen.pop(client, (now, 0))
            if now - start >= self.window_s:
                start, n = now, 0
            self._seen[client] = (start, n + 1)
            while len(self._seen) > self.clients:
                self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def client_of(connection: ASGIConnection[Any, Any, Any, Any], behind_tls: bool) -> str:
    if behind_tls:
        forwarded = connection.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.rsplit(",", 1)[-1].strip()[:64]
    client = connection.scope.get("client")
    return client[0] if client else "unknown"
