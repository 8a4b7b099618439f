"""Who is calling and what they may do.

Bearer tokens come from a TOML file: ``[[tokens]]`` with name, role, sha256,
and for the ``promoter`` role the ``promoter_id`` it may read (SPEC §13); the
``metrics`` role reads ``/metrics`` only (a Prometheus scraper). Two entries
with one digest, or a file that cannot be read, are errors (exit 2).
Only SHA-256 digests of tokens are on disk and in memory; a presented token is
hashed and compared in constant time. Tokens never reach logs.

Authentication is a middleware (401 when no known token is presented), so every
route is closed unless it opts out with ``exclude_from_auth=True``; what a role
may do is a guard on each route (403). The pages' login opens a server-side
session (``service.sessions``): its cookie authenticates reads (GET, HEAD)
only, so a write always needs ``Authorization: Bearer`` and a forged
cross-site form can do nothing.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Guard

FINANCE, AUDITOR, PROMOTER, METRICS = "finance", "auditor", "promoter", "metrics"
ROLES = (FINANCE, AUDITOR, PROMOTER, METRICS)
SESSION_COOKIE = "ledger_session"  # the pages' login stores a session id here (service.sessions)
COOKIE_METHODS = ("GET", "HEAD")  # what a session cookie may authenticate
# The one page form that writes (SPEC §16's holds page): a cookie may carry its
# POST, which the handler accepts only with the session's form token and from
# our own origin (``service.holds.holds_form``).
COOKIE_FORM_POSTS = ("/holds",)


class TokensError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    promoter_id: str | None = None  # the promoter role's own promoter


def load_tokens(path: str) -> dict[str, Principal]:
    """sha256 hex → principal."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise TokensError(f"tokens file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, …
        raise TokensError(f"tokens file {path}: cannot read it: {exc.strerror or type(exc).__name__}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TokensError(f"{path}: invalid TOML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    entries = data.get("tokens")
    if not isinstance(entries, list) or set(data) - {"tokens"}:
        raise TokensError(f"{path}: expected only [[tokens]] tables")
    table: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TokensError(f"{path}: tokens[{i}] must be a table")
        role = entry.get("role")
        if role not in ROLES:
            raise TokensError(f"{path}: tokens[{i}].role {role!r}: expected finance, auditor, promoter or metrics")
        keys = {"name", "role", "sha256"} | ({"promoter_id"} if role == PROMOTER else set())
        if set(entry) != keys:
            raise TokensError(f"{path}: tokens[{i}] needs exactly {', '.join(sorted(keys))}")
        name, digest, promoter_id = entry["name"], entry["sha256"], entry.get("promoter_id")
        if role == PROMOTER and not (isinstance(promoter_id, str) and 1 <= len(promoter_id) <= 128):
            raise TokensError(f"{path}: tokens[{i}].promoter_id must be a string of 1-128 characters")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise TokensError(f"{path}: tokens[{i}].sha256 must be 64 hex digits")
        if not isinstance(name, str) or not name:
            raise TokensError(f"{path}: tokens[{i}].name must be a non-empty string")
        if digest.lower() in table:
            first = table[digest.lower()].name
            raise TokensError(f"{path}: tokens[{i}] ({name!r}) has the same sha256 as {first!r}: one token, one entry")
        table[digest.lower()] = Principal(name, role, promoter_id)
    return table


def authenticate(tokens: dict[str, Principal], token: str | None) -> Principal | None:
    """The token's principal: a lookup by the token's SHA-256 (what is compared
    is a digest of what the caller sent, so timing reveals nothing of a token)."""
    if not token or len(token) > 4096:
        return None
    return tokens.get(hashlib.sha256(token.encode()).hexdigest())


class SessionLookup(Protocol):
    def principal(self, session_id: str | None, tokens: dict[str, Principal]) -> Principal | None: ...


class TokenAuthentication(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to the caller's :class:`Principal`, from
    ``Authorization: Bearer`` or else (reads only) the pages' session cookie."""

    def __init__(self, app: ASGIApp, tokens: dict[str, Principal], sessions: SessionLookup,
                 exclude: list[str] | None = None) -> None:
        super().__init__(app, exclude=exclude)
        self.tokens = tokens
        self.sessions = sessions

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        who = None
        if header:
            who = authenticate(self.tokens, header[7:].strip()) if header[:7].lower() == "bearer " else None
        elif SESSION_COOKIE in connection.cookies and (
                connection.scope.get("method") in COOKIE_METHODS
                or (connection.scope.get("method") == "POST" and connection.scope.get("path") in COOKIE_FORM_POSTS)):
            who = await anyio.to_thread.run_sync(self.sessions.principal, connection.cookies[SESSION_COOKIE], self.tokens)
        if who is None:
            raise NotAuthorizedException("missing or unknown token")
        return AuthenticationResult(user=who, auth=None)


def _refuse(user: Principal) -> None:
    raise PermissionDeniedException(f"role {user.role} may not do this")


def requires(*roles: str) -> Guard:
    """A guard that lets through callers whose role is one of ``roles``."""

    def guard(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
        if connection.user.role not in roles:
            _refuse(connection.user)

    return guard


def read_or_own(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """Finance and auditors read any promoter; a promoter only its own
    (the route's ``promoter_id``)."""
    user = connection.user
    if user.role in (FINANCE, AUDITOR):
        return
    if user.role == PROMOTER and user.promoter_id is not None:
        asked = connection.path_params.get("promoter_id", connection.query_params.get("promoter_id"))
        if asked == user.promoter_id:
            return
    _refuse(user)


# SPEC §11, §13: finance and auditors read (the API and the pages); only
# finance writes; a promoter reads its own rows and statement, nothing else;
# a metrics token reads /metrics and nothing else.
READ = requires(FINANCE, AUDITOR)
SCRAPE = requires(FINANCE, AUDITOR, METRICS)
WRITE = requires(FINANCE)
READ_OR_OWN = read_or_own


def own(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """A promoter's own views (``/v1/me``, ``/me``): the promoter role only."""
    if connection.user.role != PROMOTER or connection.user.promoter_id is None:
        _refuse(connection.user)


OWN = own
