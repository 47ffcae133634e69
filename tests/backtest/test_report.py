"""The report: a real PNG and narrow markdown tables naming every strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.backtest import BacktestConfig, always_long_decisions, buy_and_hold, run_backtest
from pipeline.backtest.report import cost_figures, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_report_writes_png_and_table_with_every_strategy(tmp_path: Path, sample_frames) -> None:
    cfg = BacktestConfig(horizon=1)
    frame = sample_frames["BNBUSDT"].iloc[:1500]
    rng = np.random.default_rng(3)
    results = {
        "lstm": run_backtest(frame, rng.choice([-1, 0, 1], size=len(frame)), cfg),
        "always_long": run_backtest(frame, always_long_decisions(len(frame)), cfg),
        "buy_and_hold": buy_and_hold(frame, cfg),
        # Several markets of one strategy are pooled into one row.
        "logistic": {
            m: run_backtest(f.iloc[:1500], rng.choice([-1, 0, 1], size=1500), cfg)
            for m, f in sample_frames.items()
            if m in ("BTCUSDT", "ETHUSDT")
        },
    }
    report = write_report(results, tmp_path / "out", "BNB 1h, H = 1")
    assert report.png_path.read_bytes()[:8] == PNG_SIGNATURE
    text = report.markdown_path.read_text()
    for name in results:
        assert f"| {name} |" in text
        assert f"| {name} |" in report.table
    assert "gbm" in text.split("Baselines missing")[1]  # the absent baseline is named
    assert report.metrics["logistic"]["markets"] == 2
    assert report.metrics["buy_and_hold"]["trades"] == 1
    assert "0.0500% a side" in text


def test_report_tables_are_narrow_and_costs_add_up(tmp_path: Path, sample_frames) -> None:
    cfg = BacktestConfig(horizon=1, slippage_bps=2.0)
    frame = sample_frames["BTCUSDT"].iloc[:800]
    rng = np.random.default_rng(5)
    results = {
        "lstm": run_backtest(frame, rng.choice([-1, 0, 1], size=len(frame)), cfg),
        "flat": run_backtest(frame, np.zeros(len(frame), dtype=np.int8), cfg),
    }
    report = write_report(results, tmp_path, "BTC")
    assert list(report.tables) == ["returns", "trades", "costs"]
    for table in report.tables.values():
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert rows and all(line.count("|") - 1 <= 7 for line in rows)  # strategy + 6 at most
        assert "| lstm |" in table and "| flat |" in table
        assert table in report.table and table in report.markdown_path.read_text()
    costs = cost_figures(results["lstm"])
    trades = results["lstm"].trades
    assert costs["trades"] == len(trades) > 0
    assert costs["costs_per_trade"] > 0
    assert costs["gross_per_trade"] - costs["costs_per_trade"] == pytest.approx(
        trades["net_return"].mean()
    )
    assert cost_figures(results["flat"])["trades"] == 0
    assert "| flat | 0 | n/a | n/a | n/a |" in report.tables["costs"]
