"""The product description of definitions.yaml (`product`, `NORMAL`, `SERVICE`, ...), both ways:
what the hub publishes to a store (`POST /api/v1/inventories/stores/{storeUuid}/products`, the
full description, since the cloud replaces a product's old fields) and what a till posts when
a cashier creates a product (the webhook of the same path)."""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import incorrect
from .values import Fields, decimals
from .wire import loads

PRODUCT_TYPES = frozenset({"NORMAL", "ALCOHOL_MARKED", "ALCOHOL_NOT_MARKED", "SERVICE"})
# definitions.yaml lists the VAT rates of 2017; VAT_20 and VAT_20_120 replaced the 18% ones in
# 2019 (the spec digest names VAT_20): both sets are accepted
TAXES = frozenset(
    {"NO_VAT", "VAT_0", "VAT_10", "VAT_10_110", "VAT_18", "VAT_18_118", "VAT_20", "VAT_20_120"}
)
MEASURES = ("шт", "кг", "л", "м", "км", "м2", "м3", "компл", "упак", "ед", "дроб")
MAX_PRICE = Decimal("9999999.99")
PRODUCT_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
_BARCODE = re.compile(r"[0-9]{1,100}")


@dataclass(frozen=True, slots=True)
class EvotorProduct:
    uuid: str  # uuid4 form, unique in the store: the hub keeps one per product
    name: str  # 1..100 characters
    group: bool = False
    type: str = "NORMAL"
    parent_uuid: str | None = None  # the group it sits in
    code: str | None = None  # up to 10 characters
    bar_codes: tuple[str, ...] = ()
    price: Decimal = Decimal("0.00")
    cost_price: Decimal | None = None
    quantity: Decimal = Decimal("0.000")
    measure_name: str = "шт"
    tax: str = "NO_VAT"
    allow_to_sell: bool = True
    description: str | None = None
    article_number: str | None = None  # up to 20 characters

    def problems(self) -> list[str]:
        """What the cloud would refuse in this description, per definitions.yaml."""
        found = []
        if not PRODUCT_UUID.fullmatch(self.uuid):
            found.append(f"uuid {self.uuid!r} is not a lower-case uuid4")
        if not 1 <= len(self.name) <= 100:
            found.append("name must have 1 to 100 characters")
        if self.parent_uuid is not None and not PRODUCT_UUID.fullmatch(self.parent_uuid):
            found.append(f"parentUuid {self.parent_uuid!r} is not a lower-case uuid4")
        if self.code is not None and len(self.code) > 10:
            found.append("code has more than 10 characters")
        if self.group:
            return found
        if self.type not in PRODUCT_TYPES:
            found.append(f"type {self.type!r} is not one of {sorted(PRODUCT_TYPES)}")
        if self.tax not in TAXES:
            found.append(f"tax {self.tax!r} is not one of {sorted(TAXES)}")
        if not self.measure_name:
            found.append("measureName is empty")
        found += [
            f"barcode {b!r} is not digits" for b in self.bar_codes if not _BARCODE.fullmatch(b)
        ]
        for name, value in (("price", self.price), ("costPrice", self.cost_price)):
            if value is not None and not (0 <= value <= MAX_PRICE and decimals(value) <= 2):
                found.append(f"{name} {value} is not 0..{MAX_PRICE} in kopecks")
        if decimals(self.quantity) > 3:
            found.append(f"quantity {self.quantity} has more than 3 decimals")
        if self.article_number is not None and len(self.article_number) > 20:
            found.append("articleNumber has more than 20 characters")
        return found

    def as_json(self) -> dict[str, Any]:
        """The full description, numbers as Decimals (write it with wire.dumps)."""
        item: dict[str, Any] = {"uuid": self.uuid, "name": self.name, "group": self.group}
        item["parentUuid"] = self.parent_uuid
        if self.code is not None:
            item["code"] = self.code
        if self.group:
            return item
        item |= {
            "type": self.type,
            "barCodes": list(self.bar_codes),
            "price": self.price,
            "quantity": self.quantity,
            "measureName": self.measure_name,
            "tax": self.tax,
            "allowToSell": self.allow_to_sell,
        }
        optional = {
            "costPrice": self.cost_price,
            "description": self.description,
            "articleNumber": self.article_number,
        }
        return item | {key: value for key, value in optional.items() if value is not None}


def stable_product_uuid(namespace: uuidlib.UUID, key: str) -> str:
    """A uuid of the form the cloud requires, the same for the same (namespace, key) forever:
    an alternative to remembering a random one per product."""
    return str(uuidlib.uuid5(namespace, key))


def read_products(body: bytes | str | Any) -> list[EvotorProduct]:
    """Products created on a till (`POST .../stores/{storeUuid}/products`), all or nothing."""
    parsed = loads(body) if isinstance(body, bytes | str) else body
    if not isinstance(parsed, list):
        raise incorrect("body", "not an array of products")
    return [_product(Fields(item, f"[{index}]")) for index, item in enumerate(parsed)]


def _product(f: Fields) -> EvotorProduct:
    uuid, name = f.ident("uuid", required=True), f.text("name", required=True)
    assert uuid is not None and name is not None
    return EvotorProduct(
        uuid=uuid,
        name=name,
        group=f.flag("group", False),
        type=(f.text("type") or "NORMAL").upper(),
        parent_uuid=f.ident("parentUuid"),
        code=f.text("code"),
        bar_codes=tuple(_barcodes(f)),
        price=f.money("price") or Decimal("0.00"),
        cost_price=f.cost("costPrice"),
        quantity=f.quantity("quantity") or Decimal("0.000"),
        measure_name=f.text("measureName") or "",
        tax=f.text("tax") or "NO_VAT",
        allow_to_sell=f.flag("allowToSell", True),
        description=f.text("description"),
        article_number=f.text("articleNumber"),
    )


def _barcodes(f: Fields) -> list[str]:
    codes = []
    for index, value in enumerate(f.array("barCodes")):
        code = Fields({"barcode": value}, f"{f.at('barCodes')}[{index}]").text("barcode")
        if code is not None:
            codes.append(code)
    return codes
