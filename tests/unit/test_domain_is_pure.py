"""The domain package imports only the standard library and itself: no I/O, no framework."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN_PACKAGE = "ordersync.domain"
DOMAIN_DIR = Path(__file__).resolve().parents[2] / "src" / "ordersync" / "domain"
DOMAIN_MODULES = sorted(DOMAIN_DIR.rglob("*.py"))


def _package_of(path: Path) -> list[str]:
    """The dotted package a module file belongs to, as parts (a package's __init__ is itself)."""
    relative = path.relative_to(DOMAIN_DIR).with_suffix("")
    parts = DOMAIN_PACKAGE.split(".") + list(relative.parts)
    return parts[:-1]  # drop the module name ("__init__" included)


def _is_inside_domain(module: str) -> bool:
    return module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + ".")


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def forbidden_imports(source: str, path: Path) -> list[str]:
    """Every import in `source` that is neither standard library nor inside the domain."""
    package = _package_of(path)
    bad: list[str] = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not (_is_stdlib(alias.name) or _is_inside_domain(alias.name)):
                    bad.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                target = node.module or ""
                if not (_is_stdlib(target) or _is_inside_domain(target)):
                    bad.append(f"line {node.lineno}: from {target} import ...")
            else:
                if node.level - 1 > len(package):
                    bad.append(f"line {node.lineno}: relative import beyond the top package")
                    continue
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if not _is_inside_domain(target):
                    dots = "." * node.level
                    bad.append(
                        f"line {node.lineno}: from {dots}{node.module or ''} import ... "
                        f"(resolves to {target})"
                    )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            bad.append(f"line {node.lineno}: __import__(...)")
    return bad


def test_the_domain_package_has_modules_to_check() -> None:
    names = {p.name for p in DOMAIN_MODULES}
    assert {"allocation.py", "quantities.py", "orders.py", "events.py", "errors.py"} <= names


@pytest.mark.parametrize(
    "path", DOMAIN_MODULES, ids=[str(p.relative_to(DOMAIN_DIR)) for p in DOMAIN_MODULES]
)
def test_each_domain_module_imports_only_the_standard_library_or_the_domain(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), path) == []


# The checker itself must be able to say no, or the test above proves nothing.

_SAMPLE = DOMAIN_DIR / "sample.py"


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy",
        "import os, pydantic",
        "from fastapi import FastAPI",
        "from ordersync.db import tables",
        "from ordersync import config",
        "from ..db import tables",
        "from .. import services",
        "import ordersync.domainx",
        "def f():\n    import httpx\n",
        "x = __import__('sqlalchemy')",
    ],
)
def test_the_checker_flags_imports_from_outside_the_standard_library_and_domain(
    source: str,
) -> None:
    assert forbidden_imports(source, _SAMPLE) != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import decimal",
        "from collections.abc import Mapping",
        "from .errors import InvalidRequest",
        "from . import types",
        "from ordersync.domain.types import Unit",
        "import ordersync.domain.errors",
    ],
)
def test_the_checker_accepts_the_standard_library_and_the_domain_itself(source: str) -> None:
    assert forbidden_imports(source, _SAMPLE) == []


def test_relative_imports_are_resolved_from_the_modules_own_package() -> None:
    # In a subpackage `ordersync/domain/sub/`, `..errors` is still inside the domain.
    nested = DOMAIN_DIR / "sub" / "mod.py"
    assert forbidden_imports("from ..errors import Conflict", nested) == []
    assert forbidden_imports("from ...db import tables", nested) != []
    # A package's __init__ belongs to the package itself.
    init = DOMAIN_DIR / "__init__.py"
    assert forbidden_imports("from .types import Unit", init) == []
    assert forbidden_imports("from ..db import x", init) != []
