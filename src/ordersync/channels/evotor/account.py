"""Linking an Evotor account to the hub (paths.yaml `/partner.ru/api/v1/user/verify`,
`/user/create`, `/user/token`; definitions.yaml `authorizeFormData`, `registerFormData`,
`userId`). The cloud posts the user's login or registration form and the hub answers the
token the cloud will send back as `Authorization: Bearer <token>`; once the app is installed
the cloud posts its own token, which the hub sends as `X-Authorization` in its calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import incorrect
from .values import Fields
from .wire import loads

USER_ID = re.compile(r"[0-9]{2}-[0-9]{15}")  # 01-000000000000001


@dataclass(frozen=True, slots=True)
class UserLink:
    """`/user/verify` (an existing account: username and password) or `/user/create`."""

    user_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    custom_fields: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class CloudToken:
    """`/user/token`: the token for the hub's calls to the cloud on behalf of `user_id`."""

    user_id: str
    token: str = field(repr=False)


def read_user_link(body: bytes | str | Any) -> UserLink:
    f = Fields(loads(body) if isinstance(body, bytes | str) else body)
    known = {"userId", "userUuid", "username", "password"}
    extra = {k: str(v) for k, v in f.raw.items() if k not in known and isinstance(v, str | int)}
    return UserLink(_user_id(f), f.text("username"), f.text("password"), extra)


def read_cloud_token(body: bytes | str | Any) -> CloudToken:
    f = Fields(loads(body) if isinstance(body, bytes | str) else body)
    token = f.text("token", required=True, max_length=512)
    assert token is not None
    return CloudToken(_user_id(f), token)


def user_linked(user_id: str, token: str, has_billing: bool = False) -> dict[str, Any]:
    """The answer to `/user/verify` and `/user/create`."""
    return {"userId": user_id, "token": token, "hasBilling": has_billing}


def _user_id(f: Fields) -> str:
    # `userId` in the current definitions.yaml, `userUuid` in the older ones
    key = "userId" if f.has("userId") or not f.has("userUuid") else "userUuid"
    user_id = f.text(key, required=True)
    assert user_id is not None
    if not USER_ID.fullmatch(user_id):
        raise incorrect(f.at(key), "not an Evotor user id (NN-NNNNNNNNNNNNNNN)", user_id)
    return user_id
