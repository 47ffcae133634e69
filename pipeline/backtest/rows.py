"""What the compiled replays write: how a trade ended, and the columns of a portfolio fill and
of its per-market attribution.

Plain constants, apart from the kernels (`kernel.py`, `portfolio_kernel.py`) so that code which
only reads the rows does not import numba: the kernels load when a replay runs.
"""

from __future__ import annotations

from pipeline.features.barriers import EXIT_BOTH, EXIT_LOWER, EXIT_TIME, EXIT_UPPER

# How a trade ended (the `exit_kind` column): the label's four, and two only a replay has.
EXIT_REVERSE, EXIT_END = 5, 6
EXIT_NAMES = {
    EXIT_UPPER: "upper barrier",
    EXIT_LOWER: "lower barrier",
    EXIT_BOTH: "both (stop first)",
    EXIT_TIME: "time limit",
    EXIT_REVERSE: "reversed",
    EXIT_END: "gap or end",
}

# Columns of a fill row, and of the per-market attribution.
FILL_CANDLE, FILL_MARKET, FILL_QUANTITY, FILL_PRICE, FILL_FEE, FILL_HELD = range(6)
PNL_PRICE, PNL_SLIPPAGE, PNL_FEES, PNL_FUNDING = range(4)
