"""The default label rule, chosen on training data only, by `pipeline.evaluation.label_choice`.

Runs the written rule (grid of time limit T × barrier width k × margin, the logistic proxy
on the inner training split, the validation net Sharpe of its replay) on the first fit window
of the standard walk-forward (five sample markets, fit up to 2021-12-31 less the embargo:
nothing of the 2022–2023 test years is read) and prints every rule's validation figures.
The package defaults in `pipeline.features.labels` are the rule it prints as chosen.

    .venv/bin/python bench/label_choice.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

from harness import default_data_dir

from pipeline.backtest.config import BacktestConfig
from pipeline.data.csv_source import CandleFolder
from pipeline.evaluation.label_choice import choose_label_rule
from pipeline.evaluation.walk_forward import EvaluationConfig, fold_plan
from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features
from pipeline.features.registry import feature_names
from pipeline.tables import markdown_table

MARKETS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--train-start", default="2020-10-23")
    parser.add_argument("--train-end", default="2021-12-31")
    parser.add_argument("--test-start", default="2022-01-01", help="only to place the embargo")
    args = parser.parse_args(argv)
    folder = CandleFolder(args.data_dir)
    candles = {symbol_from_id(m): folder.read(symbol_from_id(m)) for m in MARKETS}
    cfg = EvaluationConfig(
        markets=tuple(candles),
        train_start=args.train_start,
        train_end=args.train_end,
        test_start=args.test_start,
        test_end="2023-12-31",
        folds=8,
    )
    plan = fold_plan(cfg)[0]
    started = time.perf_counter()
    features = compute_features(candles, "1h", basket=cfg.markets)
    choice = choose_label_rule(
        features,
        candles,
        feature_names(),
        timeframe="1h",
        fit_start=plan["fit_start"],
        train_end=plan["train_end"],
        fit_end=plan["fit_end"],
        costs=BacktestConfig(),
        log=lambda m: print(m, file=sys.stderr),
    )
    print(
        f"fit {plan['fit_start']:%Y-%m-%d} … {plan['fit_end']:%Y-%m-%d}, inner train to "
        f"{plan['train_end']:%Y-%m-%d}; {time.perf_counter() - started:.0f} s"
    )
    header = ["T", "k", "margin", "no-trade %", "trades", "precision %", "net win %", "net %"]
    print(
        markdown_table(
            [*header, "Sharpe", "PF", "chosen"],
            (
                [
                    r.horizon,
                    r.barrier_k,
                    r.margin,
                    f"{100 * r.no_trade_share:.1f}",
                    r.trades,
                    f"{100 * r.precision:.1f}",
                    f"{100 * r.net_win_rate:.1f}",
                    f"{100 * r.total_return:+.1f}",
                    f"{r.sharpe:.2f}",
                    f"{r.profit_factor:.2f}",
                    "◀" if r.chosen else "",
                ]
                for r in choice.table.itertuples()
            ),
        )
    )
    print(f"chosen: {choice.rule} (enough trades: {choice.enough_trades})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
