"""Who is calling and what they may do.

Bearer tokens come from a TOML file: ``[[tokens]]`` with name, role, sha256,
and for the ``promoter`` role the ``promoter_id`` it may read (SPEC §13).
Only SHA-256 digests of tokens are on disk and in memory; a presented token is
hashed and compared in constant time. Tokens never reach logs.

Authentication is a middleware (401 when no known token is presented), so every
route is closed unless it opts out with ``exclude_from_auth=True``; what a role
may do is a guard on each route (403).
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Guard

FINANCE, AUDITOR, PROMOTER = "finance", "auditor", "promoter"
ROLES = (FINANCE, AUDITOR, PROMOTER)
SESSION_COOKIE = "ledger_session"  # the pages' login stores the token here


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
    except tomllib.TOMLDecodeError as exc:
        raise TokensError(f"{path}: invalid TOML: {exc}") from None
    entries = data.get("tokens")
    if not isinstance(entries, list) or set(data) - {"tokens"}:
        raise TokensError(f"{path}: expected only [[tokens]] tables")
    table: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TokensError(f"{path}: tokens[{i}] must be a table")
        role = entry.get("role")
        if role not in ROLES:
            raise TokensError(f"{path}: tokens[{i}].role {role!r}: expected finance, auditor or promoter")
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
        table[digest.lower()] = Principal(name, role, promoter_id)
    return table


def authenticate(tokens: dict[str, Principal], token: str | None) -> Principal | None:
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    for known, principal in tokens.items():
        if hmac.compare_digest(known, digest):
            return principal
    return None


class TokenAuthentication(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to the caller's :class:`Principal`, from
    ``Authorization: Bearer`` or else the pages' session cookie."""

    def __init__(self, app: ASGIApp, tokens: dict[str, Principal], exclude: list[str] | None = None) -> None:
        super().__init__(app, exclude=exclude)
        self.tokens = tokens

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else connection.cookies.get(SESSION_COOKIE)
        who = authenticate(self.tokens, token)
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
    if user.role == PROMOTER and user.promoter_id is not None and connection.path_params.get("promoter_id") == user.promoter_id:
        return
    _refuse(user)


# SPEC §11, §13: finance and auditors read (the API and the pages); only
# finance writes; a promoter reads its own rows and statement, nothing else.
READ = requires(FINANCE, AUDITOR)
WRITE = requires(FINANCE)
READ_OR_OWN = read_or_own


def own(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """A promoter's own views (``/v1/me``, ``/me``): the promoter role only."""
    if connection.user.role != PROMOTER or connection.user.promoter_id is None:
        _refuse(connection.user)


OWN = own
