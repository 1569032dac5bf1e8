"""Request bodies. Quantities and money are decimals (JSON strings or numbers), never floats."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..domain.commands import LineInput, ProductRef, StockLine
from ..domain.errors import InvalidRequest
from ..domain.types import Channel, Fulfillment, PosMode, StoreKind, Unit
from .decimal_json import plain
from .guards import UNSTORABLE

# A decimal sent as a string is written plainly: digits, then a point and digits, or not.
# Python's Decimal would also read " 1 ", "1_000", "1e3" and other scripts' digits.
PLAIN_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
_PLAIN = re.compile(PLAIN_DECIMAL)


def _plain_decimal(value: Any) -> Any:
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        raise ValueError("must be a JSON number or a plain decimal string such as 12 or 0.25")
    return value


def _decimal_schema(description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": PLAIN_DECIMAL}],
            "description": description,
        }
    )


def _iso_time(value: Any) -> Any:
    """A time is an ISO 8601 string; pydantic would also take a number as Unix seconds."""
    if not isinstance(value, datetime | str) or (
        isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", value)
    ):
        raise ValueError("must be an ISO 8601 date-time such as 2025-03-01T12:00:00+03:00")
    return value


Code = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
# A SKU may be a 1C Ид (up to 128 characters) when 1C sent no article.
Sku = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]
# Decimal fields: JSON numbers reach them as Decimal (api/decimal_json.py), never as floats.
# Places and digits are bounded here so that nothing out of range reaches the database.
Qty = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    Field(allow_inf_nan=False, max_digits=13, decimal_places=3),
    _decimal_schema("a quantity: whole for pieces, at most 3 decimals otherwise"),
]
Price = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    Field(allow_inf_nan=False, max_digits=15, decimal_places=2, ge=0),
    _decimal_schema("money, at most 2 decimals"),
]
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
# JSON true and false only, and whole JSON numbers only (pydantic would take 0, "yes", "12").
Flag = StrictBool
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Priority = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
MAX_CUSTOMER_BYTES = 8192


def _utc(value: datetime) -> datetime:
    """Times without an offset are UTC; times that cannot be expressed in UTC are refused."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


Time = Annotated[datetime, BeforeValidator(_iso_time), AfterValidator(_utc)]
QueryTime = Annotated[datetime, BeforeValidator(_iso_time)]


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("must be plain JSON (no NaN, no lone surrogates)") from exc
    if len(text) > MAX_CUSTOMER_BYTES:
        raise ValueError(f"must be at most {MAX_CUSTOMER_BYTES} bytes of JSON")
    if b"\\u0000" in json.dumps(value).encode():
        raise ValueError("must not contain NUL characters")
    return value


Customer = Annotated[dict[str, Any], BeforeValidator(plain), AfterValidator(_json_object)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Text PostgreSQL can store: no NUL character, no lone surrogate."""
        if isinstance(value, str) and UNSTORABLE.search(value):
            raise ValueError("must not contain NUL characters or lone surrogates")
        return value


class ProductRefIn(Strict):
    product_id: Id | None = None
    sku: Sku | None = None
    xml_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ProductRefIn:
        given = [x for x in (self.product_id, self.sku, self.xml_id) if x is not None]
        if len(given) != 1:
            raise ValueError("name the product by exactly one of product_id, sku, xml_id")
        return self

    def ref(self) -> ProductRef:
        return ProductRef(self.product_id, self.sku, self.xml_id)


class OrderLineIn(ProductRefIn):
    quantity: Qty
    price: Price | None = None

    def line(self) -> LineInput:
        return LineInput(self.ref(), self.quantity, self.price)


class OrderIn(Strict):
    fulfillment: Fulfillment
    lines: list[OrderLineIn] = Field(min_length=1, max_length=500)
    store: Code | None = Field(None, description="pickup store code (pickup orders)")
    channel: Channel | None = Field(None, description="admin tokens only; others use their role")
    customer: Customer = Field(default_factory=dict)
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "RUB"
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class AttentionResolutionIn(Strict):
    resolution: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="what was done, in a few words (kept with the item)"
    )


class LineStoreIn(Strict):
    store: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="the code of the store that is to hold the whole line"
    )


class PosLineIn(ProductRefIn):
    quantity: Qty
    price: Price | None = None

    def line(self) -> LineInput:
        return LineInput(self.ref(), self.quantity, self.price)


class PosSaleIn(Strict):
    store: Code
    pos_id: Code
    transaction_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    lines: list[PosLineIn] = Field(min_length=1, max_length=500)
    time: Time | None = Field(None, description="when the sale happened at the till")
    completed: Flag = Field(
        True,
        description="the receipt is printed and the customer gone: recorded whatever the "
        "stock says (false: refused with insufficient_stock when the free units do not "
        "cover it, naming the orders holding them)",
    )
    shift: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = Field(
        None, description="the till's shift; default: the business date"
    )


class PosReturnIn(PosSaleIn):
    original_transaction_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=128)] | None
    ) = Field(
        None,
        description="the sale returned, looked up across the store's tills; a completed "
        "return without a known sale is recorded unlinked and listed for review",
    )


class ReviewResolutionIn(Strict):
    resolution: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="what was done, in a few words (kept with the item)"
    )


class StockLineIn(ProductRefIn):
    quantity: Qty

    def line(self) -> StockLine:
        return StockLine(self.ref(), self.quantity)


class StockDocumentIn(Strict):
    store: Code
    document_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    lines: list[StockLineIn] = Field(min_length=1, max_length=5000)
    time: Time | None = None
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TransferIn(Strict):
    from_store: Code
    to_store: Code
    document_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    lines: list[StockLineIn] = Field(min_length=1, max_length=5000)
    time: Time | None = None


EvotorUuid = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=64,
        strip_whitespace=True,
        to_lower=True,
        pattern=r"^[0-9A-Za-z_-]+$",
    ),
]


class StoreIn(Strict):
    code: Code
    name: Text
    kind: StoreKind
    xml_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    serves_online: Flag = False
    online_priority: Priority = 100
    is_pickup_point: Flag = False
    safety_stock: Qty = Field(Decimal(0), ge=0)
    pos_mode: PosMode = PosMode.ORDER
    active: Flag = True
    evotor_uuid: EvotorUuid | None = Field(None, description="the store's uuid at Evotor")


class StorePatch(Strict):
    name: Text | None = None
    kind: StoreKind | None = None
    xml_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    serves_online: Flag | None = None
    online_priority: Priority | None = None
    is_pickup_point: Flag | None = None
    safety_stock: Qty | None = Field(None, ge=0)
    pos_mode: PosMode | None = None
    active: Flag | None = None
    evotor_uuid: EvotorUuid | None = Field(
        None, description="the store's uuid at Evotor (null unlinks it)"
    )


class ProductIn(Strict):
    sku: Sku
    name: Text
    xml_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    unit: Unit = Unit.PCS
    barcode: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    price: Price | None = None
    active: Flag = True


class ProductPatch(Strict):
    sku: Sku | None = None
    name: Text | None = None
    xml_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    unit: Unit | None = None
    barcode: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    price: Price | None = None
    active: Flag | None = None


def product_ref(product_id: int | None, sku: str | None, xml_id: str | None) -> ProductRef:
    """A product named in query parameters, checked like one named in a body."""
    try:
        return ProductRefIn(product_id=product_id, sku=sku, xml_id=xml_id).ref()
    except ValidationError as exc:
        raise InvalidRequest(
            "name the product by exactly one of product_id, sku, xml_id",
            errors=[e["msg"] for e in exc.errors()],
        ) from None
