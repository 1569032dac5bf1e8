"""Reading CommerceML files safely: streaming, blind to namespaces, no DTD, no entities.

1C writes no DTD, so a file that declares one is refused before parsing: that is where entity
expansion bombs and external entities live. The parser is also told never to resolve
entities, load a DTD or touch the network, and keeps libxml2's size limits (huge_tree off).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from ..domain.errors import BadExchangeFile

ROOT = "КоммерческаяИнформация"
_PROLOG_BYTES = 64 * 1024
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[^?!]")


def local(tag: object) -> str:
    """An element's name without its namespace: 2.03 to 2.05 have none, later versions vary."""
    return str(tag).rpartition("}")[2]


def check_prolog(path: Path) -> None:
    """Refuses a file that declares a DTD or entities before its root element."""
    with path.open("rb") as f:
        head = f.read(_PROLOG_BYTES)
    if not head.strip():
        raise BadExchangeFile(f"{path.name} is empty")
    root = _ROOT_START.search(head)
    prolog = head if root is None else head[: root.start()]
    if _DECLARATION.search(prolog):
        raise BadExchangeFile(f"{path.name} declares a DTD or entities, which 1C never does")


def iter_ends(path: Path, *names: str) -> Iterator[etree._Element]:
    """The named elements, each once complete, in document order; each is cleared (with what
    came before it) once the caller moves on, so memory stays flat however big the file."""
    check_prolog(path)
    context = etree.iterparse(
        str(path),
        events=("end",),
        tag=[f"{{*}}{name}" for name in names],
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        checked = False
        for _, element in context:
            if not checked:
                check_declarations(path, element.getroottree())
                check_root(element.getroottree().getroot())
                checked = True
            yield element
            element.clear()
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
        if not checked and context.root is not None:
            check_declarations(path, context.root.getroottree())
        if not checked:
            check_root(context.root)
    except etree.XMLSyntaxError as exc:
        raise BadExchangeFile(f"{path.name} is not well-formed XML: {exc}") from exc


def check_declarations(path: Path, tree: etree._ElementTree) -> None:
    """The same refusal once parsing has begun, for a DTD the byte scan could not see (after a
    long comment, or in UTF-16): the parser has read it but resolved nothing."""
    info = tree.docinfo
    doctype = getattr(info, "doctype", "")  # missing from the type stubs
    if doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise BadExchangeFile(f"{path.name} declares a DTD or entities, which 1C never does")


def check_root(root: etree._Element | None) -> None:
    if root is None or local(root.tag) != ROOT:
        found = "nothing" if root is None else local(root.tag)
        raise BadExchangeFile(f"the root element is {found}, not {ROOT}")


def text_of(element: etree._Element, name: str) -> str | None:
    """The stripped text of the first child with that local name, or None."""
    for child in element:
        if local(child.tag) == name:
            value = (child.text or "").strip()
            return value or None
    return None


def child(element: etree._Element, name: str) -> etree._Element | None:
    for item in element:
        if local(item.tag) == name:
            return item
    return None


def children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    for item in element:
        if local(item.tag) == name:
            yield item


def attributes(element: etree._Element) -> dict[str, str]:
    """Attributes by local name (1C never namespaces them, but a converter might)."""
    return {local(k): str(v) for k, v in element.attrib.items()}


def properties(element: etree._Element) -> dict[str, str]:
    """ЗначенияРеквизитов/ЗначениеРеквизита as name -> value."""
    values = child(element, "ЗначенияРеквизитов")
    result: dict[str, str] = {}
    if values is None:
        return result
    for item in children(values, "ЗначениеРеквизита"):
        name = text_of(item, "Наименование")
        if name:
            result[name] = text_of(item, "Значение") or ""
    return result
