"""`hyperparameter_study`: the Optuna study whose best trial `lstm_model` trains with."""

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.modeling import _base_candles
from pipeline.evaluation.search_space import lstm_parameters
from pipeline.evaluation.study_report import best_trials_table, objective_png
from pipeline.evaluation.tuned import study_name
from pipeline.evaluation.tuning import StudySpec
from pipeline.evaluation.window_search import (
    Printer,
    WindowObjective,
    WindowSearch,
    known_candles,
    search_window,
)
from pipeline.model.config import TrainConfig
from pipeline.partitions import BASE_FEATURE_PARTITIONS, BASE_TIMEFRAME
from pipeline.reporting.plots import png_markdown
from pipeline.reporting.text import rounded_json, significant, utc_text
from pipeline.store.studies import study_database_url
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.project import ProjectResource


def _utc_iso(text: str) -> str:
    """One spelling per instant, so the same window always names the same study."""
    stamp = pd.Timestamp(text)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat()


def validation_share(start: str, train_end: str, end: str, inner_folds: int) -> float:
    """The inner folds' validation block as a share of [start, end], sized so the last inner
    fold validates on (train_end, end]: the split `lstm_model` itself trains on."""
    first, split, last = (pd.Timestamp(_utc_iso(t)) for t in (start, train_end, end))
    if not first < split < last:
        raise ValueError(
            f"need train_start < train_end < validation_end, got {start}, {train_end}, {end}"
        )
    share = (last - split) / (last - first)
    if inner_folds * share >= 1:
        raise ValueError(
            f"{inner_folds} inner folds of {share:.0%} of the window each leave no training "
            "part: lower inner_folds or move train_end later"
        )
    return share


class StudyRunConfig(dg.Config):
    """The study's budget and window, overridable per run. The defaults are small because
    the study runs inside `signals run` and the weekly retraining; the same prefix, window
    and candles resume the same study, so a later run with a larger budget only adds trials.
    """

    budget: int = 8  # trials the study holds when the run ends
    workers: int = 1  # processes on the study here (others may join through the database)
    seed: int = 0  # the TPE sampler's (worker i samples with seed + i)
    inner_folds: int = 2
    study_prefix: str = "dagster"  # a new prefix starts a new study on the same data
    # The window lstm_model trains on: the same defaults and the same meaning.
    train_start: str = "2020-01-01"
    train_end: str | None = None  # None: the project's (SIGNALS_TRAIN_END)
    validation_end: str | None = None  # None: the project's (SIGNALS_VALIDATION_END)
    max_epochs: int | None = None  # None: the project's (SIGNALS_MAX_EPOCHS)

    def search(
        self, project: ProjectResource, markets: tuple[str, ...], selected: tuple[str, ...]
    ) -> WindowSearch:
        """The search on lstm_model's window: [train_start, validation_end], the last inner
        fold split at train_end; default label rule, operating choice and costs."""
        train_end = self.train_end or project.train_end
        end = self.validation_end or project.validation_end
        return WindowSearch(
            markets=markets,
            fit_start=_utc_iso(self.train_start),
            fit_end=_utc_iso(end),
            selected=selected,
            timeframe=BASE_TIMEFRAME,
            train=TrainConfig(
                max_epochs=self.max_epochs if self.max_epochs is not None else project.max_epochs
            ),
            inner_folds=self.inner_folds,
            validation_share=validation_share(self.train_start, train_end, end, self.inner_folds),
        )


def _trial_counts(trials: pd.DataFrame) -> tuple[int, int]:
    """(complete, pruned) trials of the study."""
    states = trials["state"].value_counts()
    return int(states.get("complete", 0)), int(states.get("pruned", 0))


@dg.asset(
    group_name="modeling",
    # The features are lineage only: the objective computes them from the candles it has cut
    # at the window's end, so no later candle can reach a trial.
    deps=[dg.AssetDep("features", partition_mapping=BASE_FEATURE_PARTITIONS)],
    ins={"selected_features": dg.AssetIn()},
    io_manager_key="json_io_manager",
    dagster_type=dict,  # {"study", "params", "value", "n_parameters"}
    kinds={"optuna", "postgres"},
)
def hyperparameter_study(
    context: dg.AssetExecutionContext,
    config: StudyRunConfig,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    selected_features: pd.DataFrame,
) -> dg.MaterializeResult:
    """An Optuna study (TPE, median pruner) of the LSTM on lstm_model's training window and
    selected features, kept in the project's PostgreSQL (database `signals_studies`), every
    trial in the trials ledger. Each trial scores the validation net Sharpe at its operating
    point over inner chronological folds; the validation blocks are sized so the last inner
    fold is lstm_model's own train/validation split (up to rounding), and the earlier fold
    validates on the block before it. Its value, the best trial's parameters, is what
    lstm_model trains with."""
    candles = _base_candles(database, candle_source)
    markets = tuple(sorted(candles))
    selected = tuple(selected_features.loc[selected_features["selected"], "feature"])
    search = config.search(project, markets, selected)
    known = known_candles(candles, markets, search.fit_end)
    name = study_name(config.study_prefix, search, known)
    server = database.database().url
    # Dagster's logger cannot be pickled into spawned workers; they print instead.
    log = context.log.info if config.workers == 1 else Printer(prefix=f"{name}: ")
    objective = WindowObjective(search, known, ledger_url=server, study=name, log=log)
    spec = StudySpec(name, study_database_url(server), config.budget, config.seed)
    context.log.info(f"study {name}: budget {config.budget}, {config.workers} worker(s)")
    found = search_window(objective, spec, config.workers)
    n_parameters = lstm_parameters(len(selected), found.params.hidden, search.train.layers)
    complete, pruned = _trial_counts(found.trials)
    plot = objective_png(
        found.trials,
        Path(project.home) / "reports" / "studies" / f"{name}.png",
        f"{name}: {complete} complete, {pruned} pruned",
    )
    return dg.MaterializeResult(
        value={
            "study": name,
            "params": found.params.to_json(),
            "value": found.value,
            "n_parameters": n_parameters,
        },
        metadata={
            "study": name,
            "budget": config.budget,
            "trials": len(found.trials),
            "trials_complete": complete,
            "trials_pruned": pruned,
            "best_value": significant(found.value),
            # Rounded for reading; the asset's value keeps the exact parameters.
            "best_params": dg.MetadataValue.json(rounded_json(found.params.to_json())),
            "best_n_parameters": n_parameters,
            "best_trials": dg.MetadataValue.md(best_trials_table(found.trials)),
            "objective": dg.MetadataValue.md(png_markdown(plot.read_bytes(), "objective")),
            "inner_folds": dg.MetadataValue.json(
                [
                    {"train_end": utc_text(a), "validation_end": utc_text(b)}
                    for a, b in search.inner_plans()
                ]
            ),
        },
    )
