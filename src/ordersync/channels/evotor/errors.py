"""Evotor's error format, `{"errors": [{"code", "reason", "subject", "value"?}]}`, with the codes
of responses.yaml in evotor/documentation-api.

EvotorRequestError      what the hub answers the cloud (or the cloud answers the hub)
└── carries EvotorErrorItem(code, reason, subject, value) per problem found
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    CLOUD_TOKEN_INVALID = 1001  # the Evotor cloud token is wrong
    USER_TOKEN_INVALID = 1002
    USER_TOKEN_EXPIRED = 1003
    PAYMENT_REQUIRED = 1004  # the user's subscription at the service has ended
    DEVICE_NOT_LICENSED = 1005
    WRONG_CREDENTIALS = 1006  # /user/verify: the user gave wrong data
    SYNTAX = 2001  # the request does not parse
    MISSING = 2002  # a required field is missing
    INCORRECT = 2003  # a field holds a value that is not allowed
    ASSOCIATED_ELSEWHERE = 2004  # /user/verify: the userId is linked to another account
    ALREADY_REGISTERED = 2005  # /user/create


_STATUS = {
    ErrorCode.CLOUD_TOKEN_INVALID: 401,
    ErrorCode.USER_TOKEN_INVALID: 401,
    ErrorCode.USER_TOKEN_EXPIRED: 401,
    ErrorCode.WRONG_CREDENTIALS: 401,
    ErrorCode.PAYMENT_REQUIRED: 402,
    ErrorCode.DEVICE_NOT_LICENSED: 405,
    ErrorCode.ASSOCIATED_ELSEWHERE: 409,
    ErrorCode.ALREADY_REGISTERED: 409,
}


@dataclass(frozen=True, slots=True)
class EvotorErrorItem:
    code: int
    reason: str
    subject: str | None = None  # the field, as a path: "[2].transactions[1].quantity"
    value: str | None = None  # the offending value, as text (responses.yaml 40020012003)

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.subject is not None:
            item["subject"] = self.subject
        if self.value is not None:
            item["value"] = self.value
        return item

    def under(self, prefix: str) -> EvotorErrorItem:
        """The same problem, its subject placed under a parent path."""
        subject = prefix if not self.subject else _join(prefix, self.subject)
        return EvotorErrorItem(self.code, self.reason, subject, self.value)


class EvotorRequestError(Exception):
    """A request (or one document of a batch) that cannot be read. `status` is the HTTP status
    Evotor documents for the first code: 400 for 2001-2003, 401 for token codes, and so on."""

    def __init__(self, items: Iterable[EvotorErrorItem]) -> None:
        self.items = tuple(items)
        if not self.items:
            raise ValueError("an EvotorRequestError needs at least one item")
        first = self.items[0]
        where = f" ({first.subject})" if first.subject else ""
        super().__init__(f"Evotor error {first.code}: {first.reason}{where}")

    @property
    def status(self) -> int:
        return status_for(self.items[0].code)

    def body(self) -> dict[str, Any]:
        return error_body(self.items)

    def under(self, prefix: str) -> EvotorRequestError:
        return EvotorRequestError(item.under(prefix) for item in self.items)


def status_for(code: int) -> int:
    try:
        return _STATUS.get(ErrorCode(code), 400)
    except ValueError:
        return 400


def error_body(items: Iterable[EvotorErrorItem]) -> dict[str, Any]:
    """The JSON body Evotor expects with a 4xx: `{"errors": [...]}`."""
    return {"errors": [item.as_json() for item in items]}


def syntax(reason: str, subject: str | None = None) -> EvotorRequestError:
    return EvotorRequestError([EvotorErrorItem(ErrorCode.SYNTAX, reason, subject)])


def missing(subject: str) -> EvotorRequestError:
    return EvotorRequestError([EvotorErrorItem(ErrorCode.MISSING, "missing", subject)])


def incorrect(subject: str, detail: str, value: object = None) -> EvotorRequestError:
    shown = None if value is None else str(value)[:100]
    item = EvotorErrorItem(ErrorCode.INCORRECT, f"incorrect: {detail}", subject, shown)
    return EvotorRequestError([item])


def unauthorized(code: ErrorCode = ErrorCode.USER_TOKEN_INVALID) -> EvotorRequestError:
    return EvotorRequestError([EvotorErrorItem(code, "unauthorized", "Authorization")])


def _join(prefix: str, subject: str) -> str:
    return f"{prefix}{subject}" if subject.startswith("[") else f"{prefix}.{subject}"
