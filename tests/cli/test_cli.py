"""The `signals` command as a user runs it: real processes, real database, real HTTP."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.jobs import MAIN_JOB_SEQUENCE

SIGNALS = [sys.executable, "-m", "pipeline.cli"]


def _stoppable() -> None:
    """The served process stops on SIGTERM whatever its parent ignores. A suite started as a
    background job ignores SIGINT, and Dagster's in-process runs map SIGTERM to SIGINT's
    handler (dagster._utils.interrupts), so a worker that ran one ignores SIGTERM too and
    would hand that on: `terminate` would then hang (seen in a full run started with `&`)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        SIGNALS + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_the_commands() -> None:
    out = run(["--help"], {})
    assert out.returncode == 0
    for command in ("ingest", "replay-exchange", "run", "db"):
        assert command in out.stdout
    assert "--markets" in run(["ingest", "--help"], {}).stdout


def test_ingest_json_summary(database_url: str, small_dir: Path) -> None:
    env = {"SIGNALS_DATABASE_URL": database_url}
    args = [
        "ingest",
        "--source",
        "csv",
        "--data-dir",
        str(small_dir),
        "--markets",
        "BTC/USDT:USDT,ETH/USDT:USDT",
        "--timeframes",
        "1h,1d",
        "--since",
        "2021-01-01",
        "--json",
    ]
    out = run(args, env)
    assert out.returncode == 0, out.stderr
    parts = json.loads(out.stdout)["partitions"]
    assert [(p["market"], p["timeframe"]) for p in parts] == [
        ("BTC/USDT:USDT", "1h"),
        ("BTC/USDT:USDT", "1d"),
        ("ETH/USDT:USDT", "1h"),
        ("ETH/USDT:USDT", "1d"),
    ]
    first = parts[0]
    assert set(first) == {
        "market",
        "timeframe",
        "rows_added",
        "rows_total",
        "first",
        "last",
        "gaps",
    }
    assert (first["rows_added"], first["rows_total"], first["gaps"]) == (720, 720, 0)
    assert (first["first"], first["last"]) == ("2021-01-01T00:00:00Z", "2021-01-30T23:00:00Z")
    again = json.loads(run(args, env).stdout)["partitions"]
    assert [p["rows_added"] for p in again] == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--markets", "DOGE/USDT:USDT", "--timeframes", "1h"], "unknown market DOGE/USDT:USDT"),
        (["--markets", "BTC/USDT:USDT", "--timeframes", "7h"], "unknown timeframe '7h'"),
        (["--markets", "BTC/USDT", "--timeframes", "1h"], "not a linear perpetual"),
    ],
)
def test_failures_exit_non_zero_with_one_line(database_url, small_dir, args, reason) -> None:
    out = run(
        ["ingest", "--source", "csv", "--data-dir", str(small_dir), *args],
        {"SIGNALS_DATABASE_URL": database_url},
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("signals: error: ")
    assert reason in lines[0]


def test_replay_exchange_command_serves_ccxt(database_url: str, small_dir: Path) -> None:
    server = subprocess.Popen(
        [
            *SIGNALS,
            "replay-exchange",
            "--data-dir",
            str(small_dir),
            "--port",
            "0",
            "--clock",
            "2021-01-15T00:00:00Z",
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_stoppable,
    )
    try:
        banner = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        out = run(
            [
                "ingest",
                "--source",
                "ccxt",
                "--api-url",
                url,
                "--markets",
                "ETH/USDT:USDT",
                "--timeframes",
                "4h",
                "--since",
                "2021-01-01",
                "--json",
            ],
            {"SIGNALS_DATABASE_URL": database_url},
        )
        assert out.returncode == 0, out.stderr
        part = json.loads(out.stdout)["partitions"][0]
        assert part["last"] == "2021-01-14T20:00:00Z"  # the clock hides later candles
        assert part["rows_added"] == 14 * 6
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_main_job_materialises_through_the_replay_exchange(
    database_url: str, small_dir: Path, tmp_path: Path
) -> None:
    env = {
        "SIGNALS_DATABASE_URL": database_url,
        "SIGNALS_DATA_DIR": str(small_dir),
        "SIGNALS_MARKETS": "BTC/USDT:USDT,ETH/USDT:USDT",
        "SIGNALS_TIMEFRAMES": "1d",
        "SIGNALS_SINCE": "2021-01-01",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    out = run(["run", "--assets", "ohlcv"], env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "materialised ohlcv;" in out.stdout
    # Served as of 24 h before the folder's last close (the clock the offline live recipe's
    # replay exchange starts at): the last day has not closed there, so 29 of its 30 days.
    assert re.search(r"BTC/USDT:USDT\s+1d\s+\+29\s+total 29", out.stdout)
    # ... and the candles are fresh against that clock (not years behind today).
    assert out.stdout.count("is_fresh=ok") == 2, out.stdout
    assert (tmp_path / "dagster" / "dagster.yaml").exists()


def test_features_list_prints_the_registry() -> None:
    listing = json.loads(run(["features", "--list", "--json"], {}).stdout)
    assert len(listing) == 79
    assert set(listing[0]) == {"name", "family", "timeframe", "params", "warmup"}
    assert listing[0]["name"] == "ret_1"
    text = run(["features", "--list"], {}).stdout
    assert text.count("\n") == 80  # header + 79


def test_features_matrix_from_a_folder(small_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "m.parquet"
    done = run(
        [
            "features",
            "--data-dir",
            str(small_dir),
            "--markets",
            "BTC/USDT:USDT,ETHUSDT",
            "--timeframe",
            "1h",
            "--out",
            str(out),
        ],
        {},
    )
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(out)
    assert list(frame.columns[:2]) == ["market", "timestamp"]
    assert frame.shape == (2 * 720, 81)
    assert frame["market"].unique().tolist() == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_main_job_runs_the_chain_for_one_market(
    database_url: str, sample_frames, tmp_path: Path
) -> None:
    from tests.helpers.folders import write_folder

    btc = sample_frames["BTCUSDT"]
    folder = write_folder(tmp_path / "btc", {"BTCUSDT": btc[btc["timestamp"] < 1640995200000]})
    env = {
        "SIGNALS_DATABASE_URL": database_url,
        "SIGNALS_DATA_DIR": str(folder),
        "SIGNALS_MARKETS": "BTC/USDT:USDT",
        "SIGNALS_SINCE": "2020-01-01",
        "SIGNALS_TRAIN_END": "2021-09-30",
        "SIGNALS_VALIDATION_END": "2021-12-31",
        "SIGNALS_MAX_EPOCHS": "2",
        "SIGNALS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    out = run(["run"], env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert (
        "materialised ohlcv, market_factor, features, selected_features, "
        "hyperparameter_study, lstm_model, backtest_report, production_model" in out.stdout
    )
    assert re.search(r"selected_features\s+50 selected\s+validation all_79: acc", out.stdout)
    assert re.search(
        r"hyperparameter_study  \d+/8 trials \(\d+ pruned\), best validation Sharpe "
        r"[+-]\d+\.\d\d: window \d+ hidden \d+",
        out.stdout,
    )
    # The default model: a seed ensemble of the size validation chose, one record.
    assert re.search(
        r"lstm_model  candidate \d+: 3 networks \(seeds \[0, 1, 2\]\) of \d+ parameters, "
        r"2 epochs",
        out.stdout,
    )
    assert "| buy_and_hold |" in out.stdout
    assert re.search(r"production_model  candidate \d+ (PROMOTED|REFUSED)", out.stdout)
    _runs_are_in_postgres(database_url, tmp_path / "dagster")


def _runs_are_in_postgres(database_url: str, dagster_home: Path) -> None:
    """Dagster's runs are in a database of their own on the project's server: as many rows
    there as the instance lists, and no SQLite file under the Dagster home."""
    import dagster as dg
    import psycopg

    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL, dagster_database_name
    from pipeline.store.studies import database_on_server

    dagster_db = database_on_server(database_url, dagster_database_name(database_url))
    with psycopg.connect(dagster_db) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    url = subprocess.run(
        [*SIGNALS, "db", "dagster-url"],
        env={**os.environ, "SIGNALS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    saved = os.environ.get(ENV_DAGSTER_PG_URL)
    os.environ[ENV_DAGSTER_PG_URL] = url
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            listed = instance.get_runs_count()
            storage = type(instance.run_storage).__name__
            jobs = {run.job_name for run in instance.get_runs()}
    finally:
        if saved is None:
            os.environ.pop(ENV_DAGSTER_PG_URL)
        else:
            os.environ[ENV_DAGSTER_PG_URL] = saved
    assert storage == "PostgresRunStorage"
    assert rows == listed >= 8  # one run per step of the chain, at least
    # Each run belongs to a named job of the Definitions (so the UI can re-execute it), none
    # to Dagster's ephemeral asset job.
    assert jobs == {job.name for job in MAIN_JOB_SEQUENCE}
    assert not [p for p in dagster_home.rglob("*") if p.suffix in (".db", ".sqlite")]


def test_kill_switch_command_sets_and_clears_the_file(tmp_path: Path) -> None:
    env = {"SIGNALS_HOME": str(tmp_path)}
    on = run(["kill", "on"], env)
    assert on.returncode == 0 and "ON" in on.stdout
    assert (tmp_path / "KILL_SWITCH").exists()
    assert "ON" in run(["kill", "status"], env).stdout
    off = run(["kill", "off"], env)
    assert off.returncode == 0 and "off" in off.stdout
    assert not (tmp_path / "KILL_SWITCH").exists()


def test_live_without_replay_points_at_dagster_and_replay_needs_a_model(
    database_url: str, small_dir: Path
) -> None:
    out = run(["live"], {"SIGNALS_DATABASE_URL": database_url})
    assert out.returncode == 1 and "new_candle_sensor" in out.stderr
    out = run(
        ["live", "--replay", "--data-dir", str(small_dir), "--start", "2021-01-20"],
        {"SIGNALS_DATABASE_URL": database_url},
    )
    assert out.returncode == 1
    assert "has no candles for" in out.stderr or "no model to replay" in out.stderr


def test_replay_exchange_clock_starts_before_the_data_ends(small_dir: Path) -> None:
    """Without --clock, a folder that ends in the past is replayed from a day before its
    last close (the sensor then has candles to see), and the banner says so."""
    import urllib.request

    from pipeline.replay.clock import sample_start_ms

    hour = 3_600_000
    assert sample_start_ms(10 * 24 * hour + 1, 100 * 24 * hour) == 9 * 24 * hour
    assert sample_start_ms(100 * 24 * hour, 50 * 24 * hour) is None  # data reaches now
    server = subprocess.Popen(
        [*SIGNALS, "replay-exchange", "--data-dir", str(small_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_stoppable,
    )
    try:
        banner = server.stdout.readline()
        assert "clock 2021-01-30 00:00 UTC, 24 h before the data's last candle closes" in banner
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        with urllib.request.urlopen(f"{url}/fapi/v1/time", timeout=10) as answer:
            now = json.loads(answer.read())["serverTime"]
        assert 1611964800000 <= now < 1611964800000 + 60_000  # 2021-01-30T00:00Z, running
    finally:
        server.terminate()
        server.wait(timeout=10)
