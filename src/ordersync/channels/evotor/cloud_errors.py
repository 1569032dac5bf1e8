"""What a call to the Evotor cloud can end in.

CloudError
├── CloudRateLimited      429, 503, or the X-RateLimit budget spent: `retry_after` seconds
├── CloudUnavailable      another 5xx, or no answer at all
├── CloudAuthError        401: the token is wrong or expired (codes 1001-1003)
├── CloudRequestError     another 4xx, with Evotor's `errors` (413 included)
└── CloudProtocolError    an answer that is not what the documentation describes
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import EvotorErrorItem


class CloudError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudRateLimited(CloudError):
    def __init__(self, message: str, retry_after: float, status: int | None = None) -> None:
        super().__init__(f"{message}; retry in {retry_after:.1f} s", status)
        self.retry_after = retry_after


class CloudUnavailable(CloudError):
    pass


class CloudAuthError(CloudError):
    pass


class CloudRequestError(CloudError):
    def __init__(self, message: str, status: int, errors: Sequence[EvotorErrorItem] = ()) -> None:
        codes = ", ".join(f"{e.code} {e.reason}" for e in errors)
        super().__init__(f"{message}: {codes}" if codes else message, status)
        self.errors = tuple(errors)


class CloudProtocolError(CloudError):
    pass


class InvalidProducts(ValueError):
    """Products the cloud would refuse, found before sending: {uuid: [problems]}."""

    def __init__(self, problems: Mapping[str, list[str]]) -> None:
        first = next(iter(problems.items()))
        super().__init__(
            f"{len(problems)} product(s) the cloud would refuse, {first[0]}: {'; '.join(first[1])}"
        )
        self.problems = dict(problems)
