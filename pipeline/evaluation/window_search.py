"""The model search inside one training window: Optuna's objective, and the frozen result.

A trial's value is the mean validation net Sharpe, at its operating point, over inner
chronological folds of the training window: fold j trains on the window's start up to its
validation block (the embargo between them, as every split here has) and validates on that
block; the blocks are the last `inner_folds` × `validation_share` of the window. Only candles
up to the window's end are ever read: the objective cuts them itself, so a caller cannot
hand it the future. Feature selection is the refit's (fixed before the search); the label
rule, the model and the coverage are the trial's.

The median pruner may stop a trial after an inner fold; a trial whose operating point makes
fewer than `min_trades` validation trades says nothing and is pruned. Every trial, pruned or
not, is appended to the trials ledger (kind `tuning`) when a ledger is given, so the deflated
Sharpe of any later test figure counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.data.timeframes import timeframe_ms
from pipeline.evaluation.candidate import Candidate, CandidateConfig, fit_candidate
from pipeline.evaluation.operating_choice import OperatingChoice
from pipeline.evaluation.search_space import SearchSpace, TrialParams, suggest
from pipeline.evaluation.tuning import StudySpec, open_study, run_workers
from pipeline.features.compute import compute_features
from pipeline.features.labels import LabelRule
from pipeline.model.config import TrainConfig

if TYPE_CHECKING:
    import optuna

TUNING_KIND = "tuning"


@dataclass(frozen=True)
class WindowSearch:
    """Everything a trial needs besides the candles: picklable, so spawned workers (or
    another machine given the same arguments) rebuild the same objective."""

    markets: tuple[str, ...]
    fit_start: str  # ISO UTC: the training window
    fit_end: str
    selected: tuple[str, ...]
    timeframe: str = "1h"
    train: TrainConfig = field(default_factory=TrainConfig)
    label: LabelRule = field(default_factory=LabelRule)
    operating: OperatingChoice = field(default_factory=OperatingChoice)
    costs: BacktestConfig = field(default_factory=BacktestConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    inner_folds: int = 2
    validation_share: float = 0.2

    def __post_init__(self) -> None:
        if self.inner_folds < 1:
            raise ValueError(f"inner_folds must be at least 1, got {self.inner_folds}")
        if not 0 < self.inner_folds * self.validation_share < 1:
            raise ValueError("the inner validation blocks must leave a training part")

    def inner_plans(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """(train end, validation end) of each inner fold, oldest first."""
        start, end = _utc(self.fit_start), _utc(self.fit_end)
        block = (end - start) * self.validation_share
        step = pd.Timedelta(milliseconds=timeframe_ms(self.timeframe))
        plans = []
        for j in range(self.inner_folds):
            val_end = end - (self.inner_folds - 1 - j) * block
            plans.append((val_end - block, val_end.floor(step)))
        return plans

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _utc(text: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def known_candles(
    candles: dict[str, pd.DataFrame], markets: tuple[str, ...], end: str | pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """The training markets' candles opened by `end`: all a search may read."""
    cut = _utc(end).value // 1_000_000
    missing = sorted(set(markets) - set(candles))
    if missing:
        raise ValueError(f"no candles for {missing}")
    return {m: candles[m][candles[m]["timestamp"] <= cut].reset_index(drop=True) for m in markets}


class WindowObjective:
    """Optuna's objective for one training window (see the module docstring)."""

    def __init__(
        self,
        search: WindowSearch,
        candles: dict[str, pd.DataFrame],
        ledger_url: str | None = None,
        study: str = "",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.search = search
        self.candles = known_candles(candles, search.markets, search.fit_end)
        self.ledger_url = ledger_url
        self.study = study
        self.log = log
        self._features: pd.DataFrame | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_features"] = None  # recomputed in each worker (0.3 s), not pickled
        state["log"] = None if not isinstance(self.log, Printer) else self.log
        return state

    def features(self) -> pd.DataFrame:
        if self._features is None:
            self._features = compute_features(
                self.candles, self.search.timeframe, basket=list(self.search.markets)
            )
        return self._features

    def fit(
        self,
        params: TrialParams,
        train_end: pd.Timestamp,
        val_end: pd.Timestamp,
        seed: int | None = None,
    ) -> Candidate:
        """One model at `params` (and `seed`, default the configured one), trained up to
        `train_end`, its operating point chosen on validation up to `val_end`."""
        s = self.search
        train = params.train(s.train)
        cfg = CandidateConfig(
            train_start=_utc(s.fit_start).isoformat(),
            train_end=train_end.isoformat(),
            val_end=val_end.isoformat(),
            timeframe=s.timeframe,
            label=params.label(s.label),
            operating=params.operating(s.operating),
            train=train if seed is None else replace(train, seed=seed),
            costs=s.costs,
        )
        return fit_candidate(self.features(), self.candles, list(s.selected), cfg)

    def __call__(self, trial: optuna.Trial) -> float:
        s = self.search
        params = suggest(trial, s.space, len(s.selected), s.train.layers)
        started = time.perf_counter()
        training = 0.0
        sharpes: list[float] = []
        folds: list[dict[str, float]] = []
        state, reason = "complete", ""
        try:
            for j, (train_end, val_end) in enumerate(s.inner_plans()):
                candidate = self.fit(params, train_end, val_end)
                training += sum(e["train_seconds"] for e in candidate.result.epochs)
                option = candidate.chosen_option
                folds.append(
                    {
                        "validation_end": val_end.isoformat(),
                        "trades": int(option["trades"]),
                        "sharpe": float(option["sharpe"]),
                        "total_return": float(option["total_return"]),
                        "best_epoch": candidate.result.best_epoch,
                    }
                )
                if option["trades"] < s.operating.min_trades:
                    state = "pruned"
                    reason = f"{option['trades']} validation trades < {s.operating.min_trades}"
                    break
                sharpes.append(float(option["sharpe"]))
                trial.report(float(np.mean(sharpes)), j)
                if j + 1 < s.inner_folds and trial.should_prune():
                    state, reason = "pruned", "median pruner"
                    break
        finally:
            seconds = time.perf_counter() - started
            trial.set_user_attr("seconds", seconds)
            trial.set_user_attr("train_seconds", training)
            trial.set_user_attr("inner_folds", folds)
        value = float(np.mean(sharpes)) if sharpes else float("nan")
        self._record(trial, params, value, folds, state, reason, seconds)
        if state == "pruned":
            import optuna

            raise optuna.TrialPruned(reason)
        return value

    def _record(
        self,
        trial: optuna.Trial,
        params: TrialParams,
        value: float,
        folds: list[dict[str, float]],
        state: str,
        reason: str,
        seconds: float,
    ) -> None:
        n_parameters = trial.user_attrs["n_parameters"]
        if self.log is not None:
            shown = "pruned: " + reason if state == "pruned" else f"validation Sharpe {value:+.2f}"
            self.log(
                f"trial {trial.number}: window {params.window} hidden {params.hidden} "
                f"({n_parameters:,} parameters) dropout {params.dropout:.2f} lr {params.lr:.1e} "
                f"wd {params.weight_decay:.1e} T {params.horizon} k {params.barrier_k} "
                f"coverage {params.coverage:.0%} · {shown} · {seconds:.0f} s"
            )
        if self.ledger_url is None:
            return
        from pipeline.store.database import open_database
        from pipeline.store.trials import append_trial

        first = self.search.inner_plans()[0][0]
        figures = {"sharpe": value if np.isfinite(value) else None, "inner_folds": folds}
        # The process's pooled connection: one pool per worker, not one per trial.
        with open_database(url=self.ledger_url).connection() as conn:
            append_trial(
                conn,
                kind=TUNING_KIND,
                config={
                    "study": self.study,
                    "trial": trial.number,
                    "params": params.to_json(),
                    "n_parameters": n_parameters,
                    "search": self.search.to_json(),
                },
                period_start=first.to_pydatetime(),
                period_end=_utc(self.search.fit_end).to_pydatetime(),
                figures=figures,
                note=f"{state}: {reason}" if reason else state,
            )


class Printer:
    """A picklable logger for spawned workers: prints with the worker's prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, message: str) -> None:
        print(f"{self.prefix}{message}", flush=True)


@dataclass(frozen=True)
class SearchResult:
    study: str
    params: TrialParams
    value: float
    trials: pd.DataFrame  # one row per trial: number, state, value, params, seconds
    ran: list[int]  # trials each worker ran in this call


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """The study's trials as a table, in trial order."""
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                **t.params,
                "n_parameters": t.user_attrs.get("n_parameters"),
                "seconds": t.user_attrs.get("seconds"),
                "train_seconds": t.user_attrs.get("train_seconds"),
            }
        )
    return pd.DataFrame(rows)


def search_window(objective: WindowObjective, spec: StudySpec, workers: int = 1) -> SearchResult:
    """Run (or join, or resume) the study to its budget; the best complete trial's params."""
    ran = run_workers(spec, objective, workers)
    study = open_study(spec)
    complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if not complete:
        raise RuntimeError(
            f"study {spec.name}: none of its {spec.budget} trials completed (every one was "
            "pruned or failed); raise the budget or widen the coverages"
        )
    best = study.best_trial
    return SearchResult(
        study=spec.name,
        params=TrialParams.from_json(best.params),
        value=float(best.value),
        trials=trials_frame(study),
        ran=ran,
    )


def search_on_window(
    candles: dict[str, pd.DataFrame],
    markets: tuple[str, ...],
    fit_start: str,
    fit_end: str,
    *,
    timeframe: str = "1h",
    n_select: int = 50,
    validation_share: float = 0.2,
    **settings: object,
) -> WindowSearch:
    """A search on [fit_start, fit_end] with the features selected there first (training
    rows before the window's last validation block, labelled by the base rule): what
    `signals tune` runs when no refit has selected them already."""
    from pipeline.features.labels import attach_labels
    from pipeline.features.registry import feature_names
    from pipeline.features.selection import SelectionConfig, select_features

    start, end = _utc(fit_start), _utc(fit_end)
    base = WindowSearch(
        markets=markets,
        fit_start=start.isoformat(),
        fit_end=end.isoformat(),
        selected=(),
        timeframe=timeframe,
        validation_share=validation_share,
        **settings,  # type: ignore[arg-type]
    )
    known = known_candles(candles, markets, end)
    data = attach_labels(
        compute_features(known, timeframe, basket=list(markets)), known, timeframe, base.label
    )
    train_end = base.inner_plans()[-1][0]
    rows = data[(data["timestamp"] >= start) & (data["timestamp"] <= end)]
    selection = select_features(
        rows,
        feature_names(),
        SelectionConfig(
            train_end=train_end.isoformat(),
            validation_end=end.isoformat(),
            timeframe=timeframe,
            horizon=base.label.horizon,
            n_select=n_select,
            seed=base.train.seed,
        ),
    )
    return replace(base, selected=tuple(selection.selected))
