"""`market_factor`, `features`, `selected_features`: from candles to the 50 strongest features."""

import warnings
from dataclasses import replace

import dagster as dg
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.exchange.markets import market_id
from pipeline.features.compute import compute_market_features, market_factor_frame
from pipeline.features.labels import LabelRule, attach_labels, class_balance
from pipeline.features.registry import HIGHER_TIMEFRAMES, feature_names
from pipeline.features.schema import validate_features
from pipeline.features.selection import SelectionConfig, select_features
from pipeline.partitions import (
    BASE_FEATURE_PARTITIONS,
    BASE_TIMEFRAME,
    FACTOR_BASKET,
    SYMBOLS_BY_MARKET_ID,
    ohlcv_partitions,
    symbol_for,
    timeframe_partitions,
)
from pipeline.reporting.plots import importance_png, png_markdown
from pipeline.reporting.text import significant
from pipeline.store.candles import load_candles
from pipeline.tables import markdown_table
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.project import ProjectResource

# Multi-partition mappings are beta in Dagster 1.13 (pinned <1.14; tests check the mappings).
warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)

# One timeframe, every market: what the market factor of that timeframe reads.
_ALL_MARKETS_OF_TIMEFRAME = dg.MultiToSingleDimensionPartitionMapping(
    partition_dimension_name="timeframe"
)
# One market, every timeframe: the base candles and the higher timeframes joined onto them.
_SAME_MARKET_ALL_TIMEFRAMES = dg.MultiPartitionMapping(
    {
        "market": dg.DimensionPartitionMapping("market", dg.IdentityPartitionMapping()),
        "timeframe": dg.DimensionPartitionMapping("timeframe", dg.AllPartitionMapping()),
    }
)


def stored_candles(
    database: PostgresResource, source: CandleSourceResource, market: str, timeframe: str
) -> pd.DataFrame:
    with database.database().connection() as conn:
        return load_candles(conn, source.exchange, symbol_for(market), timeframe)


@dg.asset(
    partitions_def=timeframe_partitions,
    group_name="features",
    deps=[dg.AssetDep("ohlcv", partition_mapping=_ALL_MARKETS_OF_TIMEFRAME)],
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
)
def market_factor(
    context: dg.AssetExecutionContext,
    database: PostgresResource,
    candle_source: CandleSourceResource,
) -> pd.DataFrame:
    """Equal-weight mean 1-candle log return of the factor basket, per candle.

    The basket is the markets `lstm_model` fits on (every configured one); the model
    records it, and live inference computes the factor over it unchanged. Its own asset so
    that every market's features depend on all markets' candles of one timeframe, and on
    nothing else of theirs, in the lineage.
    """
    timeframe = context.partition_key
    basket = {
        symbol: stored_candles(database, candle_source, market_id(symbol), timeframe)
        for symbol in FACTOR_BASKET
    }
    factor = market_factor_frame(basket, timeframe, basket=FACTOR_BASKET)
    context.add_output_metadata(
        {
            "rows": len(factor),
            "markets": len(basket),
            "basket": ", ".join(FACTOR_BASKET),
            "timeframe": timeframe,
        }
    )
    return factor


@dg.asset(
    partitions_def=ohlcv_partitions,
    group_name="features",
    deps=[dg.AssetDep("ohlcv", partition_mapping=_SAME_MARKET_ALL_TIMEFRAMES)],
    ins={
        "market_factor": dg.AssetIn(partition_mapping=_ALL_MARKETS_OF_TIMEFRAME),
    },
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
)
def features(
    context: dg.AssetExecutionContext,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    market_factor: pd.DataFrame,
) -> pd.DataFrame:
    """The 79 candidate features of one market × timeframe, one row per candle.

    Warm-up rows are kept, as NaN. Higher timeframes join on their candles' close time; the
    schema check (registry columns in order, finite after warm-up) gates the write.
    """
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    market, timeframe = keys["market"], keys["timeframe"]
    base = stored_candles(database, candle_source, market, timeframe)
    if base.empty:
        raise dg.Failure(f"no {timeframe} candles stored for {market}: materialise ohlcv first")
    step = timeframe_ms(timeframe)
    higher = {
        tf: stored_candles(database, candle_source, market, tf)
        for tf in HIGHER_TIMEFRAMES
        if tf in timeframe_partitions.get_partition_keys() and timeframe_ms(tf) >= step
    }
    frame = compute_market_features(base, timeframe, higher, factor=market_factor)
    frame.insert(0, "market", symbol_for(market))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    validate_features(frame, timeframe)
    complete = frame[feature_names()].notna().all(axis=1)
    context.add_output_metadata(
        {
            "rows": len(frame),
            "complete_rows": int(complete.sum()),
            "first_complete": frame.loc[complete, "timestamp"].min().isoformat()
            if complete.any()
            else "none",
            "last": frame["timestamp"].max().isoformat(),
            "higher_timeframes": ", ".join(sorted(higher)) or "none",
        }
    )
    return frame


def _markdown(frame: pd.DataFrame) -> str:
    return markdown_table(
        [str(c) for c in frame.columns],
        (
            [f"{v:.3f}" if isinstance(v, float) else v for v in r]
            for r in frame.itertuples(index=False)
        ),
    )


def _status(row) -> str:
    """Where a feature stands: selected, ranked but below the cut, or pruned before ranking
    (a near-duplicate of a kept feature; re-admitted when pruning left too few)."""
    if pd.isna(row.rank):
        return "pruned, re-admitted" if row.selected else "pruned"
    return "selected" if row.selected else "ranked out"


def _ranking_table(result) -> dg.TableMetadataValue:
    """One row per candidate, short cells only (the pruning reasons are in `pruned`)."""
    columns = ["feature", "rank", "importance_mean", "importance_std", "stability", "selected"]
    table = result.table.reindex(columns=columns)
    records = [
        dg.TableRecord(
            {
                "feature": str(row.feature),
                # Pruned before ranking: no rank and no importance (empty cells, not zeros
                # that would read as measured).
                "rank": int(row.rank) if pd.notna(row.rank) else None,
                "importance": significant(row.importance_mean),
                "importance_std": significant(row.importance_std),
                "stability": significant(row.stability, 3),
                "selected": bool(row.selected),
                "status": _status(row),
            }
        )
        for row in table.itertuples()
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("feature", "string"),
            dg.TableColumn("rank", "int", description="empty: pruned before ranking"),
            dg.TableColumn("importance", "float", description="mean drop in log-loss"),
            dg.TableColumn("importance_std", "float", description="across folds"),
            dg.TableColumn("stability", "float", description="share of folds in the top n"),
            dg.TableColumn("selected", "bool"),
            dg.TableColumn(
                "status", "string", description="selected, ranked out, pruned (see pruned)"
            ),
        ]
    )
    return dg.MetadataValue.table(records, schema)


def _pruned(result) -> str:
    """The features pruned before ranking, each with the kept feature it duplicated."""
    table = result.table
    pruned = table[table["rank"].isna()].sort_values("feature")
    if pruned.empty:
        return "none: no pair of candidates above the correlation bound"
    return markdown_table(["feature", "why"], pruned[["feature", "reason"]].itertuples(index=False))


def _importance(result, n_select: int) -> str:
    """The ranking as a bar chart, pruned features listed apart (they have no importance)."""
    table = result.table
    ranked = table[table["rank"].notna()]
    pruned = table[table["rank"].isna()].sort_values("feature")
    names = [
        f"{name} (re-admitted)" if kept else name
        for name, kept in zip(pruned["feature"], pruned["selected"], strict=True)
    ]
    png = importance_png(
        ranked[["feature", "importance_mean", "importance_std", "selected"]],
        names,
        n_select,
        f"permutation importance on the training window's folds ({len(ranked)} ranked)",
    )
    return png_markdown(png, "importance")


class SelectionRunConfig(dg.Config):
    """Selection settings a run may override (the launchpad, or tests on small data)."""

    # None: the project's split (SIGNALS_TRAIN_END / SIGNALS_VALIDATION_END).
    train_end: str | None = None
    validation_end: str | None = None
    # Defaults are SelectionConfig's, so the two cannot drift apart.
    horizon: int = SelectionConfig.horizon
    n_select: int = SelectionConfig.n_select
    folds: int = SelectionConfig.folds
    repeats: int = SelectionConfig.repeats
    max_iter: int = SelectionConfig.max_iter
    seed: int = SelectionConfig.seed


@dg.asset(
    group_name="features",
    deps=[dg.AssetDep("ohlcv", partition_mapping=BASE_FEATURE_PARTITIONS)],
    ins={"features": dg.AssetIn(partition_mapping=BASE_FEATURE_PARTITIONS)},
    io_manager_key="parquet_io_manager",
    kinds={"sklearn", "parquet"},
)
def selected_features(
    context: dg.AssetExecutionContext,
    config: SelectionRunConfig,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
) -> pd.DataFrame:
    """The 50 strongest of the 79 candidates, chosen on the training window only.

    Ranking, fold stability and each dropped feature's reason are in the metadata, with the
    uplift the selection claims measured on the validation window, whichever way it goes.
    """
    overrides = config.model_dump()
    overrides["train_end"] = config.train_end or project.train_end
    overrides["validation_end"] = config.validation_end or project.validation_end
    cfg = SelectionConfig(timeframe=BASE_TIMEFRAME, **overrides)
    # The default label rule with the configured time limit (what lstm_model trains on).
    return select_on(
        context, cfg, database, candle_source, features, LabelRule(horizon=cfg.horizon)
    )


def select_on(
    context: dg.AssetExecutionContext,
    cfg: SelectionConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    rule: LabelRule,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Select among `names` (default: all 79) on `cfg.timeframe`'s features, labelled by
    `rule`, and describe the selection in the run's metadata; returns the ranking table."""
    names = names if names is not None else feature_names()
    cfg = replace(cfg, n_select=min(cfg.n_select, len(names)))
    candles = {
        symbol: stored_candles(database, candle_source, market, cfg.timeframe)
        for market, symbol in SYMBOLS_BY_MARKET_ID.items()
    }
    data = attach_labels(features, candles, cfg.timeframe, rule)
    result = select_features(data, names, cfg)
    train_end = pd.Timestamp(cfg.train_end, tz="UTC")
    data["split"] = "train"
    data.loc[data["timestamp"] > train_end, "split"] = "after train end"
    balance = class_balance(data, ["market", "split"])
    uplift = result.uplift
    context.add_output_metadata(
        {
            "selected": len(result.selected),
            "ranking": _ranking_table(result),
            "importance": dg.MetadataValue.md(_importance(result, cfg.n_select)),
            "pruned": dg.MetadataValue.md(_pruned(result)),
            "uplift": dg.MetadataValue.json(uplift),
            "fold_rank_agreement": round(result.fold_rank_agreement, 3),
            "class_balance": dg.MetadataValue.md(_markdown(balance)),
            "config": dg.MetadataValue.json(result.config),
        }
    )
    return result.table
