"""Stores, smart terminals and employees: Evotor is their master and sends each change as an
array (`PUT /api/v1/inventories/stores`, `.../devices`, `.../employees`); the REST API lists
them the same way (`GET .../stores/search`, ...). Fields as in definitions.yaml `store`,
`storeWithoutCode`, `device`, `deviceWithoutCode`, `employee`, `employeeWithoutCode`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import incorrect
from .values import Fields
from .wire import loads

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EvotorStore:
    uuid: str
    name: str
    address: str | None = None
    code: str | None = None  # unused by the cloud: a key for systems that do not keep uuids


@dataclass(frozen=True, slots=True)
class EvotorDevice:
    uuid: str
    name: str | None
    store_uuid: str | None
    timezone_offset_ms: int | None = None  # 10800000 is UTC+3
    code: str | None = None


@dataclass(frozen=True, slots=True)
class EvotorEmployee:
    uuid: str
    name: str
    last_name: str | None = None
    patronymic_name: str | None = None
    phone: str | None = None
    role: str | None = None  # ADMIN, CASHIER, MANUAL
    store_uuids: tuple[str, ...] = ()
    code: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.name, self.patronymic_name) if p)


def read_stores(body: bytes | str | Any) -> list[EvotorStore]:
    return _read_array(body, _store)


def read_devices(body: bytes | str | Any) -> list[EvotorDevice]:
    return _read_array(body, _device)


def read_employees(body: bytes | str | Any) -> list[EvotorEmployee]:
    return _read_array(body, _employee)


def _read_array(body: bytes | str | Any, read: Callable[[Fields], T]) -> list[T]:
    """All or nothing: these arrays are small and the cloud sends them again whole."""
    parsed = loads(body) if isinstance(body, bytes | str) else body
    if not isinstance(parsed, list):
        raise incorrect("body", "not an array")
    return [read(Fields(item, f"[{index}]")) for index, item in enumerate(parsed)]


def _uuid(f: Fields) -> str:
    uuid = f.ident("uuid", required=True)
    assert uuid is not None
    return uuid


def _store(f: Fields) -> EvotorStore:
    name = f.text("name", required=True)
    assert name is not None
    return EvotorStore(_uuid(f), name, f.text("address"), f.text("code"))


def _device(f: Fields) -> EvotorDevice:
    return EvotorDevice(
        _uuid(f),
        f.text("name"),
        f.ident("storeUuid"),
        f.lenient("integer", "timezoneOffset"),
        f.text("code"),
    )


def _employee(f: Fields) -> EvotorEmployee:
    name = f.text("name", required=True)
    assert name is not None
    phone = f.lenient("integer", "phone")
    return EvotorEmployee(
        _uuid(f),
        name,
        f.text("lastName"),
        f.text("patronymicName"),
        str(phone) if phone is not None else f.lenient("text", "phone"),
        f.text("role"),
        tuple(_store_refs(f)),
        f.text("code"),
    )


def _store_refs(f: Fields) -> list[str]:
    """`stores` is an array of uuids (current definitions.yaml) or of `{storeUuid}` objects
    (the older one)."""
    refs = []
    for index, item in enumerate(f.array("stores")):
        at = f"{f.at('stores')}[{index}]"
        ref = Fields({"storeUuid": item} if not isinstance(item, dict) else item, at)
        uuid = ref.ident("storeUuid", required=True)
        assert uuid is not None
        refs.append(uuid)
    return refs
