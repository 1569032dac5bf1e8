"""`ordersync bitrix check`: what the site says it has, and where the configuration and the
hub's stores do not meet it.

Read from the site with the configured incoming webhook: stores (`catalog.store.list`),
delivery services (`sale.delivery.getlist`), order statuses (`sale.status.list`) and pay
systems (`sale.paysystem.list`). Gaps: site stores that map to no hub store (by the store's Ид
= the hub store's xml_id, or `store_map`), hub stores no site store maps to, pickup delivery
services, cash-on-delivery pay systems and the mirrored orders' pay system the site does not
have, statuses named in the configuration the site does not have.

A site that cannot be reached, or that refuses the webhook (its code is the token), raises
SiteRefused; a method the webhook may not call (a scope missing) is a problem of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..config import BitrixSettings
from ..services.ports import Store
from .bitrix_rest import BitrixError, BitrixRest

REFUSALS = frozenset(
    {"NO_AUTH_FOUND", "INVALID_CREDENTIALS", "EXPIRED_TOKEN", "INVALID_TOKEN", "ACCESS_DENIED"}
)


class SiteRefused(Exception):
    """The site could not be reached, or it refused the webhook."""


@dataclass
class SiteFindings:
    stores: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    pay_systems: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # methods the webhook could not call
    gaps: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)  # site store id -> hub store code


def _refused(exc: BitrixError) -> bool:
    return exc.status in (401, 403) or str(exc.code).upper() in REFUSALS


async def _read(rest: BitrixRest, findings: SiteFindings, what: str, call: Any) -> list[Any]:
    try:
        rows = await call
    except httpx.HTTPError as exc:
        raise SiteRefused(f"the site cannot be reached: {type(exc).__name__}: {exc}") from exc
    except BitrixError as exc:
        if _refused(exc):
            raise SiteRefused(f"the site refused the webhook: {exc}") from exc
        findings.problems.append(f"{what}: {exc} (does the webhook have the scope?)")
        return []
    return list(rows or [])


async def read_site(rest: BitrixRest) -> SiteFindings:
    found = SiteFindings()
    found.stores = await _read(
        rest,
        found,
        "stores (catalog.store.list, scope catalog)",
        rest.call_all(
            "catalog.store.list",
            {"select": ["id", "title", "active", "code", "xmlId", "issuingCenter"]},
            "stores",
        ),
    )
    found.statuses = await _read(
        rest,
        found,
        "statuses (sale.status.list, scope sale)",
        rest.call_all("sale.status.list", {"select": ["id", "type"]}, "statuses"),
    )
    found.deliveries = await _read(
        rest,
        found,
        "delivery services (sale.delivery.getlist, scope sale)",
        rest.call("sale.delivery.getlist", {"SELECT": ["ID", "NAME", "ACTIVE", "PARENT_ID"]}),
    )
    found.pay_systems = await _read(
        rest,
        found,
        "pay systems (sale.paysystem.list, scope pay_system or sale)",
        rest.call("sale.paysystem.list", {"SELECT": ["ID", "NAME", "ACTIVE", "IS_CASH"]}),
    )
    return found


def _ids(rows: Iterable[Mapping[str, Any]], key: str) -> set[str]:
    return {str(r.get(key)) for r in rows if r.get(key) is not None}


def find_gaps(found: SiteFindings, conf: BitrixSettings, hub_stores: Sequence[Store]) -> None:
    """Fills `found.gaps` and `found.mapped` (pure: what was read against the configuration)."""
    gaps = found.gaps
    by_xml = {s.xml_id: s.code for s in hub_stores}
    codes = {s.code for s in hub_stores}
    for site_id, code in sorted(conf.store_map.items()):
        if code not in codes:
            gaps.append(f"[bitrix.store_map] {site_id} names {code!r}, which is no hub store")
    if found.stores or not found.problems:
        for row in found.stores:
            site_id = str(row.get("id"))
            hub_code = conf.store_map.get(site_id) or by_xml.get(str(row.get("xmlId") or ""))
            if hub_code in codes:
                found.mapped[site_id] = str(hub_code)
            else:
                gaps.append(
                    f"site store {site_id} {row.get('title')!r} (xmlId {row.get('xmlId')!r}) "
                    "maps to no hub store: give it the hub store's Ид, or map it in "
                    "[bitrix.store_map]"
                )
        reached = set(found.mapped.values())
        for store in hub_stores:
            if store.active and store.code not in reached:
                gaps.append(f"hub store {store.code} has no site store (its stock is not sent)")
    deliveries = _ids(found.deliveries, "ID")
    if found.deliveries:
        for delivery in conf.pickup_deliveries:
            if str(delivery) not in deliveries:
                gaps.append(f"pickup delivery service {delivery} is not on the site")
        for delivery, code in sorted(conf.pickup_stores.items()):
            if delivery not in deliveries:
                gaps.append(
                    f"[bitrix.pickup_stores] delivery service {delivery} is not on the site"
                )
            if code not in codes:
                gaps.append(f"[bitrix.pickup_stores] {delivery} names {code!r}, no hub store")
    pay_systems = _ids(found.pay_systems, "ID")
    if found.pay_systems:
        for pay_system in conf.cod_pay_systems:
            if str(pay_system) not in pay_systems:
                gaps.append(f"cash-on-delivery pay system {pay_system} is not on the site")
        if conf.mirror_channels and str(conf.mirror_pay_system_id) not in pay_systems:
            gaps.append(
                f"mirror_pay_system_id {conf.mirror_pay_system_id} is not on the site "
                "(till and operator orders cannot be recorded)"
            )
    statuses = _ids(found.statuses, "id")
    if found.statuses:
        named = {f"push_statuses.{k}": v for k, v in conf.push_statuses.items()}
        named.update({f"status_map key {k}": k for k in conf.status_map})
        if conf.short_status:
            named["short_status"] = conf.short_status
        if conf.mirror_channels:
            named["mirror_status"] = conf.mirror_status
        for where, status in sorted(named.items()):
            if status not in statuses:
                gaps.append(f"status {status!r} ({where}) is not on the site")
    if conf.iblock_id is None:
        gaps.append("iblock_id is not set: the hub cannot name products, so no stock is sent")
