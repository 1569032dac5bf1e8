"""Events out of Bitrix: the POST an outgoing webhook sends to its handler URL.

The body is `application/x-www-form-urlencoded` in PHP's nested form (`data[FIELDS][ID]=300`),
carrying `event` (upper case: ONSALEORDERSAVED), `event_handler_id`, `data[FIELDS][...]`, `ts`
(Unix time) and `auth[domain]`, `auth[member_id]`, `auth[application_token]`. The sender is
known by `auth[application_token]` alone, compared with the token shown when the outgoing
webhook was created. Sources (bitrix24/b24restdocs): local-integrations/local-webhooks.md,
api-reference/events/index.md, api-reference/events/safe-event-handlers.md,
api-reference/sale/events/on-sale-order-saved.md, on-sale-before-order-delete.md,
on-order-deleted.md.

Bitrix never retries an event: treat each as a hint and read the order with sale.order.get."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from ...domain.errors import Unauthorized
from .values import BadSitePayload, optional_id, optional_text

ORDER_SAVED = "ONSALEORDERSAVED"
ORDER_DELETING = "ONSALEBEFOREORDERDELETE"
ORDER_DELETED = "ONORDERDELETED"
ORDER_EVENTS = frozenset({ORDER_SAVED, ORDER_DELETING, ORDER_DELETED})
DELETE_EVENTS = frozenset({ORDER_DELETING, ORDER_DELETED})

MAX_FIELDS = 200  # an event has about a dozen; more is not Bitrix
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BitrixEvent:
    name: str  # upper case, as Bitrix sends it
    handler_id: str | None
    entity_id: str | None  # data[FIELDS][ID]: the order, payment or shipment the event is about
    xml_id: str | None  # data[FIELDS][XML_ID]: the order's xmlId (the hub's id on its own orders)
    action: str | None  # data[FIELDS][ACTION]: "save" or "delete"
    ts: datetime | None
    domain: str | None
    member_id: str | None
    fields: Mapping[str, str]  # every data[FIELDS][...] as sent

    @property
    def is_order_event(self) -> bool:
        return self.name in ORDER_EVENTS

    @property
    def order_id(self) -> str | None:
        """The site order id, for the order events (other events carry another entity's id)."""
        return self.entity_id if self.is_order_event else None

    @property
    def deletes_order(self) -> bool:
        return self.name in DELETE_EVENTS


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the outgoing webhook's token; an empty expected token (not
    configured) matches nothing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def form_fields(body: bytes | str) -> dict[str, str]:
    """The flat fields of a form-encoded body (`data[FIELDS][ID]` stays one key). A repeated key
    keeps its last value, as PHP does."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise BadSitePayload("event body too large", bytes=len(raw))
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadSitePayload(f"event body is not a form: {exc}") from exc
    return dict(pairs)


def read_event(body: bytes | str | Mapping[str, Any], application_token: str) -> BitrixEvent:
    """Checks the sender first (Unauthorized when `auth[application_token]` does not match), then
    reads the event (BadSitePayload when it is not one)."""
    fields = form_fields(body) if isinstance(body, bytes | str) else _flat(body)
    if not token_matches(application_token, fields.get("auth[application_token]")):
        raise Unauthorized("the event's application_token does not match")
    return parse_event(fields)


def parse_event(fields: Mapping[str, str]) -> BitrixEvent:
    """The event in flat form fields whose sender has been checked."""
    name = (fields.get("event") or "").strip().upper()
    if not name:
        raise BadSitePayload("not a Bitrix event: no event name")
    data = {
        key[len("data[FIELDS][") : -1]: value
        for key, value in fields.items()
        if key.startswith("data[FIELDS][") and key.endswith("]")
    }
    entity_id = optional_id(data.get("ID"), f"{name} data[FIELDS][ID]")
    if name in ORDER_EVENTS and entity_id is None:
        raise BadSitePayload(f"{name} without data[FIELDS][ID]")
    return BitrixEvent(
        name=name,
        handler_id=optional_text(fields.get("event_handler_id")),
        entity_id=entity_id,
        xml_id=optional_text(data.get("XML_ID")),
        action=optional_text(data.get("ACTION")),
        ts=_ts(fields.get("ts")),
        domain=optional_text(fields.get("auth[domain]")),
        member_id=optional_text(fields.get("auth[member_id]")),
        fields=data,
    )


def _ts(value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return datetime.fromtimestamp(int(value.strip()), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadSitePayload(f"event ts is not a Unix time: {value!r}") from exc


def _flat(fields: Mapping[str, Any]) -> dict[str, str]:
    """Form fields already parsed by a framework (one value, or a list whose last value counts)."""
    flat: dict[str, str] = {}
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            value = value[-1] if value else ""
        if not isinstance(value, str):
            raise BadSitePayload(f"event field {key!r} is not text")
        flat[str(key)] = value
    return flat
