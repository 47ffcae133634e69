"""A small live set-up on the sample data: candles seeded up to a start, a replay exchange
serving a little beyond it, and a seeded random-weight model promoted to production.

The model's weights are random (training is not what these tests are about); its threshold
is the median confidence over the seeded history, so about half the candles trade, with
longs, shorts, reversals and flats all exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tests.helpers.folders import write_folder

HOUR = 3_600_000
HISTORY_START = 1_603_411_200_000  # 2020-10-23T00:00Z, the sample's first candle
LIVE_START = 1_610_236_800_000  # 2021-01-10T00:00Z: ~1,900 hours of history before it
WINDOW = 8


@dataclass
class LiveSetup:
    folder: Path  # what the replay exchange serves (history + the live period + 2 h)
    symbols: list[str]
    model_id: int
    threshold: float
    features: list[str]


def live_folder(root: Path, frames: dict[str, pd.DataFrame], live_candles: int) -> Path:
    end = LIVE_START + (live_candles + 2) * HOUR
    return write_folder(
        root / "replay",
        {m: f[(f["timestamp"] < end)].reset_index(drop=True) for m, f in frames.items()},
    )


def quick_features(max_warmup: int = 800) -> list[str]:
    """Features defined within `max_warmup` hours (the slow daily MACD is left out)."""
    from pipeline.features.registry import feature_names, warmups

    limits = warmups("1h")
    return [n for n in feature_names() if limits[n] <= max_warmup][:24]


# The window the random model's scaler was fitted on, recorded as its training window (the
# drift check's reference): the seeded history after the slowest quick feature warmed up.
TRAIN_FIRST = HISTORY_START + 800 * HOUR
TRAIN_LAST = LIVE_START - 2 * 168 * HOUR


def install_random_model(
    db,
    symbols: list[str],
    timeframes: list[str],
    seed: int = 7,
    label: dict | None = None,
    *,
    promote: bool = True,
    checks: dict | None = None,
    exchange: str = "binanceusdm",
    members: int = 1,
):
    """Seeded random LSTM with a scaler fitted on the seeded history; promoted unless
    `promote` is false (a candidate, which decides in shadow when none of its ERROR
    `checks` failed: by default its checks are recorded as passed). `label`: a stored label
    rule (a barrier model); by default the model exits by time after 1 candle. The history
    is read as stored under `exchange`. `members` > 1: an ensemble record of that many
    networks, seeds seed, seed + 1, …"""
    from pipeline.model.checkpoint import checkpoint_bytes
    from pipeline.model.contract import MODEL_NAME, probabilities
    from pipeline.model.ensemble import Ensemble, member_seeds
    from pipeline.model.lstm import LSTMClassifier
    from pipeline.model.scaler import Scaler
    from pipeline.signals.candle import live_features, load_inputs
    from pipeline.store.models import MemberCheckpoint, ModelRecord, save_model
    from pipeline.trading_replay import install_model

    names = quick_features()
    with db.connection() as conn:
        inputs = load_inputs(
            conn, exchange, symbols[0], "1h", symbols, timeframes, LIVE_START - HOUR
        )
    frame = live_features(inputs, "1h")
    rows = frame[names].to_numpy(dtype=np.float32)
    rows = rows[np.isfinite(rows).all(axis=1)]
    scaler = Scaler.fit_rows(rows, tuple(names))
    seeds = member_seeds(seed, members)
    networks = []
    for s in seeds:
        torch.manual_seed(s)
        networks.append(LSTMClassifier(len(names), hidden=16, layers=1, dropout=0.0).eval())
    network = networks[0] if members == 1 else Ensemble(tuple(networks), tuple(seeds))
    scaled = scaler.transform(rows)
    windows = np.lib.stride_tricks.sliding_window_view(scaled, (WINDOW, len(names)))[:, 0][-300:]
    p_up = probabilities(network, np.ascontiguousarray(windows))
    threshold = float(np.median(np.maximum(p_up, 1 - p_up)))
    record = ModelRecord(
        name=MODEL_NAME,
        timeframe="1h",
        config={
            "hidden": 16,
            "layers": 1,
            "dropout": 0.0,
            "window": WINDOW,
            "threshold": threshold,
            "horizon": 1,
            **({"label": label} if label else {}),
        },
        features=names,
        scaler=scaler.to_dict(),
        data_window={
            "markets": symbols,
            "train": {
                "first_decision": pd.Timestamp(TRAIN_FIRST, unit="ms", tz="UTC").isoformat(),
                "last_decision": pd.Timestamp(TRAIN_LAST, unit="ms", tz="UTC").isoformat(),
            },
        },
        metrics={
            "val_ece": 0.05,
            "checks": checks
            if checks is not None
            else {
                "lstm_model_gap_within_bound": {"passed": True, "severity": "ERROR"},
                "lstm_model_beats_majority": {"passed": True, "severity": "WARN"},
            },
        },
        seed=seed,
        checkpoint=checkpoint_bytes(networks[0].state_dict()) if members == 1 else b"",
        members=[]
        if members == 1
        else [
            MemberCheckpoint(s, checkpoint_bytes(n.state_dict()))
            for s, n in zip(seeds, networks, strict=True)
        ],
    )
    if not promote:
        with db.connection() as conn:
            return save_model(conn, record), threshold, names
    model_id = install_model(db, record, {"reason": "test: random weights"})
    return model_id, threshold, names
