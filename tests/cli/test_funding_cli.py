"""`signals ingest-funding` as a user runs it: a real process, database and replay exchange."""

import json
from pathlib import Path

import pandas as pd

from pipeline.replay.server import ReplayExchange, ReplayServer
from tests.cli.test_cli import run

T0 = 1609459200000


def test_help_says_what_it_does() -> None:
    out = run(["ingest-funding", "--help"], {})
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps lines
    for words in ("--markets", "--start", "--end", "resumes after its newest", "0.01 % per 8h"):
        assert words in text


def test_ingest_funding_twice_then_an_unknown_market(database_url: str, small_dir: Path) -> None:
    rows = [(T0 + 3, 0.0002), (T0 + 28_800_000 + 5, -0.0001)]
    pd.DataFrame(rows, columns=["funding_ms", "rate"]).to_csv(
        small_dir / "BTCUSDT_funding.csv", index=False
    )
    env = {"SIGNALS_DATABASE_URL": database_url}
    with ReplayServer(ReplayExchange(small_dir)) as server:
        args = ["ingest-funding", "--api-url", server.url, "--start", "2021-01-01"]
        args += ["--end", "2021-01-02"]
        out = run([*args, "--markets", "BTCUSDT,ETH/USDT:USDT", "--json"], env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {
            "exchange": "binanceusdm",
            "markets": [
                {
                    "market": "BTC/USDT:USDT",
                    "rows_added": 2,
                    "rows_total": 2,
                    "first": "2021-01-01T00:00:00Z",
                    "last": "2021-01-01T08:00:00Z",
                },
                {
                    "market": "ETH/USDT:USDT",
                    "rows_added": 4,  # the constant at 00, 08, 16 and the next 00 (= --end)
                    "rows_total": 4,
                    "first": "2021-01-01T00:00:00Z",
                    "last": "2021-01-02T00:00:00Z",
                },
            ],
        }
        again = run([*args, "--markets", "BTCUSDT"], env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == [
            "BTC/USDT:USDT",
            "funding",
            "+0",
            "total",
            "2",
            "2021-01-01T00:00:00Z",
            "→",
            "2021-01-01T08:00:00Z",
        ]
        bad = run([*args, "--markets", "BTCUSDT,SOLUSDT"], env)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.strip() == (
        "signals: error: unknown market SOL/USDT:USDT on binanceusdm: not a listed linear perpetual"
    )
