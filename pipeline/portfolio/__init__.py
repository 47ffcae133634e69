"""The portfolio layer: every market's score at a decision time → target weights.

Pure (numpy only, no Dagster, no torch): the backtest, `signals evaluate`, the Dagster assets
and live execution all call this one path, so what is evaluated is what trades.
"""
