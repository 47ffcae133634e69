"""features and selected_features through Dagster, in-process, on a slice of the sample data."""

import dagster as dg
import pytest

from assets.features import features, market_factor, selected_features
from assets.market_data import ohlcv
from pipeline.features.registry import feature_names
from pipeline.partitions import market_partitions, partition_key, timeframe_partitions
from resources.io_managers import partition_name

# The session's chain of assets (tests/conftest.py) is built once, on one worker.
pytestmark = pytest.mark.xdist_group("chain")

ASSETS = [ohlcv, market_factor, features, selected_features]
END = 1640995200000  # 2022-01-01: a little over a year of hours per market
SELECTION = {
    "train_end": "2021-09-30",
    "validation_end": "2021-12-31",
    "folds": 2,
    "repeats": 1,
    "max_iter": 20,
}


@pytest.fixture(scope="module")
def chain(chain_run):
    return chain_run.results, chain_run.store


def test_features_partition_has_the_registry_columns(chain) -> None:
    results, store = chain
    frame = store.read(partition_name("features", partition_key("BTCUSDT", "1h")))
    assert list(frame.columns) == ["market", "timestamp", *feature_names()]
    assert (frame["market"] == "BTC/USDT:USDT").all()
    meta = results[("features", partition_key("BTCUSDT", "1h"))].get_asset_materialization_events()
    values = meta[0].materialization.metadata
    assert values["rows"].value == len(frame)
    assert 0 < values["complete_rows"].value < len(frame)  # warm-up rows are kept, as NaN


def test_selection_metadata_has_ranking_and_uplift(chain) -> None:
    results, store = chain
    result = results[("selected_features", None)]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["selected"].value == 50
    ranking = meta["ranking"].value
    assert len(ranking.records) == 79
    assert sum(r.data["selected"] for r in ranking.records) == 50
    # A feature pruned before ranking has no rank and no importance: empty, not -1 and 0,
    # and says so; the ranking's cells are short (the reasons have a table of their own).
    ranked = [r.data for r in ranking.records if r.data["rank"] is not None]
    pruned = [r.data for r in ranking.records if r.data["rank"] is None]
    assert sorted(r["rank"] for r in ranked) == list(range(1, len(ranked) + 1))
    assert pruned and all(r["importance"] is None and not r["selected"] for r in pruned)
    assert all(r["status"] == "pruned" for r in pruned)
    assert all(r["importance"] is not None for r in ranked)
    assert {r["status"] for r in ranked} == {"selected", "ranked out"}
    assert all(r["status"] == ("selected" if r["selected"] else "ranked out") for r in ranked)
    assert len(ranking.schema.columns) == 7 and "reason" not in ranking.records[0].data
    reasons = meta["pruned"].value.splitlines()
    assert reasons[0] == "| feature | why |" and len(reasons) == 2 + len(pruned)
    assert all(f"| {r['feature']} | \\|ρ\\| = " in meta["pruned"].value for r in pruned)
    image = meta["importance"].value
    assert image.startswith("![importance](data:image/png;base64,")
    uplift = meta["uplift"].value
    assert uplift["validation_rows"] > 0
    assert {"all_79", "selected_50"} <= set(uplift)
    table = store.read("selected_features.parquet")
    assert table["selected"].sum() == 50


def test_lineage_is_explicit() -> None:
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    features_key = dg.AssetKey("features")
    assert graph.get(features_key).parent_keys == {
        dg.AssetKey("ohlcv"),
        dg.AssetKey("market_factor"),
    }
    assert graph.get(dg.AssetKey("selected_features")).parent_keys == {
        dg.AssetKey("ohlcv"),
        features_key,
    }


def _upstream(mapping, downstream_def, key, upstream_def) -> set[str]:
    subset = downstream_def.subset_with_partition_keys([key]) if downstream_def else None
    mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
        subset, downstream_def, upstream_def
    )
    return {str(k) for k in mapped.partitions_subset.get_partition_keys()}


def test_partition_mappings_read_what_the_computation_reads() -> None:
    """Same market's timeframes for features; every market's timeframe for the factor."""
    from assets import features as module
    from pipeline.partitions import ohlcv_partitions

    btc_1h = partition_key("BTCUSDT", "1h")
    assert _upstream(
        module._SAME_MARKET_ALL_TIMEFRAMES, ohlcv_partitions, btc_1h, ohlcv_partitions
    ) == {str(partition_key("BTCUSDT", tf)) for tf in timeframe_partitions.get_partition_keys()}
    assert _upstream(
        module._ALL_MARKETS_OF_TIMEFRAME, timeframe_partitions, "1h", ohlcv_partitions
    ) == {str(partition_key(m, "1h")) for m in market_partitions.get_partition_keys()}
    assert _upstream(
        module._ALL_MARKETS_OF_TIMEFRAME, ohlcv_partitions, btc_1h, timeframe_partitions
    ) == {"1h"}
