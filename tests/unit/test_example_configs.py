"""The two example configurations: the demo `make run` uses, and the production example that
documents every setting. Both load; every field of Settings (nested tables, store and sink
fields included) appears in the production example, set or as a commented `# key =` line;
only the demo seeds demo data."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ordersync.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "ordersync.example.toml"
PRODUCTION = ROOT / "ordersync.production.toml"

# `[table]` or `[[table]]`, commented or not; `key =`, commented or not.
_TABLE = re.compile(r"^\s*#?\s*\[+\s*([A-Za-z0-9_.\"-]+?)\s*\]+")
_KEY = re.compile(r"^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
# Secrets are shown commented with a placeholder that is not a valid value.
_SECRET = re.compile(r"password_hash|secret_key")


def expected_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field as a dotted path; a dict of models (stores, sinks) is `<field>.*`."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        if _is_model(annotation):
            paths |= expected_paths(annotation, f"{path}.")
        elif typing.get_origin(annotation) is dict and _is_model(typing.get_args(annotation)[1]):
            paths |= expected_paths(typing.get_args(annotation)[1], f"{path}.*.")
        else:
            paths.add(path)
    return paths


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def documented_paths(text: str) -> set[str]:
    """Dotted paths of the keys and tables the file writes, commented or not; the names of
    stores and sinks become `*`."""
    found: set[str] = set()
    table: list[str] = []
    for line in text.splitlines():
        if match := _TABLE.match(line):
            table = _generic(match.group(1).replace('"', "").split("."))
            found.add(".".join(table))
        elif match := _KEY.match(line):
            found.add(".".join([*table, match.group(1)]))
    return found


def _generic(parts: list[str]) -> list[str]:
    if len(parts) >= 2 and parts[0] in ("stores", "sinks"):
        return [parts[0], "*", *parts[2:]]
    return parts


def test_every_setting_is_documented_in_the_production_example() -> None:
    missing = expected_paths(Settings) - documented_paths(PRODUCTION.read_text())
    assert missing == set(), f"add these to {PRODUCTION.name}: {sorted(missing)}"


def test_the_path_walk_sees_nested_store_and_sink_fields() -> None:
    paths = expected_paths(Settings)
    assert {"relay.lease_seconds", "exchange.max_unpacked_bytes", "sinks.*.timeout_seconds",
            "sinks.*.iblock_id", "stores.*.pos_mode", "holds.pos"} <= paths  # fmt: skip
    assert "sinks.*.timeout_seconds" not in documented_paths("[sinks.erp]\nurl = 1\n")


@pytest.mark.parametrize("example", [DEMO, PRODUCTION], ids=lambda p: p.name)
def test_the_examples_load(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ORDERSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORDERSYNC_CONFIG", str(example))
    assert isinstance(load_settings(), Settings)
    tomllib.loads(example.read_text())


def test_only_the_demo_seeds_demo_data() -> None:
    assert tomllib.loads(DEMO.read_text())["seed_demo"] is True
    assert tomllib.loads(PRODUCTION.read_text())["seed_demo"] is False
    assert "THE DEMO" in DEMO.read_text()


def test_commented_sink_and_store_examples_are_valid_settings_when_uncommented() -> None:
    """The production example's commented tables, uncommented, load as Settings: what a
    reader copies from them works."""
    lines = []
    for line in PRODUCTION.read_text().splitlines():
        stripped = line.lstrip()
        if re.match(r"#\s*(\[|[A-Za-z_]+\s*=)", stripped) and not _SECRET.search(stripped):
            line = stripped[1:].lstrip()
        lines.append(line)
    document = tomllib.loads("\n".join(lines))
    loaded = Settings(**document)
    assert set(loaded.sinks) == {"erp", "accounting", "bus", "site"}
    assert loaded.stores["WH1"].serves_online is True
