"""Idempotency-Key handling shared by the write use cases.

Every write that carries a key calls `claim` first in its transaction: the same key sent
again, even at the same moment, waits for the first request and gets its response (see
db/idempotency.py). Order placement on PostgreSQL, which has no transaction to hold open,
writes its key with the order in one statement that waits the same way (`replay` before,
and the first response after a unique violation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .ports import StoredResponse, UnitOfWork

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Idempotency(Generic[R]):
    """A request's key, the hash of its body, and how its result becomes the stored response."""

    principal: str
    key: str
    request_hash: str
    render: Callable[[R], StoredResponse]


async def claim(uow: UnitOfWork, idem: Idempotency[Any] | None) -> StoredResponse | None:
    """The first response to this key, or None once this request holds the key."""
    if idem is None:
        return None
    return await uow.claim_key(idem.principal, idem.key, idem.request_hash)


async def replay(uow: UnitOfWork, idem: Idempotency[Any] | None) -> StoredResponse | None:
    if idem is None:
        return None
    return await uow.find_response(idem.principal, idem.key, idem.request_hash)


async def remember(uow: UnitOfWork, idem: Idempotency[R] | None, result: R) -> None:
    if idem is not None:
        await uow.save_response(idem.principal, idem.key, idem.request_hash, idem.render(result))
