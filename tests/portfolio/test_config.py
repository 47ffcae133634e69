"""`PortfolioConfig`: defaults, validation with clear errors, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

from pipeline.portfolio.config import PortfolioConfig
from tests.portfolio.strategies import configs


def test_defaults() -> None:
    cfg = PortfolioConfig()
    assert cfg.target_vol == 0.40
    assert cfg.markets is None and cfg.sleeves(5) == 5
    assert cfg.conviction and not cfg.neutral and not cfg.long_only
    assert (cfg.selection, cfg.threshold, cfg.top_k) == ("threshold", 0.0, 1)
    assert cfg.market_cap is None and cfg.cap_per_market(5) == pytest.approx(0.4)
    assert cfg.gross_cap is None and cfg.net_cap is None
    assert (cfg.band, cfg.min_hold) == (0.0, 0)


def test_market_cap_default_follows_the_sleeves() -> None:
    assert PortfolioConfig(markets=4).cap_per_market(10) == 0.5
    assert PortfolioConfig(market_cap=0.3).cap_per_market(10) == 0.3


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("target_vol", 0.0, "target_vol must be a finite number > 0"),
        ("target_vol", float("inf"), "target_vol"),
        ("target_vol", "0.4", "target_vol"),
        ("markets", 0, "markets must be an integer ≥ 1 or None"),
        ("markets", 2.5, "markets"),
        ("conviction", 1, "conviction must be true or false"),
        ("neutral", "yes", "neutral"),
        ("long_only", None, "long_only"),
        ("selection", "top", "selection must be one of all, threshold, top_k"),
        ("threshold", -0.1, "threshold must be a finite number ≥ 0"),
        ("threshold", float("nan"), "threshold"),
        ("top_k", 0, "top_k must be an integer ≥ 1"),
        ("top_k", True, "top_k"),
        ("market_cap", 0.0, "market_cap must be a finite number > 0 or None"),
        ("gross_cap", -1.0, "gross_cap"),
        ("net_cap", -0.01, "net_cap must be a finite number ≥ 0 or None"),
        ("band", -0.01, "band"),
        ("band", float("nan"), "band"),
        ("min_hold", -1, "min_hold must be an integer ≥ 0"),
        ("min_hold", 1.5, "min_hold"),
    ],
)
def test_bad_configs_raise_clearly(field: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        PortfolioConfig(**{field: value})


def test_edge_values_are_accepted() -> None:
    PortfolioConfig(net_cap=0.0, band=0.0, threshold=0.0, min_hold=0)


def test_numpy_scalars_are_stored_as_plain_numbers() -> None:
    cfg = PortfolioConfig(markets=np.int64(3), target_vol=np.float64(0.3), long_only=np.True_)
    assert type(cfg.markets) is int and type(cfg.target_vol) is float and cfg.long_only is True
    json.dumps(cfg.to_json())


@settings(max_examples=100, deadline=None, derandomize=True)
@given(configs)
def test_json_round_trip(cfg: PortfolioConfig) -> None:
    assert PortfolioConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_from_json_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    cfg = PortfolioConfig.from_json({"band": 0.02, "leverage": 3, "selection": "top_k"})
    assert cfg == PortfolioConfig(band=0.02, selection="top_k")
    assert PortfolioConfig.from_json({}) == PortfolioConfig()
    assert PortfolioConfig.from_json(None) == PortfolioConfig()


def test_from_json_validates() -> None:
    with pytest.raises(ValueError, match="top_k"):
        PortfolioConfig.from_json({"top_k": 0})
