"""The market factor's basket is the model's: other markets loaded beside it change nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.candidate import CandidateConfig, fit_candidate
from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features, market_factor_frame
from pipeline.features.cross_market import CROSS_NAMES
from pipeline.features.labels import LabelRule
from pipeline.features.registry import feature_names, warmups
from pipeline.model.training import TrainConfig

START, END = 1609459200000, 1640995200000  # 2021
FITTED = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
OTHERS = ["SOL/USDT:USDT", "XRP/USDT:USDT"]


@pytest.fixture(scope="module")
def candles(sample_frames) -> dict[str, pd.DataFrame]:
    return {
        symbol_from_id(m): f[(f["timestamp"] >= START) & (f["timestamp"] < END)].reset_index(
            drop=True
        )
        for m, f in sample_frames.items()
    }


@pytest.fixture(scope="module")
def alone(candles) -> pd.DataFrame:
    return compute_features({m: candles[m] for m in FITTED}, "1h", basket=FITTED)


@pytest.fixture(scope="module")
def beside(candles) -> pd.DataFrame:
    """The fitted markets with two others loaded before and between them."""
    loaded = {m: candles[m] for m in (OTHERS[0], FITTED[1], OTHERS[1], FITTED[0])}
    return compute_features(loaded, "1h", basket=FITTED)


def _rows(frame: pd.DataFrame, markets: list[str]) -> pd.DataFrame:
    rows = frame[frame["market"].isin(markets)]
    return rows.sort_values(["market", "timestamp"], kind="stable").reset_index(drop=True)


def test_other_markets_loaded_change_no_feature_of_the_fitted_ones(alone, beside) -> None:
    a, b = _rows(alone, FITTED), _rows(beside, FITTED)
    assert len(a) == len(b) > 8000
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # bit for bit, NaN where NaN


def test_without_the_basket_the_others_would_move_the_factor(candles, alone) -> None:
    """The old behaviour (factor over everything loaded), so the test above can fail."""
    everything = _rows(compute_features(candles, "1h"), FITTED)
    a = _rows(alone, FITTED)
    moved = ~np.isclose(everything["mkt_ret_1"], a["mkt_ret_1"], rtol=0, atol=1e-15)
    assert moved.mean() > 0.9
    same = [n for n in feature_names() if n not in CROSS_NAMES]
    pd.testing.assert_frame_equal(everything[same], a[same], check_exact=True)


def test_markets_outside_the_basket_are_featured_against_it(candles, beside) -> None:
    """SOL's factor columns are the basket's factor, not a factor that includes SOL."""
    factor = market_factor_frame(candles, "1h", basket=FITTED)
    sol = beside[beside["market"] == OTHERS[0]].reset_index(drop=True)
    ts = candles[OTHERS[0]]["timestamp"].to_numpy()
    by_time = factor.set_index("timestamp")["factor"].reindex(ts).to_numpy()
    assert np.array_equal(sol["mkt_ret_1"].to_numpy(), by_time, equal_nan=True)
    # by hand at one hour: the mean of BTC's and ETH's log returns
    t = int(ts[500])
    hand = np.mean(
        [
            np.log(
                candles[m].set_index("timestamp")["close"][t]
                / candles[m].set_index("timestamp")["close"][t - 3_600_000]
            )
            for m in FITTED
        ]
    )
    assert sol["mkt_ret_1"].iloc[500] == pytest.approx(hand, rel=1e-12)


def test_the_order_markets_come_in_does_not_matter(candles) -> None:
    forward = market_factor_frame(candles, "1h")
    backward = market_factor_frame(dict(reversed(list(candles.items()))), "1h")
    pd.testing.assert_frame_equal(forward, backward, check_exact=True)


def test_a_basket_market_without_candles_is_an_error(candles) -> None:
    with pytest.raises(ValueError, match=r"needs candles of SOL/USDT:USDT; loaded: BTC"):
        compute_features({m: candles[m] for m in FITTED}, "1h", basket=[*FITTED, OTHERS[0]])
    with pytest.raises(ValueError, match="empty"):
        market_factor_frame(candles, "1h", basket=[])
    with pytest.raises(TypeError, match="sequence"):
        market_factor_frame(candles, "1h", basket=FITTED[0])


def test_a_fit_is_identical_whatever_else_is_loaded(candles, alone, beside) -> None:
    """The issue's symptom: with markets under test loaded, the same fit used to differ."""
    names = [n for n in feature_names() if warmups("1h")[n] <= 200][:12] + list(CROSS_NAMES)
    cfg = CandidateConfig(
        train_start="2021-01-15",
        train_end="2021-09-30",
        val_end="2021-12-31",
        label=LabelRule(horizon=1),
        train=TrainConfig(window=8, hidden=8, max_epochs=2, train_eval_max=2000),
    )
    fits = []
    for frame in (alone, beside):
        fits.append(fit_candidate(_rows(frame, FITTED), candles, names, cfg))
    a, b = fits
    assert a.markets == b.markets == FITTED
    assert a.record().config["factor_basket"] == FITTED
    for ea, eb in zip(a.result.epochs, b.result.epochs, strict=True):
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert ea[key] == eb[key]
    assert a.record().checkpoint == b.record().checkpoint
