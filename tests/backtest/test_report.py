"""The report: a real PNG and a markdown table naming every strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.backtest import BacktestConfig, always_long_decisions, buy_and_hold, run_backtest
from pipeline.backtest.report import write_report

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
