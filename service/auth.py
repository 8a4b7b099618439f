"""Bearer tokens from a TOML file: ``[[tokens]]`` with name, role, sha256.

Only SHA-256 digests of tokens are on disk and in memory; a presented token is
hashed and compared in constant time. Tokens never reach logs.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass

ROLES = ("finance", "auditor")


class TokensError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


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
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "sha256"}:
            raise TokensError(f"{path}: tokens[{i}] needs exactly name, role, sha256")
        name, role, digest = entry["name"], entry["role"], entry["sha256"]
        if role not in ROLES:
            raise TokensError(f"{path}: tokens[{i}].role {role!r}: expected finance or auditor")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise TokensError(f"{path}: tokens[{i}].sha256 must be 64 hex digits")
        if not isinstance(name, str) or not name:
            raise TokensError(f"{path}: tokens[{i}].name must be a non-empty string")
        table[digest.lower()] = Principal(name, role)
    return table


def authenticate(tokens: dict[str, Principal], token: str | None) -> Principal | None:
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    for known, principal in tokens.items():
        if hmac.compare_digest(known, digest):
            return principal
    return None
