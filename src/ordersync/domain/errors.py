"""The error tree. Every error carries a machine-readable code and structured details.

OrdersyncError
├── InvalidRequest            invalid_request: input that breaks a rule (quantity, unit, ...)
│   ├── UnknownProduct        unknown_product
│   ├── UnknownStore          unknown_store
│   ├── IdempotencyKeyReused  idempotency_key_reused: same key, different body
│   └── BadExchangeFile       bad_exchange_file: a CommerceML file that cannot be read
├── NotFound                  not_found: the addressed resource does not exist
├── Conflict                  conflict: the request is valid but the state does not allow it
│   ├── InsufficientStock     insufficient_stock: lines that cannot be covered
│   ├── InvalidTransition     invalid_transition: e.g. paying a cancelled order
│   ├── DuplicateKey          duplicate: a unique code or external id already exists
│   ├── StockRace             (internal) the allocation went stale: plan again
│   └── AlreadyRecorded       (internal) a concurrent request wrote the same key first
├── Unauthorized              unauthorized: no or unknown token
├── Forbidden                 forbidden: the token's role or stores do not allow it
└── ConfigError               config_error: the configuration is unusable
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class OrdersyncError(Exception):
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_detail(self) -> dict[str, Any]:
        return {"message": self.message, **self.details}


class InvalidRequest(OrdersyncError):
    code = "invalid_request"


class BadExchangeFile(InvalidRequest):
    code = "bad_exchange_file"


class UnknownProduct(InvalidRequest):
    code = "unknown_product"

    def __init__(self, refs: Sequence[str]) -> None:
        super().__init__(f"unknown product(s): {', '.join(refs)}", products=list(refs))


class UnknownStore(InvalidRequest):
    code = "unknown_store"

    def __init__(self, refs: Sequence[str]) -> None:
        super().__init__(f"unknown store(s): {', '.join(refs)}", stores=list(refs))


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class NotFound(OrdersyncError):
    code = "not_found"


class Conflict(OrdersyncError):
    code = "conflict"


class InsufficientStock(Conflict):
    code = "insufficient_stock"

    def __init__(self, lines: Sequence[Mapping[str, Any]], message: str | None = None) -> None:
        super().__init__(
            message or "not enough stock to cover the lines", lines=[dict(x) for x in lines]
        )


class InvalidTransition(Conflict):
    code = "invalid_transition"


class DuplicateKey(Conflict):
    code = "duplicate"


class Unauthorized(OrdersyncError):
    code = "unauthorized"


class Forbidden(OrdersyncError):
    code = "forbidden"


class ConfigError(OrdersyncError):
    code = "config_error"


class StockRace(Conflict):
    """The allocation plan went stale between reading and holding: plan again.
    Internal: the services retry and never let it reach a client."""

    code = "stock_race"


class AlreadyRecorded(Conflict):
    """A unique business key (Idempotency-Key, POS transaction, external order id) was
    written by a concurrent request first. Internal: the services answer with the first result."""

    code = "already_recorded"
