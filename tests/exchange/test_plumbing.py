"""`pipeline.exchange`: the client every ccxt user builds, and the rooms' import rules
(exchange below data and execution; the emulator beside them, never imported by data)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from pipeline.exchange.client import SUPPORTED_EXCHANGES, make_exchange
from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.settings import Settings

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def test_default_exchange_is_the_settings_default() -> None:
    assert DEFAULT_EXCHANGE in SUPPORTED_EXCHANGES
    assert Settings().exchange == Settings.from_env({}).exchange == DEFAULT_EXCHANGE


def test_make_exchange_points_every_api_url_at_the_host_and_holds_keys() -> None:
    exchange = make_exchange(api_url="http://127.0.0.1:9/", api_key="k", secret="s")
    urls = [u for u in _strings(exchange.urls["api"]) if "://" in u]
    assert urls and all(u.startswith("http://127.0.0.1:9/") for u in urls)
    assert (exchange.id, exchange.apiKey, exchange.secret) == (DEFAULT_EXCHANGE, "k", "s")
    assert not make_exchange().apiKey


def test_make_exchange_refuses_an_unsupported_exchange() -> None:
    with pytest.raises(ValueError, match="unsupported exchange 'kraken'"):
        make_exchange("kraken")


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _imports(package: str) -> set[str]:
    """Every module the package's files import (absolute names; relative ones resolved)."""
    found = set()
    for path in (PIPELINE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module if not node.level else f"pipeline.{package}.{node.module}")
    return found


def test_exchange_imports_only_the_standard_library_ccxt_and_itself() -> None:
    for module in _imports("exchange"):
        top = module.split(".")[0]
        assert (
            top in sys.stdlib_module_names
            or top in ("ccxt", "__future__")
            or module.startswith("pipeline.exchange")
        ), module


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("data", ("pipeline.replay", "pipeline.execution", "dagster")),
        # ccxt plumbing comes from pipeline.exchange, not from the candle source
        ("execution", ("pipeline.replay", "pipeline.data.ccxt_source", "dagster")),
        ("replay", ("pipeline.execution", "dagster")),
    ],
)
def test_packages_keep_to_their_layer(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(m for m in _imports(package) if m.startswith(forbidden))
    assert not wrong, f"pipeline/{package} imports {wrong}"
