"""`lstm_model`, `backtest_report`, `production_model`: train, judge and promote, in order."""

import dataclasses
import warnings
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.features import stored_candles
from pipeline.backtest.pool import pool_metrics
from pipeline.backtest.report import write_report
from pipeline.evaluation.candidate import (
    Candidate,
    CandidateConfig,
    fit_candidate,
    validation_backtests,
)
from pipeline.evaluation.curves import (
    CURVE_CAPTION,
    TABLE_CAPTION,
    operating_curve_png,
    options_table,
)
from pipeline.evaluation.gates import GateConfig, check_gate
from pipeline.evaluation.operating_choice import COVERAGES, MIN_TRADES, OperatingChoice
from pipeline.evaluation.search_space import TrialParams
from pipeline.features.labels import (
    DEFAULT_BARRIER_K,
    DEFAULT_HORIZON,
    DEFAULT_MARGIN,
    LabelRule,
)
from pipeline.features.registry import feature_names
from pipeline.model.config import TrainConfig
from pipeline.model.contract import MODEL_NAME, load_for_inference
from pipeline.model.ensemble import DEFAULT_ENSEMBLE
from pipeline.partitions import (
    BASE_FEATURE_PARTITIONS,
    BASE_TIMEFRAME,
    SYMBOLS_BY_MARKET_ID,
    market_partitions,
    symbol_for,
    timeframe_partitions,
)
from pipeline.reporting.plots import png_markdown, reliability_png, training_curves_png
from pipeline.reporting.text import rounded_json, significant, utc_text
from pipeline.signals.backtest_path import shadow_agreement
from pipeline.signals.calibration import reliability_table
from pipeline.store import models as model_store
from pipeline.tables import markdown_table
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.project import ProjectResource

if TYPE_CHECKING:
    from pipeline.model.training import TrainResult

warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)

GAP_CHECK = "lstm_model_gap_within_bound"
MAJORITY_CHECK = "lstm_model_beats_majority"
GATE_CHECK = "production_model_gate_passed"


class ModelRunConfig(dg.Config):
    """Training, split, label and filter settings a run may override (the launchpad, tests
    on small data). The label rule is also how the model's trades exit; the operating point
    is chosen on validation among `coverages` (with and without the expected-value filter)
    unless `fixed_threshold` (e.g. the brief's 0.65) is set. With `use_study` (the default)
    the best trial of `hyperparameter_study` replaces what the study searched: the window,
    hidden size, dropout, learning rate and weight decay, the label's time limit and barrier
    width, and the coverage (one option, so `fixed_threshold` is ignored). `ensemble`
    networks (seeds seed, seed + 1, …) decide as one model by their mean probability: 3 by
    default, the size the walk-forward's validation preferred (issue 11); 1 is one network."""

    train_start: str = "2020-01-01"
    # None: the project's (SIGNALS_TRAIN_END, SIGNALS_VALIDATION_END, SIGNALS_MAX_EPOCHS).
    train_end: str | None = None
    validation_end: str | None = None
    window: int = 8
    max_epochs: int | None = None
    patience: int = 4
    gap_bound: float = 0.15
    seed: int = 0
    ensemble: int = Field(default=DEFAULT_ENSEMBLE, ge=1)
    label_horizon: int = DEFAULT_HORIZON
    barrier_k: float | None = DEFAULT_BARRIER_K
    label_margin: float = DEFAULT_MARGIN
    coverages: list[float] = Field(default_factory=lambda: list(COVERAGES))
    expected_value_filter: list[bool] = Field(default_factory=lambda: [False, True])
    min_trades: int = MIN_TRADES
    fixed_threshold: float | None = None
    use_study: bool = True

    def candidate(self, project: ProjectResource) -> CandidateConfig:
        return CandidateConfig(
            train_start=self.train_start,
            train_end=self.train_end or project.train_end,
            val_end=self.validation_end or project.validation_end,
            timeframe=BASE_TIMEFRAME,
            label=LabelRule(
                horizon=self.label_horizon, barrier_k=self.barrier_k, margin=self.label_margin
            ),
            operating=OperatingChoice(
                coverages=tuple(self.coverages),
                expected_value=tuple(self.expected_value_filter),
                min_trades=self.min_trades,
                fixed_threshold=self.fixed_threshold,
            ),
            train=TrainConfig(
                window=self.window,
                max_epochs=self.max_epochs if self.max_epochs is not None else project.max_epochs,
                patience=self.patience,
                gap_bound=self.gap_bound,
                seed=self.seed,
            ),
            ensemble=self.ensemble,
        )


def _base_candles(database, candle_source) -> dict[str, pd.DataFrame]:
    return {
        symbol: stored_candles(database, candle_source, market, BASE_TIMEFRAME)
        for market, symbol in SYMBOLS_BY_MARKET_ID.items()
    }


def with_study(cfg: CandidateConfig, params: TrialParams) -> CandidateConfig:
    """The candidate's settings with a study's best trial applied (only what the study
    searched; epochs, patience, the gap bound and the seed stay the run's)."""
    return dataclasses.replace(
        cfg,
        train=params.train(cfg.train),
        label=params.label(cfg.label),
        operating=params.operating(cfg.operating),
    )


SHORT_HISTORY = 8  # epochs: a history this short also shows as a table under its plot


def _curve(epochs: list[dict]) -> str:
    return markdown_table(
        ["epoch", "train loss", "val loss", "train acc", "val acc", "gap"],
        (
            [
                int(e["epoch"]),
                f"{e['train_loss']:.4f}",
                f"{e['val_loss']:.4f}",
                f"{e['train_accuracy']:.4f}",
                f"{e['val_accuracy']:.4f}",
                f"{e['gap']:+.4f}",
            ]
            for e in epochs
        ),
        align="rrrrrr",
    )


def _training_curves(result: "TrainResult", gap_bound: float) -> str:
    """The training curves as an image, and as a table too when the history is short."""
    title = f"stopped: {result.stopped}; weights of epoch {result.best_epoch} kept"
    png = training_curves_png(result.epochs, result.best_epoch, gap_bound, title)
    caption = (
        f"Gap: train − validation accuracy; training stops above the bound "
        f"({100 * gap_bound:g} points). The best epoch has the lowest validation loss."
    )
    text = png_markdown(png, "training curves", caption)
    if len(result.epochs) <= SHORT_HISTORY:
        text += "\n\n" + _curve(result.epochs)
    return text


def _reliability(candidate: Candidate) -> str:
    """The validation split's reliability diagram (the bins and windows val_ece uses)."""
    if candidate.val_p_up is None or candidate.val_y is None:
        return "no validation probabilities"
    table = reliability_table(candidate.val_p_up, candidate.val_y)
    png = reliability_png(table, candidate.validation["val_ece"], "validation")
    caption = (
        "Each point: the windows whose predicted P(up) fell in one bin, their mean prediction "
        "against the share that went up; on the diagonal a probability means what it says."
    )
    return png_markdown(png, "reliability", caption)


def _window(boundaries: dict, split: str) -> str:
    """A split's first and last decision as UTC dates."""
    part = boundaries[split]
    return f"{utc_text(part['first_decision'])} … {utc_text(part['last_decision'])}"


def _figures(values: dict[str, float | None]) -> dict[str, float]:
    """Floats to 4 significant digits; an undefined figure (NaN, ±∞) is left out, not shown
    as a sentinel."""
    rounded = {k: significant(v) for k, v in values.items()}
    return {k: v for k, v in rounded.items() if v is not None}


@dg.asset(
    group_name="modeling",
    ins={
        "features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS),
        "selected_features": dg.AssetIn(),
        "hyperparameter_study": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec(
            GAP_CHECK,
            asset="lstm_model",
            description="Train − validation accuracy stayed within the bound.",
        ),
        dg.AssetCheckSpec(
            MAJORITY_CHECK,
            asset="lstm_model",
            description="Validation accuracy above the majority class's. A WARN: such a "
            "candidate still decides in shadow (never executed); the gate requires it before "
            "production.",
        ),
    ],
    io_manager_key="json_io_manager",
    dagster_type=int,  # the model id (the annotation says MaterializeResult)
    kinds={"pytorch", "postgres"},
)
def lstm_model(
    context: dg.AssetExecutionContext,
    config: ModelRunConfig,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    selected_features: pd.DataFrame,
    hyperparameter_study: dict,
) -> dg.MaterializeResult:
    """A candidate LSTM on the selected features, stored in the model store with its metrics.

    It trains with the best trial of `hyperparameter_study` (unless `use_study` is off); the
    stored config names the study and its parameters. Its value is the model id, which
    `backtest_report` and `production_model` read: they judge the model this asset produced.
    It becomes production only through `production_model`'s gate.
    """
    selected = selected_features.loc[selected_features["selected"], "feature"].tolist()
    cfg = config.candidate(project)
    study = hyperparameter_study if config.use_study else None
    if study is not None:
        cfg = with_study(cfg, TrialParams.from_json(study["params"]))
    candidate = fit_candidate(features, _base_candles(database, candle_source), selected, cfg)
    record = candidate.record()
    result, validation = candidate.result, candidate.validation
    # The stored weights are the best epoch's, so the check judges that epoch's gap
    # (training may have stopped later, on a gap past the bound); an ensemble's is its
    # widest member's.
    gap = float(record.metrics["gap"])
    gap_ok = gap <= cfg.train.gap_bound
    beats_majority = validation["val_accuracy"] > validation["val_majority_accuracy"]
    # Kept with the model: the live job lets a candidate decide in shadow only when none of
    # its ERROR checks failed (model_store.shadow_candidate).
    record.metrics["checks"] = {
        GAP_CHECK: {"passed": gap_ok, "severity": "ERROR"},
        MAJORITY_CHECK: {"passed": beats_majority, "severity": "WARN"},
    }
    record.config["study"] = (
        {"name": study["study"], "params": study["params"], "value": study["value"]}
        if study is not None
        else None
    )
    with database.database().connection() as conn:
        model_id = model_store.save_model(conn, record)
    tuned = f"tuned by study {study['study']}" if study is not None else "untuned"
    seeds = [r.seed for r in candidate.networks]
    context.log.info(
        f"candidate {model_id} ({tuned}, {len(seeds)} network(s), seeds {seeds}): "
        f"{result.stopped}, val acc {validation['val_accuracy']:.4f}"
    )
    point, chosen = candidate.operating, candidate.chosen_option
    return dg.MaterializeResult(
        value=model_id,
        metadata={
            "model_id": model_id,
            "parameters": result.n_parameters,  # per network
            "networks": len(seeds),
            "seeds": dg.MetadataValue.json(seeds),
            "epochs": len(result.epochs),
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            # Figures followed over materialisations (Dagster plots numeric metadata).
            **_figures(
                {
                    "gap": gap,
                    "val_accuracy": validation["val_accuracy"],
                    "val_majority_accuracy": validation["val_majority_accuracy"],
                    "val_ece": validation["val_ece"],
                    "threshold": point.threshold,
                    "coverage": point.coverage,
                    "val_traded_share": chosen.get("signal_share"),
                }
            ),
            "val_trades": int(chosen["trades"]),
            "training_curves": dg.MetadataValue.md(_training_curves(result, cfg.train.gap_bound)),
            "reliability": dg.MetadataValue.md(_reliability(candidate)),
            "train_window": _window(candidate.boundaries, "train"),
            "validation_window": _window(candidate.boundaries, "validation"),
            "seed": result.seed,
            **_member_metadata(record.metrics.get("members")),
            "label_rule": dg.MetadataValue.json(rounded_json(cfg.label.to_json())),
            "operating_point": dg.MetadataValue.json(rounded_json(point.to_json())),
            "operating_options": dg.MetadataValue.md(
                options_table(candidate.operating_options) + "\n\n" + TABLE_CAPTION
            ),
            **_study_metadata(study),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GAP_CHECK,
                passed=gap_ok,
                metadata={
                    "gap": significant(gap),
                    "bound": cfg.train.gap_bound,
                    "best_epoch": result.best_epoch,
                    "stopped": result.stopped,
                },
            ),
            dg.AssetCheckResult(
                check_name=MAJORITY_CHECK,
                passed=beats_majority,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    **_figures(
                        {k: validation[k] for k in ("val_accuracy", "val_majority_accuracy")}
                    ),
                    "val_windows": int(validation["val_windows"]),
                },
            ),
        ],
    )


def _member_metadata(members: list[dict] | None) -> dict[str, object]:
    """An ensemble's members: each one's seed, kept epoch, stop and gap (curves above: the
    first member's)."""
    if not members:
        return {}
    rows = (
        [m["seed"], m["best_epoch"], m["stopped"], f"{m['gap']:+.4f}", len(m["epochs"])]
        for m in members
    )
    table = markdown_table(["seed", "best epoch", "stopped", "gap", "epochs"], rows, "rrlrr")
    return {"members": dg.MetadataValue.md(table)}


def _study_metadata(study: dict | None) -> dict[str, object]:
    """Which study chose the candidate's parameters, and those parameters."""
    if study is None:
        return {"study": "untuned (use_study=false)"}
    return {
        "study": study["study"],
        "tuned_params": dg.MetadataValue.json(rounded_json(study["params"])),
    }


def _stored_model(database: PostgresResource, model_id: int) -> model_store.ModelRecord:
    with database.database().connection() as conn:
        return model_store.load_model(conn, model_id)


# What judging a model reads: the model lstm_model produced (lineage, not "the newest"), and
# every market's base features, since the baselines are fitted on all markets' training rows.
_MODEL_AND_BASE_FEATURES = {
    "features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS),
    "lstm_model": dg.AssetIn(),
}


@dg.asset(
    group_name="evaluation",
    partitions_def=market_partitions,
    ins=_MODEL_AND_BASE_FEATURES,
    kinds={"matplotlib"},
)
def backtest_report(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    lstm_model: int,
) -> dg.MaterializeResult:
    """The candidate `lstm_model` produced, replayed over the validation period on one market
    (on the base timeframe, where the model decides), with costs, beside always-long,
    buy-and-hold, logistic regression and gradient boosting."""
    market = context.partition_key
    record = _stored_model(database, lstm_model)
    loaded = load_for_inference(record, feature_names())
    candles = _base_candles(database, candle_source)
    symbol = symbol_for(market)
    start = pd.Timestamp(record.data_window["validation"]["first_decision"])
    end = pd.Timestamp(record.data_window["validation"]["last_decision"])
    results = validation_backtests(
        loaded,
        features,
        {symbol: candles[symbol]},
        start,
        end,
        BASE_TIMEFRAME,
        baselines_from=record,
    )
    out_dir = project.report_dir(record.id, market)
    report = write_report(
        {name: by_market[symbol] for name, by_market in results.items()},
        out_dir,
        f"{symbol} validation {start:%Y-%m-%d} … {end:%Y-%m-%d}, model {record.id}",
    )
    lstm = report.metrics["lstm"]
    options = record.config.get("operating_options", [])
    curve = operating_curve_png(
        options,
        out_dir / "operating_curve.png",
        f"model {record.id}: precision and net return against coverage on validation",
    )
    figures = {
        key: lstm[key] for key in ("total_return", "sharpe", "max_drawdown", "profit_factor")
    }
    if lstm["trades"]:  # no trades, no win rate: left out rather than a sentinel
        figures["win_rate"] = lstm["win_rate"]
    return dg.MaterializeResult(
        metadata={
            "model_id": record.id,
            "validation_window": f"{utc_text(start)} … {utc_text(end)}",
            "report": dg.MetadataValue.path(str(report.markdown_path)),
            # Three narrow tables (the first keeps the old key, which `signals run` prints).
            "table": dg.MetadataValue.md(report.tables["returns"]),
            "trades": dg.MetadataValue.md(report.tables["trades"]),
            "costs": dg.MetadataValue.md(report.tables["costs"]),
            "equity": dg.MetadataValue.md(png_markdown(report.png_path.read_bytes(), "equity")),
            "label_rule": dg.MetadataValue.json(rounded_json(record.config.get("label", {}))),
            "operating_point": dg.MetadataValue.json(
                rounded_json(record.config.get("operating", {}))
            ),
            "operating_curve": dg.MetadataValue.md(
                png_markdown(curve.read_bytes(), "operating curve", CURVE_CAPTION)
            ),
            "operating_options": dg.MetadataValue.md(
                options_table(options) + "\n\n" + TABLE_CAPTION
            ),
            "lstm_trades": int(lstm["trades"]),
            **_figures({f"lstm_{k}": v for k, v in figures.items()}),
        }
    )


class GateRunConfig(dg.Config):
    """The gate's bounds, overridable per run; defaults are GateConfig's (one source)."""

    min_total_return: float = GateConfig.min_total_return
    min_profit_factor: float = GateConfig.min_profit_factor
    min_win_rate: float = GateConfig.min_win_rate
    max_drawdown: float = GateConfig.max_drawdown
    min_trades: int = GateConfig.min_trades
    require_beats_majority: bool = GateConfig.require_beats_majority
    max_gap: float = GateConfig.max_gap
    min_shadow_candles: int = GateConfig.min_shadow_candles


@dg.asset(
    group_name="evaluation",
    deps=["backtest_report"],  # every market's report
    ins=_MODEL_AND_BASE_FEATURES,
    kinds={"postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="production_model",
            description="The candidate passed the gate and was promoted. A refusal FAILS this "
            "check (ERROR, red), with the reasons; the run itself succeeds.",
        )
    ],
)
def production_model(
    context: dg.AssetExecutionContext,
    config: GateRunConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    lstm_model: int,
) -> dg.MaterializeResult:
    """Promote the candidate `lstm_model` produced only if its validation backtest, pooled
    over the markets, passes the gate and beats the production model on the same candles."""
    candidate = _stored_model(database, lstm_model)
    candles = _base_candles(database, candle_source)
    start = pd.Timestamp(candidate.data_window["validation"]["first_decision"])
    end = pd.Timestamp(candidate.data_window["validation"]["last_decision"])
    names = feature_names()

    def pooled(record: model_store.ModelRecord) -> dict:
        loaded = load_for_inference(record, names)
        by_market = validation_backtests(loaded, features, candles, start, end, BASE_TIMEFRAME)
        return pool_metrics(by_market["lstm"])

    with database.database().connection() as conn:
        current = model_store.production_model(conn, MODEL_NAME, BASE_TIMEFRAME)
        # Live evidence, when the gate asks for it: the candidate's shadow decisions so far.
        shadow = (
            shadow_agreement(
                conn,
                candle_source.exchange,
                list(SYMBOLS_BY_MARKET_ID.values()),
                BASE_TIMEFRAME,
                list(timeframe_partitions.get_partition_keys()),
                candidate,
            )
            if config.min_shadow_candles > 0
            else None
        )
    verdict = check_gate(
        pooled(candidate),
        pooled(current) if current else None,
        GateConfig(**config.model_dump()),
        fit=candidate.metrics,
        shadow=shadow,
    )
    return gate_outcome(
        context, database, candidate, current, verdict, {"verdict": verdict.to_json()}
    )


def gate_outcome(
    context: dg.AssetExecutionContext,
    database: PostgresResource,
    candidate: model_store.ModelRecord,
    current: model_store.ModelRecord | None,
    verdict,
    extra: dict[str, object],
) -> dg.MaterializeResult:
    """Promote the candidate when the verdict passed; the materialisation and the gate check
    say what happened. A refusal fails the gate's check at ERROR (red in the lineage and the
    catalog: a refused candidate must not look healthy); the run itself succeeds, so the main
    job goes on and says REFUSED."""
    promoted = None
    if verdict.passed:
        with database.database().connection() as conn:
            model_store.promote(conn, candidate.id, verdict.to_json())
        promoted = candidate.id
        context.log.info(f"model {candidate.id} promoted to production")
    else:
        context.log.warning(f"model {candidate.id} refused: {'; '.join(verdict.reasons)}")
    production = promoted or (current.id if current else None)
    reasons = "; ".join(verdict.reasons) or "all bounds met"
    return dg.MaterializeResult(
        metadata={
            "candidate": candidate.id,
            "outcome": "promoted" if verdict.passed else "refused",
            # No sentinel ids: a model id only where there is a model.
            **({"promoted": promoted} if promoted is not None else {}),
            "production": production
            if production is not None
            else dg.MetadataValue.text("none: live runs record only shadow signals"),
            "passed": verdict.passed,
            "reasons": reasons,
            **{
                k: dg.MetadataValue.json(rounded_json(v)) if isinstance(v, dict) else v
                for k, v in extra.items()
            },
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK,
                passed=verdict.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"promoted: {reasons}" if verdict.passed else f"refused: {reasons}",
                metadata={"candidate": candidate.id, "reasons": reasons},
            )
        ],
    )
