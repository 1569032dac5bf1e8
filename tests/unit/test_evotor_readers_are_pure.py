"""The Evotor readers import only the standard library, the domain and each other: no HTTP,
no database, no framework (cloud.py, the REST client, is the one module that does I/O)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "src" / "ordersync" / "channels" / "evotor"
READERS = ("model", "documents", "receipts", "entities", "products", "account", "errors")
READERS += ("values", "wire")


def foreign_imports(source: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            bad += [
                a.name for a in node.names if a.name.split(".")[0] not in sys.stdlib_module_names
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] not in sys.stdlib_module_names:
                bad.append(module)
            elif node.level == 1 and module.split(".")[0] not in READERS:
                bad.append(f".{module}")
            elif node.level == 3 and not module.startswith("domain"):
                bad.append(f"...{module}")
            elif node.level not in (0, 1, 3):
                bad.append("." * node.level + module)
    return bad


@pytest.mark.parametrize("name", READERS)
def test_each_reader_module_imports_nothing_that_does_io(name: str) -> None:
    assert foreign_imports((PACKAGE_DIR / f"{name}.py").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import httpx",
        "from fastapi import FastAPI",
        "from .cloud import EvotorCloud",
        "from ...db import tables",
        "from .. import bitrix",
        "from sqlalchemy import select",
    ],
)
def test_the_checker_flags_what_would_make_a_reader_impure(source: str) -> None:
    assert foreign_imports(source) != []


@pytest.mark.parametrize(
    "source", ["import json", "from .values import Fields", "from ...domain.quantities import X"]
)
def test_the_checker_accepts_the_standard_library_the_domain_and_the_readers(source: str) -> None:
    assert foreign_imports(source) == []
