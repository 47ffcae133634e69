"""The resting-exit rule (`pipeline.backtest.triggers`) is the backtest kernel's barrier rule:
for any candles, a stop and a take-profit triggered candle by candle exit where, when and how
the kernel's trade does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.backtest.kernel import replay
from pipeline.backtest.rows import EXIT_END
from pipeline.backtest.triggers import (
    STOP,
    TAKE_PROFIT,
    Candle,
    closed_candles,
    fill_price,
    in_fill_order,
)
from pipeline.features.barriers import EXIT_BOTH, EXIT_LOWER, EXIT_UPPER

HOUR = 3_600_000


@st.composite
def paths(draw):
    """A few candles of a random walk with gaps at the opens (the case the rule must get
    right: a stop gapped through fills at the worse open)."""
    n = draw(st.integers(3, 12))
    price = 100.0
    rows = []
    for _ in range(n):
        open_ = price * (1 + draw(st.floats(-0.03, 0.03)))
        close = open_ * (1 + draw(st.floats(-0.04, 0.04)))
        high = max(open_, close) * (1 + draw(st.floats(0, 0.03)))
        low = min(open_, close) * (1 - draw(st.floats(0, 0.03)))
        rows.append((open_, high, low, close))
        price = close
    return np.array(rows)


def _by_triggers(ohlc: np.ndarray, side: int, width: float):
    """Enter at candle 1's open; rest the levels; trigger candle by candle, stops first."""
    entry = ohlc[1, 0]
    upper, lower = entry * (1 + width), entry * (1 - width)
    exit_side = "sell" if side > 0 else "buy"
    orders = [(STOP, lower if side > 0 else upper), (TAKE_PROFIT, upper if side > 0 else lower)]
    for k in range(1, len(ohlc)):
        candle = Candle(k * HOUR, *ohlc[k, :3])
        for kind, level in in_fill_order(orders, lambda o: o[0]):
            price = fill_price(kind, exit_side, level, candle)
            if price is not None:  # the first fill closes the position; its sibling expires
                return k, kind, price
    return None


@settings(max_examples=300, deadline=None)
@given(paths(), st.sampled_from([1, -1]), st.floats(0.002, 0.05))
def test_triggers_exit_where_when_and_how_the_kernel_does(ohlc, side, width) -> None:
    n = len(ohlc)
    ts = np.arange(n, dtype=np.int64) * HOUR
    decisions = np.zeros(n, dtype=np.int8)
    decisions[0] = side
    widths = np.full(n, width)
    limit = np.full(n, n + 5, dtype=np.int64)  # no time exit inside the path
    _, _, rows, count, _ = replay(
        ts, ohlc[:, 0], ohlc[:, 1], ohlc[:, 2], ohlc[:, 3], decisions, widths,
        np.zeros(n), HOUR, limit, 0.0, 0.0, 0.0, 1.0, False,
    )  # fmt: skip
    assert count == 1
    end, kernel_side, kernel_price, kernel_kind = rows[0, 1], rows[0, 2], rows[0, 4], rows[0, 5]
    assert kernel_side == side
    found = _by_triggers(ohlc, side, width)
    if kernel_kind == EXIT_END:
        assert found is None
        return
    assert found is not None
    k, kind, price = found
    assert k == end and price == kernel_price
    stopped = kernel_kind == EXIT_BOTH or kernel_kind == (EXIT_LOWER if side > 0 else EXIT_UPPER)
    assert kind == (STOP if stopped else TAKE_PROFIT)


def test_a_stop_fills_at_the_worse_open_a_take_profit_at_its_level() -> None:
    gap_down = Candle(0, open=95.0, high=96.0, low=90.0)
    assert fill_price(STOP, "sell", 97.0, gap_down) == 95.0  # a long's stop, gapped through
    assert fill_price(TAKE_PROFIT, "buy", 97.0, gap_down) == 97.0  # a short's take-profit
    assert fill_price(STOP, "sell", 89.0, gap_down) is None
    with pytest.raises(ValueError, match="stop"):
        fill_price("limit", "sell", 97.0, gap_down)


def test_only_candles_closed_by_now_are_checked() -> None:
    rows = [[0, 1, 2, 0.5, 1, 0], [HOUR, 1, 2, 0.5, 1, 0], [2 * HOUR, 1, 2, 0.5, 1, 0]]
    assert [c.open_ms for c in closed_candles(rows, HOUR, 3 * HOUR - 1, HOUR)] == [HOUR]
    assert [c.open_ms for c in closed_candles(rows, 0, 3 * HOUR, HOUR)] == [0, HOUR, 2 * HOUR]
