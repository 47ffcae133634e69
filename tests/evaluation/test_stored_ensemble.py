"""The stored ensemble is the evaluation's: on the same candles, `lstm_model`'s way of fitting
(`fit_candidate` with `ensemble`, the study's parameters applied by `with_study`) and the
walk-forward's (one `WindowObjective.fit` per seed, mean by `ensemble_probabilities`, point by
`_mean_point`) give the same networks, the same operating point and, after the model store's
round trip, the same P(up) bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assets.modeling import with_study
from pipeline.evaluation.candidate import CandidateConfig, fit_candidate
from pipeline.evaluation.operating_choice import OperatingChoice
from pipeline.evaluation.search_space import TrialParams
from pipeline.evaluation.tuned import _mean_point, ensemble_probabilities
from pipeline.evaluation.window_search import WindowObjective, WindowSearch
from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features
from pipeline.features.cross_market import CROSS_NAMES
from pipeline.features.labels import attach_labels
from pipeline.features.registry import feature_names, warmups
from pipeline.model.config import TrainConfig
from pipeline.model.contract import (
    load_for_inference,
    probabilities,
    segment_windows,
    window_scale,
)
from pipeline.model.ensemble import Ensemble, member_seeds
from pipeline.store import models as model_store

START, END = 1609459200000, 1621036800000  # 2021-01-01 … 2021-05-15
MARKETS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
SEED, SIZE = 3, 2
PARAMS = TrialParams(
    window=8,
    hidden=8,
    dropout=0.1,
    lr=3e-3,
    weight_decay=1e-5,
    horizon=6,
    barrier_k=1.0,
    coverage=0.3,
)


@pytest.fixture(scope="module")
def candles(sample_frames) -> dict[str, pd.DataFrame]:
    return {
        symbol_from_id(m): f[(f["timestamp"] >= START) & (f["timestamp"] < END)].reset_index(
            drop=True
        )
        for m, f in sample_frames.items()
        if symbol_from_id(m) in MARKETS
    }


@pytest.fixture(scope="module")
def fitted(candles):
    names = [n for n in feature_names() if warmups("1h")[n] <= 200][:10] + list(CROSS_NAMES)
    search = WindowSearch(
        markets=MARKETS,
        fit_start="2021-01-20",
        fit_end="2021-04-30",
        selected=tuple(names),
        train=TrainConfig(max_epochs=2, train_eval_max=2000, seed=SEED),
        operating=OperatingChoice(min_trades=5),
    )
    # The evaluation: one fit per seed on the refit's own split, as tune_fold does.
    objective = WindowObjective(search, candles)
    train_end, fit_end = search.inner_plans()[-1]
    members = [objective.fit(PARAMS, train_end, fit_end, seed=s) for s in member_seeds(SEED, SIZE)]
    # lstm_model: the run's settings, the study's best parameters applied, SIZE networks.
    cfg = with_study(
        CandidateConfig(
            train_start=search.fit_start,
            train_end=train_end.isoformat(),
            val_end=fit_end.isoformat(),
            label=search.label,
            operating=search.operating,
            train=search.train,
            ensemble=SIZE,
        ),
        PARAMS,
    )
    candidate = fit_candidate(objective.features(), objective.candles, names, cfg)
    return search, objective, members, candidate, names


def test_the_stored_ensemble_decides_as_the_evaluations_bit_for_bit(fitted, candles, db) -> None:
    search, objective, members, candidate, names = fitted
    record = candidate.record()
    assert record.seeds == [SEED, SEED + 1] and record.checkpoint == b""
    assert record.config["ensemble"] == {"size": SIZE, "seeds": [SEED, SEED + 1]}
    with db.connection() as conn:
        stored = model_store.load_model(conn, model_store.save_model(conn, record))
    loaded = load_for_inference(stored, feature_names())
    assert isinstance(loaded.network, Ensemble) and loaded.network.seeds == (SEED, SEED + 1)

    # After the validation period: windows neither fit has seen, on the full candles.
    features = compute_features(candles, "1h", basket=list(MARKETS))
    data = attach_labels(features, candles, "1h", loaded.label)
    test = segment_windows(
        data,
        names,
        loaded.window,
        "1h",
        pd.Timestamp("2021-05-03", tz="UTC"),
        pd.Timestamp("2021-05-13", tz="UTC"),
    )
    assert len(test) > 400
    p_members, p_mean = ensemble_probabilities(members, test)
    got = loaded.predict(test)
    assert np.array_equal(got, p_mean)
    scaled = loaded.scaler.apply(test).X
    for network, p in zip(loaded.network.members, p_members, strict=True):
        assert np.array_equal(probabilities(network, scaled, batch_size=1), p)
    assert not np.array_equal(p_members[0], p_members[1])  # two seeds, two networks
    assert not np.array_equal(got, p_members[0])  # the mean, not the first member

    # The operating point: the one the evaluation chose for the mean on validation.
    chosen = _mean_point(members, objective.candles, search, PARAMS).point
    assert loaded.operating.to_json() == chosen.to_json()
    p_side, side = loaded.decide(data, test)
    assert np.array_equal(p_side, p_mean)
    assert np.array_equal(side, chosen.sides(p_mean, window_scale(data, test)))


def test_the_record_keeps_every_member_and_judges_the_widest_gap(fitted) -> None:
    _, _, members, candidate, _ = fitted
    record = candidate.record()
    gaps = [float(m.result.best["gap"]) for m in members]
    assert record.metrics["gap"] == max(gaps)
    assert [m["seed"] for m in record.metrics["members"]] == [SEED, SEED + 1]
    assert [m["gap"] for m in record.metrics["members"]] == gaps
    # The candidate's validation figures are the mean's (what decides), not one member's.
    assert candidate.val_p_up is not None
    assert np.array_equal(
        candidate.segment.p_up, np.mean([m.segment.p_up for m in members], axis=0)
    )
