"""The ohlcv asset, its checks and its schedule, run for real through Dagster."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.market_data import FRESHNESS_CHECK, GAPS_CHECK, SCHEMA_CHECK, ohlcv
from pipeline.data.csv_source import CandleFolder
from pipeline.data.timeframes import parse_date_ms
from pipeline.definitions import defs
from pipeline.partitions import partition_key
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.schedules import ohlcv_refresh_schedule
from pipeline.store.candles import load_candles
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from tests.helpers.folders import write_folder

SYM = "BTC/USDT:USDT"
END_OF_SMALL = "2021-01-31T00:30:00Z"  # small_dir's last hour closed at 00:00


def resources(database_url: str, **source: object) -> dict:
    return {
        "database": PostgresResource(url=database_url),
        "candle_source": CandleSourceResource(since="2020-01-01", retry_backoff_s=0.01, **source),
    }


def materialize(key: dg.MultiPartitionKey, res: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ohlcv],
        partition_key=key,
        resources=res,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture()
def replay(small_dir: Path):
    with ReplayServer(ReplayExchange(small_dir, ReplayClock(parse_date_ms(END_OF_SMALL)))) as s:
        yield s


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("ohlcv_job") is not None


def test_one_market_through_dagster_stores_the_source_rows_and_checks_pass(
    database_url: str, replay: ReplayServer, small_dir: Path, db
) -> None:
    res = resources(database_url, source="ccxt", api_url=replay.url)
    folder = CandleFolder(small_dir)
    for timeframe in ("1h", "4h", "1d"):
        result = materialize(partition_key("BTCUSDT", timeframe), res)
        assert result.success
        assert checks(result) == {SCHEMA_CHECK: True, FRESHNESS_CHECK: True, GAPS_CHECK: True}
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        with db.connection() as conn:
            stored = load_candles(conn, "binanceusdm", SYM, timeframe)
        assert meta["rows_added"].value == len(stored) > 0
        pd.testing.assert_frame_equal(stored, folder.read(SYM, timeframe))
    again = materialize(partition_key("BTCUSDT", "1h"), res)
    assert (
        again.get_asset_materialization_events()[0].materialization.metadata["rows_added"].value
        == 0
    )


def test_freshness_fails_when_the_clock_moves_on(database_url, replay: ReplayServer) -> None:
    res = resources(database_url, source="ccxt", api_url=replay.url)
    materialize(partition_key("BTCUSDT", "1h"), res)
    replay.exchange.clock.set(parse_date_ms("2021-02-10"))
    stale = materialize(partition_key("BTCUSDT", "1h"), res)
    assert stale.success
    assert checks(stale)[FRESHNESS_CHECK] is False


def test_gaps_warn(database_url: str, tmp_path: Path, sample_frames) -> None:
    hours = sample_frames["BTCUSDT"].iloc[:200].drop(index=[50, 51]).reset_index(drop=True)
    folder = write_folder(tmp_path / "gappy", {"BTCUSDT": hours})
    result = materialize(
        partition_key("BTCUSDT", "1h"),
        resources(database_url, source="csv", data_dir=str(folder)),
    )
    assert result.success
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == GAPS_CHECK)
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["missing_candles"].value == 2


def test_schema_check_fails_on_bad_stored_rows(database_url, small_dir: Path, db) -> None:
    res = resources(database_url, source="csv", data_dir=str(small_dir))
    assert checks(materialize(partition_key("BTCUSDT", "1h"), res))[SCHEMA_CHECK] is True
    with db.connection() as conn:  # someone writes a bad candle around the validation
        conn.execute("UPDATE candles SET high = low / 2 WHERE open_time = '2021-01-05T00:00Z'")
        conn.commit()
    result = materialize(partition_key("BTCUSDT", "1h"), res)
    assert checks(result)[SCHEMA_CHECK] is False


def test_a_malformed_batch_fails_the_run_and_writes_nothing(
    database_url: str, tmp_path: Path, sample_frames, db
) -> None:
    hours = sample_frames["BTCUSDT"].iloc[:100].copy()
    hours.loc[60, "high"] = hours.loc[60, "close"] / 2
    folder = write_folder(tmp_path / "bad", {"BTCUSDT": hours})
    result = materialize(
        partition_key("BTCUSDT", "1h"), resources(database_url, source="csv", data_dir=str(folder))
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "high_at_least_open_and_close" in failure.step_failure_data.error.message
    with db.connection() as conn:
        assert load_candles(conn, "binanceusdm", SYM, "1h").empty


def test_schedule_requests_the_timeframes_that_just_closed() -> None:
    def requested(tick: str) -> set[str]:
        context = dg.build_schedule_context(scheduled_execution_time=pd.Timestamp(tick))
        runs = list(ohlcv_refresh_schedule(context))
        assert len({r.run_key for r in runs}) == len(runs)
        return {r.partition_key.keys_by_dimension["timeframe"] for r in runs}

    assert requested("2021-01-01T09:03:00Z") == {"1h"}
    assert requested("2021-01-01T08:03:00Z") == {"1h", "4h"}
    assert requested("2021-01-02T00:03:00Z") == {"1h", "4h", "1d"}
