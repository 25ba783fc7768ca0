"""Bearer tokens: only their SHA-256 is kept; a request's token is hashed and compared with
every known hash in constant time (:func:`hmac.compare_digest`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

#: the operator (manages tenants and the repository)
OPERATOR = "\x00operator"


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token`` (what tenants.toml's ``token_sha256`` holds)."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096:
        return None
    return token


def identify(
    token: str | None, operator_sha256: str | None, tenants: Iterable[tuple[str, str]]
) -> str | None:
    """Who holds ``token``: :data:`OPERATOR`, a tenant's name (``tenants``: name, token
    hash pairs), or None. Every hash is compared, whichever matches."""
    if token is None:
        return None
    h = hash_token(token)
    who = None
    if operator_sha256 is not None and hmac.compare_digest(h, operator_sha256):
        who = OPERATOR
    for name, th in tenants:
        if hmac.compare_digest(h, th) and who is None:
            who = name
    return who


def token_taken(
    token_sha256: str, operator_sha256: str | None, tenant_hashes: Iterable[str]
) -> bool:
    """Whether a new tenant's token hash is already some tenant's or the operator's (a
    token must name one holder; compared in constant time)."""
    taken = operator_sha256 is not None and hmac.compare_digest(token_sha256, operator_sha256)
    for th in tenant_hashes:
        taken = hmac.compare_digest(token_sha256, th) or taken
    return taken


__all__ = ["OPERATOR", "bearer", "hash_token", "identify", "token_taken"]
