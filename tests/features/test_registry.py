"""The registry: 79 unique features in family order, parameters usable as JSON."""

from __future__ import annotations

import copy
import json
import pickle
from collections import Counter

import pytest

from pipeline.features.compute import compute_market_features
from pipeline.features.registry import (
    FAMILY_COUNTS,
    REGISTRY,
    feature_names,
    htf_base_warmup,
    warmups,
)


def test_79_unique_names_in_family_blocks():
    names = feature_names()
    assert len(names) == 79 and len(set(names)) == 79
    assert Counter(s.family for s in REGISTRY) == FAMILY_COUNTS
    assert FAMILY_COUNTS == {
        "returns": 7, "volatility": 8, "momentum": 14, "trend": 10, "bands": 6,
        "volume": 10, "candle": 5, "calendar": 4, "higher": 10, "cross": 5,
    }  # fmt: skip
    # Families come in contiguous blocks, in the table's order.
    order = [s.family for s in REGISTRY]
    blocks = [f for i, f in enumerate(order) if i == 0 or order[i - 1] != f]
    assert blocks == list(FAMILY_COUNTS)
    assert all(n == n.lower() and " " not in n for n in names)


def test_timeframes_and_warmups():
    assert {s.timeframe for s in REGISTRY} == {"base", "4h", "1d", "cross"}
    assert all(isinstance(s.warmup, int) and s.warmup >= 0 for s in REGISTRY)
    by = {s.name: s for s in REGISTRY}
    assert by["ret_48"].warmup == 48 and by["rv_168"].warmup == 168
    assert by["logvol_rel_median_30d"].warmup == 719
    assert warmups("4h")["logvol_rel_median_30d"] == 179
    # A 1d value defined from its candle w: worst case (w + 2) * 24 - 2 hours in.
    assert by["htf_1d_ret"].warmup == htf_base_warmup(1, 86_400_000, 3_600_000) == 70
    assert warmups("1d")["htf_4h_ret"] == 1  # served by the 1d candles themselves
    # Recursive features carry a settling allowance beyond TA-Lib's lookback.
    assert by["rsi_14"].warmup > 14 and by["close_ema_200"].warmup > 199


def test_params_are_json_hashable_and_read_only():
    text = json.dumps([{"name": s.name, "params": s.params} for s in REGISTRY])
    assert json.loads(text)[0]["params"]["candles"] == 1
    assert len({hash(s) for s in REGISTRY}) == 79
    spec = REGISTRY[0]
    with pytest.raises(TypeError):
        spec.params["candles"] = 2
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec


def test_output_columns_follow_the_registry(sample_frames):
    base = sample_frames["BTCUSDT"].iloc[:300]
    out = compute_market_features(base, "1h", {}, {"BTC/USDT:USDT": base})
    assert list(out.columns) == ["timestamp", *feature_names()]
    assert out["timestamp"].dtype == "int64"
    assert (out.dtypes.iloc[1:] == "float64").all()
