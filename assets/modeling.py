"""`lstm_model`, `backtest_report`, `production_model`: train, judge and promote, in order."""

import base64
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.features import BASE_FEATURE_PARTITIONS, BASE_TIMEFRAME, stored_candles
from pipeline.backtest.pool import pool_metrics
from pipeline.backtest.report import write_report
from pipeline.evaluation.candidate import CandidateConfig, fit_candidate, validation_backtests
from pipeline.evaluation.gates import GateConfig, check_gate
from pipeline.features.labels import DEFAULT_HORIZON, attach_labels
from pipeline.features.registry import feature_names
from pipeline.model.contract import MODEL_NAME, load_for_inference
from pipeline.model.training import TrainConfig
from pipeline.partitions import SYMBOLS_BY_MARKET_ID, ohlcv_partitions, symbol_for
from pipeline.settings import Settings
from pipeline.store import models as model_store
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource

warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)

GAP_CHECK = "lstm_model_gap_within_bound"
MAJORITY_CHECK = "lstm_model_beats_majority"
_settings = Settings.from_env()


class ModelRunConfig(dg.Config):
    """Training and split settings a run may override (the launchpad, tests on small data)."""

    train_start: str = "2020-01-01"
    train_end: str = _settings.train_end
    validation_end: str = _settings.validation_end
    window: int = 8
    max_epochs: int = _settings.max_epochs
    patience: int = 4
    gap_bound: float = 0.15
    threshold: float = 0.65
    seed: int = 0

    def candidate(self) -> CandidateConfig:
        return CandidateConfig(
            train_start=self.train_start,
            train_end=self.train_end,
            val_end=self.validation_end,
            timeframe=BASE_TIMEFRAME,
            horizon=DEFAULT_HORIZON,
            threshold=self.threshold,
            train=TrainConfig(
                window=self.window,
                max_epochs=self.max_epochs,
                patience=self.patience,
                gap_bound=self.gap_bound,
                seed=self.seed,
            ),
        )


def _labelled(features: pd.DataFrame, database, candle_source) -> tuple[pd.DataFrame, dict]:
    candles = {
        symbol: stored_candles(database, candle_source, market, BASE_TIMEFRAME)
        for market, symbol in SYMBOLS_BY_MARKET_ID.items()
    }
    return attach_labels(features, candles, BASE_TIMEFRAME, DEFAULT_HORIZON), candles


def _curve(epochs: list[dict]) -> str:
    lines = [
        "| epoch | train loss | val loss | train acc | val acc | gap |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {int(e['epoch'])} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | "
        f"{e['train_accuracy']:.4f} | {e['val_accuracy']:.4f} | {e['gap']:+.4f} |"
        for e in epochs
    ]
    return "\n".join(lines)


@dg.asset(
    group_name="modeling",
    ins={
        "features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS),
        "selected_features": dg.AssetIn(),
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
            description="Validation accuracy above the majority class's.",
        ),
    ],
    kinds={"pytorch", "postgres"},
)
def lstm_model(
    context: dg.AssetExecutionContext,
    config: ModelRunConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    selected_features: pd.DataFrame,
) -> dg.MaterializeResult:
    """A candidate LSTM on the selected features, stored in the model store with its metrics.

    It becomes production only through `production_model`'s gate.
    """
    selected = selected_features.loc[selected_features["selected"], "feature"].tolist()
    data, _ = _labelled(features, database, candle_source)
    cfg = config.candidate()
    candidate = fit_candidate(data, selected, cfg)
    with database.database().connection() as conn:
        model_id = model_store.save_model(conn, candidate.record())
    result, validation = candidate.result, candidate.validation
    gap = float(result.best["gap"])
    context.log.info(
        f"candidate {model_id}: {result.stopped}, val acc {validation['val_accuracy']:.4f}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_id": model_id,
            "parameters": result.n_parameters,
            "epochs": len(result.epochs),
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "gap": gap,
            "val_accuracy": validation["val_accuracy"],
            "val_majority_accuracy": validation["val_majority_accuracy"],
            "val_ece": validation["val_ece"],
            "curves": dg.MetadataValue.md(_curve(result.epochs)),
            "seed": result.seed,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GAP_CHECK,
                passed=not result.gap_flagged,
                metadata={"gap": gap, "bound": cfg.train.gap_bound, "stopped": result.stopped},
            ),
            dg.AssetCheckResult(
                check_name=MAJORITY_CHECK,
                passed=validation["val_accuracy"] > validation["val_majority_accuracy"],
                metadata={k: float(v) for k, v in validation.items()},
            ),
        ],
    )


def _newest_candidate(database: PostgresResource) -> model_store.ModelRecord:
    with database.database().connection() as conn:
        newest = model_store.newest_model_id(conn, MODEL_NAME, BASE_TIMEFRAME, "candidate")
        if newest is None:
            raise dg.Failure("no candidate model in the store: materialise lstm_model first")
        return model_store.load_model(conn, newest)


def _png_markdown(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![equity](data:image/png;base64,{data})"


@dg.asset(
    group_name="evaluation",
    partitions_def=ohlcv_partitions,
    deps=["lstm_model"],
    ins={"features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS)},
    kinds={"matplotlib"},
)
def backtest_report(
    context: dg.AssetExecutionContext,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
) -> dg.MaterializeResult:
    """The newest candidate replayed over the validation period on one market, with costs,
    beside always-long, buy-and-hold, logistic regression and gradient boosting."""
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    market, timeframe = keys["market"], keys["timeframe"]
    if timeframe != BASE_TIMEFRAME:
        raise dg.Failure(
            f"the model decides on {BASE_TIMEFRAME} candles; {timeframe} has no backtest"
        )
    record = _newest_candidate(database)
    loaded = load_for_inference(record, feature_names())
    data, candles = _labelled(features, database, candle_source)
    symbol = symbol_for(market)
    start = pd.Timestamp(record.data_window["validation"]["first_decision"])
    end = pd.Timestamp(record.data_window["validation"]["last_decision"])
    results = validation_backtests(
        loaded,
        data,
        {symbol: candles[symbol]},
        start,
        end,
        BASE_TIMEFRAME,
        baselines_from=record,
    )
    out_dir = Settings.from_env().home / "reports" / f"model-{record.id}" / market
    report = write_report(
        {name: by_market[symbol] for name, by_market in results.items()},
        out_dir,
        f"{symbol} validation {start:%Y-%m-%d} … {end:%Y-%m-%d}, model {record.id}",
    )
    lstm = report.metrics["lstm"]
    return dg.MaterializeResult(
        metadata={
            "model_id": record.id,
            "report": dg.MetadataValue.path(str(report.markdown_path)),
            "table": dg.MetadataValue.md(report.table),
            "equity": dg.MetadataValue.md(_png_markdown(report.png_path)),
            "lstm_total_return": float(lstm["total_return"]),
            "lstm_win_rate": float(lstm["win_rate"]) if lstm["trades"] else -1.0,
            "lstm_trades": int(lstm["trades"]),
        }
    )


class GateRunConfig(dg.Config):
    """The gate's bounds, overridable per run; defaults are GateConfig's (one source)."""

    min_total_return: float = GateConfig.min_total_return
    min_win_rate: float = GateConfig.min_win_rate
    max_drawdown: float = GateConfig.max_drawdown
    min_trades: int = GateConfig.min_trades


@dg.asset(
    group_name="evaluation",
    deps=["lstm_model", dg.AssetDep("backtest_report", partition_mapping=BASE_FEATURE_PARTITIONS)],
    ins={"features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS)},
    kinds={"postgres"},
)
def production_model(
    context: dg.AssetExecutionContext,
    config: GateRunConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
) -> dg.MaterializeResult:
    """Promote the newest candidate only if its validation backtest, pooled over the markets,
    passes the gate and beats the production model on the same candles."""
    candidate = _newest_candidate(database)
    data, candles = _labelled(features, database, candle_source)
    start = pd.Timestamp(candidate.data_window["validation"]["first_decision"])
    end = pd.Timestamp(candidate.data_window["validation"]["last_decision"])
    names = feature_names()

    def pooled(record: model_store.ModelRecord) -> dict:
        loaded = load_for_inference(record, names)
        by_market = validation_backtests(loaded, data, candles, start, end, BASE_TIMEFRAME)["lstm"]
        return pool_metrics(by_market)

    with database.database().connection() as conn:
        current = model_store.production_model(conn, MODEL_NAME, BASE_TIMEFRAME)
    verdict = check_gate(
        pooled(candidate), pooled(current) if current else None, GateConfig(**config.model_dump())
    )
    promoted = None
    if verdict.passed:
        with database.database().connection() as conn:
            model_store.promote(conn, candidate.id, verdict.to_json())
        promoted = candidate.id
        context.log.info(f"model {candidate.id} promoted to production")
    else:
        context.log.info(f"model {candidate.id} refused: {'; '.join(verdict.reasons)}")
    return dg.MaterializeResult(
        metadata={
            "candidate": candidate.id,
            "promoted": promoted if promoted is not None else -1,
            "production": promoted or (current.id if current else -1),
            "passed": verdict.passed,
            "reasons": "; ".join(verdict.reasons) or "all bounds met",
            "verdict": dg.MetadataValue.json(verdict.to_json()),
        }
    )
