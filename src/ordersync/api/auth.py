"""Bearer tokens: each scoped to a role and, optionally (always for POS), to stores."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..db import tokens
from ..db.unit_of_work import Database
from ..domain.errors import Forbidden, Unauthorized
from ..domain.types import Role


def with_article(word: str) -> str:
    """'an online', 'an operator', 'an admin', 'a pos'."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: Role
    store_ids: frozenset[int]

    @property
    def key(self) -> str:
        return f"token:{self.token_id}"

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(
                f"{with_article(self.role.value)} token cannot do this",
                role=self.role.value,
                allowed=[r.value for r in roles],
            )

    def require_store(self, store_id: int | None, store_code: str | None = None) -> None:
        if not self.store_ids:
            return
        if store_id is None or store_id not in self.store_ids:
            raise Forbidden("this token is not allowed at this store", store=store_code)


MAX_TOKEN_LENGTH = 256


class TokenCache:
    """Recently verified tokens by their hash, so a request does not always cost a lookup.
    A revoked token stops working within `seconds`. Unknown tokens are never cached, so
    random tokens cannot fill the memory."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or time.monotonic() - entry[0] > self.seconds:
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic(), principal)


def _bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when it is not one."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def cached_principal(cache: TokenCache, authorization: str) -> Principal | None:
    """The principal of a well-formed bearer token verified within the cache's time, when
    `authenticate` would let it through as it is; None leaves the decision to `authenticate`
    (a token it must look up, or refuse)."""
    token = _bearer_token(authorization)
    if token is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    principal = cache.get(tokens.hash_token(token))
    if principal is None or principal.role is Role.EVOTOR:
        return None
    return principal


# Declares the scheme in the OpenAPI document (so /docs can send a token); the header is read
# and refused below, with our own error body.
bearer = HTTPBearer(auto_error=False, description="a token from `ordersync token create`")


async def authenticate(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
) -> Principal:
    token = _bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized("send Authorization: Bearer <token>")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("unknown or revoked token")
    cache: TokenCache = request.app.state.token_cache
    token_hash = tokens.hash_token(token)
    principal = cache.get(token_hash)
    if principal is None:
        db: Database = request.app.state.db
        async with db.connect(autocommit=True) as conn:
            row = await tokens.find_token(conn, token)
        if row is None:
            raise Unauthorized("unknown or revoked token")
        principal = Principal(row.id, row.name, row.role, row.store_ids)
        cache.put(token_hash, principal)
    if principal.role is Role.EVOTOR:  # the Evotor cloud's token opens /evotor only
        raise Forbidden("an evotor token may call only /evotor", role=principal.role.value)
    return principal
