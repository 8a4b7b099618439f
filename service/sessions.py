"""Server-side sessions of the pages' login.

The ``ledger_session`` cookie carries a random session id (256 bits), never the
token. The store keeps the id's SHA-256 (a leaked table gives no session), the
SHA-256 of the token it was opened with (so removing a token from the tokens
file ends its sessions too), when it was opened and when it was last used. A
session ends after ``IDLE_S`` without use, ``ABSOLUTE_S`` after login, or at
logout (the row is deleted). The table is in the store's database, so every
``serve --workers N`` process sees the same sessions.

Expiry reads the wall clock: it is the one thing here that does, and no ledger
decision depends on it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Callable

from projections.tables import Database
from service.auth import SESSION_COOKIE, Principal

__all__ = ["SESSION_COOKIE", "Sessions"]
IDLE_S = 30 * 60
ABSOLUTE_S = 12 * 60 * 60
TOUCH_EVERY_S = 60  # last use is written at most this often per session (a read per request, not a write)
DDL_LOCK_ID = 0x7376636C6F67696E  # pg_advisory_xact_lock key: "svclogin" (workers creating the table at once)

_DDL = ("CREATE TABLE IF NOT EXISTS svc_sessions (id_sha256 TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL, "
        "opened_s BIGINT NOT NULL, seen_s BIGINT NOT NULL)")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Sessions:
    def __init__(self, db: Database, *, idle_s: int = IDLE_S, absolute_s: int = ABSOLUTE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.idle_s, self.absolute_s, self.clock = db, idle_s, absolute_s, clock
        with db.write() as c:
            if db.postgres:
                c.execute("SELECT pg_advisory_xact_lock(?)", (DDL_LOCK_ID,))
            c.execute(_DDL)

    def open(self, token: str) -> str:
        """A new session for ``token`` (already authenticated): its id, for the cookie.
        Expired sessions are deleted here, so the table holds only live ones."""
        session_id = secrets.token_urlsafe(32)
        now = int(self.clock())
        with self.db.write() as c:
            c.execute("DELETE FROM svc_sessions WHERE opened_s <= ? OR seen_s <= ?",
                      (now - self.absolute_s, now - self.idle_s))
            c.execute("INSERT INTO svc_sessions (id_sha256, token_sha256, opened_s, seen_s) VALUES (?, ?, ?, ?)",
                      (_digest(session_id), _digest(token), now, now))
        return session_id

    def principal(self, session_id: str | None, tokens: dict[str, Principal]) -> Principal | None:
        """Who the session is, or None (unknown, expired, revoked, or its token is gone)."""
        if not session_id or len(session_id) > 128:
            return None
        key = _digest(session_id)
        now = int(self.clock())
        with self.db.read() as c:
            row = c.execute("SELECT token_sha256, opened_s, seen_s FROM svc_sessions WHERE id_sha256 = ?", (key,)).fetchone()
        if row is None:
            return None
        token_sha256, opened_s, seen_s = row
        if now - opened_s >= self.absolute_s or now - seen_s >= self.idle_s:
            self.revoke(session_id)
            return None
        if now - seen_s >= TOUCH_EVERY_S:
            with self.db.write() as c:
                c.execute("UPDATE svc_sessions SET seen_s = ? WHERE id_sha256 = ?", (now, key))
        return tokens.get(token_sha256)

    def revoke(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 128:
            with self.db.write() as c:
                c.execute("DELETE FROM svc_sessions WHERE id_sha256 = ?", (_digest(session_id),))
