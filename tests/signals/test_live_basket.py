"""Live features are computed against the model's recorded basket, not the markets traded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features
from pipeline.features.registry import feature_names
from pipeline.signals.candle import factor_basket, live_features, load_inputs
from pipeline.store import candles as candle_store
from pipeline.store.models import ModelRecord

START, END = 1609459200000, 1612137600000  # January 2021
BASKET = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
SOL = "SOL/USDT:USDT"


def record(config: dict, data_window: dict) -> ModelRecord:
    return ModelRecord("lstm", "1h", config, [], {}, data_window, {}, 0)


def test_the_basket_comes_from_the_record_or_its_fitted_markets() -> None:
    assert factor_basket(record({"factor_basket": BASKET[::-1]}, {"markets": [SOL]})) == BASKET
    assert factor_basket(record({}, {"markets": [BASKET[1], BASKET[0]]})) == BASKET  # older
    with pytest.raises(ValueError, match="neither a factor basket"):
        factor_basket(record({}, {}))


@pytest.fixture()
def stored(db, sample_frames) -> dict[str, pd.DataFrame]:
    """BTC, ETH and SOL hours of January 2021 in the store."""
    frames = {}
    with db.connection() as conn:
        for market in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            frame = sample_frames[market]
            frame = frame[(frame["timestamp"] >= START) & (frame["timestamp"] < END)]
            frames[symbol_from_id(market)] = frame.reset_index(drop=True)
            candle_store.upsert_candles(
                conn, "binanceusdm", symbol_from_id(market), "1h", frames[symbol_from_id(market)]
            )
    return frames


def test_live_features_of_a_market_outside_the_basket_use_the_records_basket(db, stored) -> None:
    """SOL is traded but the model was fitted on BTC and ETH: SOL's live factor columns are
    BTC and ETH's factor, exactly as the evaluation computes them for an unseen market."""
    basket = factor_basket(record({"factor_basket": BASKET}, {"markets": BASKET}))
    until = END - 3_600_000
    with db.connection() as conn:
        inputs = load_inputs(conn, "binanceusdm", SOL, "1h", basket, ["1h"], until)
    assert sorted(inputs.basket) == BASKET  # SOL's candles are read as its own, not the factor's
    assert len(inputs.base) == len(stored[SOL])
    live = live_features(inputs, "1h")
    evaluated = compute_features(stored, "1h", basket=BASKET)
    sol = evaluated[evaluated["market"] == SOL]
    assert np.array_equal(
        live[feature_names()].to_numpy(), sol[feature_names()].to_numpy(), equal_nan=True
    )
    # and not what a basket with SOL in it gives
    widened = compute_features(stored, "1h")
    widened_sol = widened[widened["market"] == SOL]["mkt_ret_1"].to_numpy()
    assert not np.allclose(live["mkt_ret_1"].to_numpy()[1:], widened_sol[1:], equal_nan=True)
