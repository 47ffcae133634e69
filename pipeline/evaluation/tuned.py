"""The tuned LSTM and its seed ensemble inside one walk-forward refit.

Per refit: the study searches the refit's training window (`pipeline.evaluation.
window_search`), its best parameters are frozen, and then, still on the training window
only, `ensemble` models with those parameters and seeds seed, seed + 1, … are fitted on the
refit's own train/validation split. The tuned single model is the first of them; the
ensemble decides from the mean of their probabilities, its operating point chosen on
validation like every other model's. Which is better on validation (one model, or the mean of
the first n) is recorded per refit: that, not a test figure, chooses the default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.evaluation.candidate import Candidate
from pipeline.evaluation.operating_choice import ChosenPoint, choose_operating_point
from pipeline.evaluation.search_space import SearchSpace
from pipeline.evaluation.tuning import StudySpec
from pipeline.evaluation.window_search import (
    WindowObjective,
    WindowSearch,
    known_candles,
    search_window,
)
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.model.contract import predict, segment_windows, window_scale
from pipeline.model.dataset import WindowSet
from pipeline.model.ensemble import DEFAULT_ENSEMBLE, member_mean, member_seeds
from pipeline.store.studies import study_database_url
from pipeline.store.trials import config_hash

TUNED_MODELS = ("lstm_tuned", "lstm_ensemble")
ENSEMBLE_SIZES = (1, 3, 5, 10)


@dataclass(frozen=True)
class TuningConfig:
    budget: int = 24  # trials per refit (about 6 s each on 5 markets, 2 cores)
    workers: int = 1
    seed: int = 0  # the sampler's
    inner_folds: int = 2
    # Seeds in the ensemble: 3, the size the validation preferred over the 2022–2023 refits
    # (`summary.ensemble_line`; issue 11's note). The test run measured 5, fixed before it.
    ensemble: int = DEFAULT_ENSEMBLE
    space: SearchSpace = field(default_factory=SearchSpace)
    study_prefix: str = "wf"  # a new prefix starts new studies; the same one resumes them

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise ValueError(f"an ensemble needs at least one model, got {self.ensemble}")


def data_fingerprint(candles: dict[str, pd.DataFrame]) -> str:
    """SHA-256 of the candles a search reads: a study is resumed only on the same data."""
    digest = hashlib.sha256()
    for market in sorted(candles):
        frame = candles[market]
        digest.update(market.encode())
        for column in ("timestamp", "open", "high", "low", "close", "volume"):
            digest.update(np.ascontiguousarray(frame[column].to_numpy()).tobytes())
    return digest.hexdigest()


def study_name(prefix: str, search: WindowSearch, known: dict[str, pd.DataFrame]) -> str:
    """Deterministic: the same search on the same candles resumes its study."""
    key = config_hash({"search": search.to_json(), "data": data_fingerprint(known)})
    return f"{prefix}-{search.fit_end[:10]}-{key[:12]}"


def _mean_point(
    members: list[Candidate], candles: dict[str, pd.DataFrame], search: WindowSearch, params
) -> ChosenPoint:
    """The operating point of the members' mean probability, chosen on their validation
    segment (the same windows for every member) as a single model's is."""
    first = members[0]
    return choose_operating_point(
        candles,
        replace(first.segment, p_up=member_mean([m.segment.p_up for m in members])),
        first.edge,
        search.costs.exiting_by(params.label(search.label), search.timeframe),
        params.operating(search.operating),
    )


def _ensemble_choice(
    members: list[Candidate], candles: dict[str, pd.DataFrame], search: WindowSearch, params
) -> tuple[dict[int, dict[str, float]], int]:
    """Validation Sharpe at the operating point of one model and of the mean of the first n
    members, for each n in `ENSEMBLE_SIZES` up to the ensemble; and the size with the best
    one (ties: fewer). One model's figure is the median over the members, each at its own
    operating point: the first member's alone would be biased upward, since the study chose
    the parameters on its very validation figures."""
    singles = [m.chosen_option for m in members]
    figures: dict[int, dict[str, float]] = {
        1: {
            "trades": int(np.median([o["trades"] for o in singles])),
            "sharpe": float(np.median([o["sharpe"] for o in singles])),
            "total_return": float(np.median([o["total_return"] for o in singles])),
            "enough_trades": all(o["trades"] >= search.operating.min_trades for o in singles),
        }
    }
    for n in [n for n in ENSEMBLE_SIZES if 1 < n <= len(members)]:
        chosen = _mean_point(members[:n], candles, search, params)
        row = chosen.table[chosen.table["chosen"]].iloc[0]
        figures[n] = {
            "trades": int(row["trades"]),
            "sharpe": float(row["sharpe"]),
            "total_return": float(row["total_return"]),
            "enough_trades": chosen.enough_trades,
        }
    eligible = {n: f["sharpe"] for n, f in figures.items() if f["enough_trades"]}
    best = max(eligible, key=lambda n: (eligible[n], -n)) if eligible else 1
    return figures, best


def ensemble_probabilities(
    members: list[Candidate], windows: WindowSet
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each member's P(up) on `windows` (one window at a time, as live decides) and the
    ensemble's, their mean: what a stored ensemble of these networks decides, bit for bit."""
    p_members = [predict(m.result.model(), m.scaler, windows) for m in members]
    return p_members, member_mean(p_members)


def tune_fold(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    search: WindowSearch,
    tuning: TuningConfig,
    server_url: str,
    test_start: pd.Timestamp,
    test_end: pd.Timestamp,
    test_markets: tuple[str, ...],
    log: Callable[[str], None],
) -> tuple[dict[str, object], pd.DataFrame, tuple[int, int, float | None]]:
    """Search, freeze, fit the ensemble; return the refit's record, the tuned models' test
    decisions (market, timestamp, label, P(up) and side per tuned model and per member) and
    the exit rule its decisions use (from the test start)."""
    known = known_candles(candles, search.markets, search.fit_end)
    name = study_name(tuning.study_prefix, search, known)
    objective = WindowObjective(search, known, ledger_url=server_url, study=name, log=log)
    spec = StudySpec(name, study_database_url(server_url), tuning.budget, tuning.seed)
    found = search_window(objective, spec, tuning.workers)
    params = found.params
    log(f"study {name}: best trial validation Sharpe {found.value:+.2f} with {params}")
    train_end, fit_end = search.inner_plans()[-1]  # the refit's own train/validation split
    members = [
        objective.fit(params, train_end, fit_end, seed=seed)
        for seed in member_seeds(search.train.seed, tuning.ensemble)
    ]
    sizes, preferred = _ensemble_choice(members, known, search, params)
    log(f"ensemble on validation: {sizes}; preferred size {preferred}")
    rule: LabelRule = params.label(search.label)
    data = attach_labels(features, candles, search.timeframe, rule)
    test = segment_windows(
        data,
        list(search.selected),
        params.window,
        search.timeframe,
        test_start,
        test_end,
        markets=test_markets,
    )
    scale = window_scale(data, test)
    p_members, p_mean = ensemble_probabilities(members, test)
    first = members[0]
    ensemble_point = _mean_point(members, known, search, params).point
    decisions = pd.DataFrame(
        {
            "market": test.market,
            "timestamp": test.timestamp,
            "label_tuned": test.y,
            "p_lstm_tuned": p_members[0],
            "side_lstm_tuned": first.operating.sides(p_members[0], scale),
            "p_lstm_ensemble": p_mean,
            "side_lstm_ensemble": ensemble_point.sides(p_mean, scale),
            **{
                f"side_tuned_seed{m.result.seed}": m.operating.sides(p, scale)
                for m, p in zip(members, p_members, strict=True)
            },
        }
    )
    record = {
        "study": name,
        "best_value": found.value,
        "params": params.to_json(),
        "n_parameters": first.result.n_parameters,
        "label": rule.to_json(),
        "trials": found.trials.to_dict("records"),
        "ran_per_worker": found.ran,
        "members": [
            {
                "seed": m.result.seed,
                "best_epoch": m.result.best_epoch,
                "gap": float(m.result.best["gap"]),
                "validation": m.chosen_option,
                "point": m.operating.to_json(),
            }
            for m in members
        ],
        "ensemble_point": ensemble_point.to_json(),
        "ensemble_validation": sizes,
        "ensemble_preferred": preferred,
    }
    since = int(test_start.value // 1_000_000)
    return record, decisions, (since, rule.horizon, rule.barrier_k)
