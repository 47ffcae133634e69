"""The replay: hand-computed trades, no look-ahead, and each rule of the state machine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest import BacktestConfig, buy_and_hold, run_backtest
from pipeline.features.barriers import (
    EXIT_BOTH,
    EXIT_LOWER,
    EXIT_TIME,
    EXIT_UPPER,
)
from pipeline.features.labels import LabelRule, market_outcomes

HOUR = 3_600_000
T0 = 1_600_000_000 // 3600 * 3600 * 1000  # on the hour grid

# The hand-computed series: candle i = (open, close).
HAND = [(100, 100), (100, 104), (104, 110), (110, 108), (108, 100), (100, 95), (95, 98), (101, 103)]
# Long decided at close 0 (enter open 1 = 100, H = 2: exit open 3 = 110);
# short decided at close 4 (enter open 5 = 100, exit open 7 = 101). Decision at 7 has no candle.
HAND_DECISIONS = [1, 0, 0, 0, -1, 0, 0, 1]


def candles(bars: list[tuple[float, float]], hours: list[int] | None = None) -> pd.DataFrame:
    hours = hours if hours is not None else list(range(len(bars)))
    o = np.array([b[0] for b in bars], dtype=float)
    c = np.array([b[1] for b in bars], dtype=float)
    return pd.DataFrame(
        {
            "timestamp": np.array([T0 + h * HOUR for h in hours], dtype=np.int64),
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": 1.0,
        }
    )


def flat(n: int, hours: list[int] | None = None) -> pd.DataFrame:
    """Prices 100 + i: every open and close distinct, so prices identify candles."""
    return candles([(100.0 + i, 100.5 + i) for i in range(n)], hours)


def cfg(**kw) -> BacktestConfig:
    return BacktestConfig(**{"horizon": 2, "funding_rate": 0.0, **kw})


# ---------------------------------------------------------------- hand-computed series


def test_hand_computed_trades_fees_equity_and_win_rate() -> None:
    r = run_backtest(candles(HAND), np.array(HAND_DECISIONS), cfg(fee=0.0005))
    t = r.trades
    # Trade 1, long 100 → 110: gross = 0.1; fees = 0.0005·(1 + 110/100) = 0.00105;
    # net = 0.09895. Trade 2, short 100 → 101: gross = −0.01; fees = 0.0005·(1 + 1.01)
    # = 0.001005; net = −0.011005.
    assert t["side"].tolist() == [1, -1]
    assert t["entry_price"].tolist() == [100.0, 100.0]
    assert t["exit_price"].tolist() == [110.0, 101.0]
    assert t["gross_return"].to_numpy() == pytest.approx([0.1, -0.01], abs=1e-12)
    assert t["costs"].to_numpy() == pytest.approx([0.00105, 0.001005], abs=1e-12)
    assert t["net_return"].to_numpy() == pytest.approx([0.09895, -0.011005], abs=1e-12)
    assert t["entry_time"].tolist() == [
        pd.Timestamp(T0 + h * HOUR, unit="ms", tz="UTC") for h in (1, 5)
    ]
    assert t["exit_time"].tolist() == [
        pd.Timestamp(T0 + h * HOUR, unit="ms", tz="UTC") for h in (3, 7)
    ]
    # Equity marked at each close (entry fee paid, exit costs not yet):
    # 0: flat 1.0 | 1: 1 + 0.04 − 0.0005 = 1.0395 | 2: 1 + 0.10 − 0.0005 = 1.0995
    # 3, 4: realised 1.09895 | 5: short from 100, close 95: 1.09895·(1 + 0.05 − 0.0005)
    # 6: close 98: 1.09895·(1 + 0.02 − 0.0005) | 7: realised 1.09895·(1 − 0.011005).
    expected = [
        1.0,
        1.0395,
        1.0995,
        1.09895,
        1.09895,
        1.09895 * 1.0495,
        1.09895 * 1.0195,
        1.09895 * 0.988995,
    ]
    assert r.equity.to_numpy() == pytest.approx(expected, abs=1e-12)
    assert r.equity.iloc[-1] == pytest.approx(1.08685605525, abs=1e-12)
    assert r.metrics["win_rate"] == 0.5
    assert r.metrics["trades"] == 2
    assert r.metrics["total_return"] == pytest.approx(0.08685605525, abs=1e-12)
    assert r.position.tolist() == [0, 1, 1, 0, 0, -1, -1, 0]
    assert r.metrics["exposure"] == 4 / 8
    assert r.metrics["coverage"] == 3 / 8
    assert str(r.equity.index.tz) == "UTC"


def test_hand_computed_slippage_is_adverse_on_both_fills() -> None:
    r = run_backtest(candles(HAND), np.array(HAND_DECISIONS), cfg(fee=0.0005, slippage_bps=10))
    # Long: fills 100·1.001 = 100.1 and 110·0.999 = 109.89.
    # Short: sells at 100·0.999 = 99.9, buys back at 101·1.001 = 101.101.
    long_ratio, short_ratio = 109.89 / 100.1, 101.101 / 99.9
    net = [
        (long_ratio - 1) - 0.0005 * (1 + long_ratio),
        -(short_ratio - 1) - 0.0005 * (1 + short_ratio),
    ]
    assert r.trades["net_return"].to_numpy() == pytest.approx(net, abs=1e-12)
    assert r.trades["gross_return"].to_numpy() == pytest.approx([0.1, -0.01], abs=1e-12)
    assert r.equity.iloc[-1] == pytest.approx((1 + net[0]) * (1 + net[1]), abs=1e-12)
    assert (r.trades["costs"] > 0.00105).all()  # slippage adds to the fees


def test_funding_is_charged_at_each_settlement_crossed_and_only_then() -> None:
    # Candles from 12:00 UTC; settlements at 16:00 (candle 4's open) and 00:00 (candle 12's).
    frame = flat(14)
    assert pd.Timestamp(frame["timestamp"].iloc[4], unit="ms").hour == 16
    d = np.zeros(14, dtype=np.int8)
    d[1] = 1  # long in at open 2 (14:00), out at open 4 (16:00): open at 16:00, pays it
    d[4] = -1  # short in at open 5 (17:00), out at open 7 (20:00): no settlement inside
    d[9] = 1  # long in at open 10 (22:00), out at open 13 (01:00): pays 00:00 (open 12)
    r = run_backtest(frame, d, cfg(horizon=2, fee=0.0, funding_rate=0.0001))
    r3 = run_backtest(frame, d, cfg(horizon=3, fee=0.0, funding_rate=0.0001))
    o = frame["open"].to_numpy()
    # Funding is the rate on the notional at the settlement's open, per unit entry notional.
    assert r.trades["funding"].to_numpy() == pytest.approx(
        [0.0001 * o[4] / o[2], 0.0, 0.0001 * o[12] / o[10]], abs=1e-15
    )
    assert r3.trades["funding"].to_numpy() == pytest.approx(
        [0.0001 * o[4] / o[2], 0.0, 0.0001 * o[12] / o[10]], abs=1e-15
    )
    gross = r.trades["gross_return"].to_numpy()
    assert r.trades["net_return"].to_numpy() == pytest.approx(
        gross - r.trades["funding"].to_numpy(), abs=1e-15
    )
    # A short receives a positive rate: entered at 15:00, held over 16:00.
    d = np.zeros(14, dtype=np.int8)
    d[2] = -1
    short = run_backtest(frame, d, cfg(horizon=2, fee=0.0, funding_rate=0.0001))
    assert short.trades["funding"].iloc[0] == pytest.approx(-0.0001 * o[4] / o[3], abs=1e-15)
    # The exchange's rate wins where known; the constant fills the rest.
    history = [(int(frame["timestamp"].iloc[4]), 0.0003)]
    known = run_backtest(frame, d, cfg(horizon=2, fee=0.0), funding=history)
    assert known.trades["funding"].iloc[0] == pytest.approx(-0.0003 * o[4] / o[3], abs=1e-15)


def test_hand_computed_size_and_leverage_scale_returns_and_costs() -> None:
    r = run_backtest(
        candles(HAND), np.array(HAND_DECISIONS), cfg(fee=0.0005, position_size=0.5, leverage=4)
    )
    # f = 2: long net = 2·0.1 − 0.0005·2·2.1 = 0.1979; short = 2·(−0.01) − 0.0005·2·2.01.
    assert r.trades["net_return"].to_numpy() == pytest.approx([0.1979, -0.02201], abs=1e-12)


# ---------------------------------------------------------------- no look-ahead


def test_entry_is_the_next_open_not_the_decision_close() -> None:
    bars = list(HAND)
    base = run_backtest(candles(bars), np.array(HAND_DECISIONS), cfg())
    bars[1] = (90.0, 104.0)  # the open after decision 0
    moved_open = run_backtest(candles(bars), np.array(HAND_DECISIONS), cfg())
    assert moved_open.trades["entry_price"].iloc[0] == 90.0
    assert moved_open.trades["net_return"].iloc[0] != base.trades["net_return"].iloc[0]
    bars = list(HAND)
    bars[0] = (100.0, 50.0)  # the close at which decision 0 is taken
    moved_close = run_backtest(candles(bars), np.array(HAND_DECISIONS), cfg())
    assert moved_close.trades["entry_price"].iloc[0] == 100.0
    pd.testing.assert_frame_equal(moved_close.trades, base.trades)


def test_positions_depend_only_on_earlier_decisions() -> None:
    rng = np.random.default_rng(7)
    n = 300
    d = rng.choice([-1, 0, 1], size=n)
    for k in (1, 50, 151, 299):
        changed = d.copy()
        changed[k:] = rng.choice([-1, 0, 1], size=n - k)
        a = run_backtest(flat(n), d, cfg(horizon=4)).position.to_numpy()
        b = run_backtest(flat(n), changed, cfg(horizon=4)).position.to_numpy()
        assert np.array_equal(a[: k + 1], b[: k + 1])


def test_decisions_after_the_last_candle_are_impossible() -> None:
    with pytest.raises(ValueError, match="one decision per candle"):
        run_backtest(flat(5), np.zeros(6), cfg())
    last_only = run_backtest(flat(5), np.array([0, 0, 0, 0, 1]), cfg())
    assert last_only.metrics["trades"] == 0
    assert last_only.equity.tolist() == [1.0] * 5


def test_decisions_must_be_minus_one_zero_or_one() -> None:
    for bad in ([0, 2, 0], [0, 0.5, 0], [0, np.nan, 0]):
        with pytest.raises(ValueError, match="-1, 0 or"):
            run_backtest(flat(3), np.array(bad), cfg())


# ---------------------------------------------------------------- the rules


def test_hold_exits_at_the_open_h_candles_after_entry() -> None:
    r = run_backtest(flat(10), np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), cfg(horizon=3, fee=0))
    (t,) = r.trades.itertuples()
    assert (t.entry_price, t.exit_price) == (102.0, 105.0)  # open of 2 → open of 1 + 1 + 3
    assert r.position.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]


def test_same_side_decision_re_arms_the_hold_without_a_new_trade() -> None:
    d = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    r = run_backtest(flat(10), d, cfg(horizon=2))
    assert len(r.trades) == 1
    # Re-armed at decision 2: exit at the open of 2 + 1 + 2 = 5, one entry and one exit fee.
    assert r.trades["exit_price"].iloc[0] == 105.0
    assert r.trades["costs"].iloc[0] == pytest.approx(0.0005 * (1 + 105 / 101), abs=1e-15)
    assert r.position.tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def test_opposite_decision_reverses_at_the_next_open() -> None:
    r = run_backtest(flat(10), np.array([1, -1, 0, 0, 0, 0, 0, 0, 0, 0]), cfg(horizon=3))
    assert r.trades["side"].tolist() == [1, -1]
    assert r.trades["exit_time"].iloc[0] == r.trades["entry_time"].iloc[1]
    assert r.trades["exit_price"].iloc[0] == r.trades["entry_price"].iloc[1] == 102.0
    assert r.trades["exit_price"].iloc[1] == 105.0  # short held from decision 1: 1 + 1 + 3
    assert (r.trades["costs"] > 0).all()  # both legs pay fees
    assert r.position.tolist() == [0, 1, -1, -1, -1, 0, 0, 0, 0, 0]


def test_flat_decision_does_not_close_early() -> None:
    held = run_backtest(flat(8), np.array([1, 0, 0, 0, 0, 0, 0, 0]), cfg(horizon=4))
    assert held.position.tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    assert held.trades["exit_price"].iloc[0] == 105.0


def test_last_position_is_closed_at_the_last_close() -> None:
    r = run_backtest(flat(6), np.array([0, 0, 0, 1, 0, 0]), cfg(horizon=5, fee=0))
    (t,) = r.trades.itertuples()
    assert t.exit_price == 105.5  # close of the last candle, not a later open
    assert t.exit_time == pd.Timestamp(T0 + 6 * HOUR, unit="ms", tz="UTC")  # its close time
    assert r.equity.iloc[-1] == pytest.approx(105.5 / 104, abs=1e-12)


def test_position_is_closed_before_a_gap_and_the_decision_at_the_gap_is_void() -> None:
    hours = [0, 1, 2, 3, 5, 6, 7, 8]  # hour 4 missing: rows 3 | 4 straddle the gap
    d = np.array([0, 1, 0, 1, 0, 0, 0, 0])
    r = run_backtest(flat(8, hours), d, cfg(horizon=3, fee=0))
    (t,) = r.trades.itertuples()
    # Entered at open of row 2; the re-arm at row 3 cannot reach past the gap, so the trade
    # closes at row 3's close; the decision at row 3's close has no next candle: void.
    assert (t.entry_price, t.exit_price) == (102.0, 103.5)
    assert t.exit_time == pd.Timestamp(T0 + 4 * HOUR, unit="ms", tz="UTC")
    assert r.position.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    # After the gap, decisions act again on the next candle.
    d2 = np.array([0, 0, 0, 0, -1, 0, 0, 0])
    r2 = run_backtest(flat(8, hours), d2, cfg(horizon=3))
    assert r2.position.tolist() == [0, 0, 0, 0, 0, -1, -1, -1]


def test_timestamps_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        run_backtest(flat(4, [0, 1, 1, 2]), np.zeros(4), cfg())


def test_ruin_stops_trading_at_zero_equity() -> None:
    bars = [(100, 100), (100, 40), (40, 40), (40, 50), (50, 60), (60, 70)]
    d = np.array([1, 0, 1, 0, 0, 0])
    r = run_backtest(candles(bars), d, cfg(horizon=1, leverage=2, fee=0))
    # f = 2, long 100 → 40: −120 % of equity: ruined, the later long is never taken.
    assert r.metrics["trades"] == 1
    assert r.trades["net_return"].iloc[0] == -1.0
    assert r.equity.iloc[2:].tolist() == [0.0] * 4
    assert r.position.tolist() == [0, 1, 0, 0, 0, 0]


# ---------------------------------------------------------------- against a literal loop


def reference(ts: np.ndarray, d: np.ndarray, horizon: int, step: int):
    """The rules as written, one candle at a time: positions and (start, end, at_close, side)."""
    n = len(d)
    pos, trades = [0] * n, []
    side, start, exit_at = 0, -1, -1
    for k in range(n):
        if k > 0 and ts[k] - ts[k - 1] != step:
            if side:
                trades.append((start, k - 1, True, side))  # closed before the gap
            side = 0  # and d[k - 1] is void
        elif k > 0:
            dec = int(d[k - 1])
            if side and dec == side:
                exit_at = k + horizon
            elif side and exit_at == k:
                trades.append((start, k - 1, False, side))
                side = 0
            if side and dec == -side:
                trades.append((start, k - 1, False, side))
                side = 0
            if not side and dec:
                side, start, exit_at = dec, k, k + horizon
        pos[k] = side
    if side:
        trades.append((start, n - 1, True, side))
    return pos, trades


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_vectorised_schedule_matches_a_literal_loop(horizon: int) -> None:
    rng = np.random.default_rng(horizon)
    n = 3000
    hours = np.cumsum(rng.choice([1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3], size=n))  # ~15 % gaps
    frame = flat(n, hours.tolist())
    d = rng.choice([-1, 0, 1], size=n, p=[0.2, 0.6, 0.2])
    r = run_backtest(frame, d, cfg(horizon=horizon))
    pos, trades = reference(frame["timestamp"].to_numpy(), d, horizon, HOUR)
    assert r.position.tolist() == pos
    t = r.trades
    ts = frame["timestamp"].to_numpy()
    expected_entry = [pd.Timestamp(ts[s], unit="ms", tz="UTC") for s, *_ in trades]
    assert t["entry_time"].tolist() == expected_entry
    assert t["side"].tolist() == [side for *_, side in trades]
    exits = [
        frame["close"].iloc[e] if at_close else frame["open"].iloc[e + 1]
        for _, e, at_close, _ in trades
    ]
    assert t["exit_price"].tolist() == exits
    assert r.equity.iloc[-1] == pytest.approx(np.prod(1 + t["net_return"].to_numpy()), rel=1e-12)


def test_sample_market_equity_is_the_product_of_trades(sample_frames) -> None:
    frame = sample_frames["BTCUSDT"]
    d = np.random.default_rng(0).choice([-1, 0, 1], size=len(frame), p=[0.175, 0.65, 0.175])
    r = run_backtest(frame, d, BacktestConfig(horizon=3, slippage_bps=2, funding_rate=0.0001))
    pos, trades = reference(frame["timestamp"].to_numpy(), d, 3, HOUR)
    assert r.position.tolist() == pos
    assert len(r.trades) == len(trades)
    assert r.equity.iloc[-1] == pytest.approx(np.prod(1 + r.trades["net_return"]), rel=1e-10)
    assert 0.3 < r.metrics["coverage"] < 0.4


def test_buy_and_hold_is_one_trade_from_first_open_to_last_close(sample_frames) -> None:
    frame = sample_frames["ETHUSDT"]
    r = buy_and_hold(frame, BacktestConfig(fee=0.0005, funding_rate=0.0))
    ratio = frame["close"].iloc[-1] / frame["open"].iloc[0]
    assert r.metrics["trades"] == 1
    # close_last / open_first − 1, minus a fee on entry notional and on exit notional.
    assert r.metrics["total_return"] == pytest.approx(ratio - 1 - 0.0005 * (1 + ratio), rel=1e-12)
    assert r.position.eq(1).all()
    # Marked at the first close already: held from the first open.
    assert r.equity.iloc[0] == pytest.approx(
        frame["close"].iloc[0] / frame["open"].iloc[0] - 0.0005, rel=1e-12
    )


# ---------------------------------------------------------------- exits as the label's


@pytest.mark.parametrize("k", [0.8, 1.5])
def test_barrier_exits_equal_the_labels_exits_on_a_sample_market(sample_frames, k) -> None:
    """Decisions far enough apart not to meet: each trade leaves when and where its label says."""
    frame = sample_frames["SOLUSDT"].iloc[:6000].reset_index(drop=True)
    horizon, spacing = 12, 30
    # The labels' own path (features.labels), not a re-derivation of its widths.
    label = market_outcomes(frame, "1h", LabelRule(horizon=horizon, barrier_k=k, cost=0.001))
    decided = np.flatnonzero(np.isfinite(label.label))[::spacing]
    d = np.zeros(len(frame), dtype=np.int8)
    d[decided] = np.where(np.arange(len(decided)) % 2 == 0, 1, -1)
    r = run_backtest(frame, d, BacktestConfig(horizon=horizon, barrier_k=k, fee=0.0))
    t = r.trades
    assert len(t) == len(decided) > 150
    kinds = {
        EXIT_UPPER: "upper barrier",
        EXIT_LOWER: "lower barrier",
        EXIT_BOTH: "both (stop first)",
    }
    kinds[EXIT_TIME] = "time limit"
    assert t["exit_kind"].astype(str).tolist() == [kinds[x] for x in label.exit_kind[decided]]
    assert t["candles"].tolist() == (label.exit_offset[decided] + 1).tolist()
    side = d[decided]
    expected = side * label.long_return[decided]
    # A short's stop is the upper barrier; at a gap-through open the long's view differs.
    short_stop = (side < 0) & (label.exit_kind[decided] == EXIT_UPPER)
    assert t["gross_return"].to_numpy()[~short_stop] == pytest.approx(
        expected[~short_stop], abs=1e-12
    )
    assert (t["gross_return"].to_numpy()[short_stop] <= expected[short_stop] + 1e-12).all()
    assert {"upper barrier", "lower barrier", "time limit"} <= set(t["exit_kind"].astype(str))


def test_maker_entries_fill_only_when_the_candle_trades_through_the_limit() -> None:
    # Candle 1 opens at 100 and never trades below it (low = open): a long limit at 100 is
    # not filled, so no trade. Candle 4 dips below its open: the long fills at the open.
    bars = [(100, 100, 100, 100), (100, 103, 100, 102), (102, 103, 101, 102)]
    bars += [(102, 102, 102, 102), (102, 104, 101, 103), (103, 104, 102, 104), (104, 105, 103, 105)]
    frame = pd.DataFrame(
        {
            "timestamp": np.array([T0 + i * HOUR for i in range(len(bars))], dtype=np.int64),
            "open": [b[0] for b in bars],
            "high": [b[1] for b in bars],
            "low": [b[2] for b in bars],
            "close": [b[3] for b in bars],
            "volume": 1.0,
        }
    )
    d = np.array([1, 0, 0, 1, 0, 0, 0], dtype=np.int8)
    maker = cfg(horizon=2, maker=True, maker_fee=0.0002, fee=0.0005, slippage_bps=10)
    r = run_backtest(frame, d, maker)
    assert r.trades["entry_time"].tolist() == [pd.Timestamp(T0 + 4 * HOUR, unit="ms", tz="UTC")]
    # In at the limit (no slippage, maker fee), out at open 6 = 104 (taker fee, slippage).
    x_fill = 104 * (1 - 0.001)
    expected = x_fill / 102 - 1 - 0.0002 - 0.0005 * x_fill / 102
    assert r.trades["net_return"].iloc[0] == pytest.approx(expected, abs=1e-15)
    # As a taker the first decision would have traded.
    assert len(run_backtest(frame, d, cfg(horizon=2)).trades) == 2


def test_an_exit_schedule_gives_each_decision_the_rule_in_force_at_its_candle() -> None:
    """A walk-forward's refits may choose different exits: decisions before hour 10 hold 2
    candles, later ones 4; a schedule of one rule equal to the config changes nothing."""
    d = np.zeros(20, dtype=np.int8)
    d[[1, 12]] = 1
    schedule = ((T0, 2, None), (T0 + 10 * HOUR, 4, None))
    r = run_backtest(flat(20), d, cfg(horizon=3, fee=0), schedule=schedule)
    held = (r.trades["exit_price"] - r.trades["entry_price"]).tolist()  # prices rise 1 a candle
    assert held == [2.0, 4.0]
    same = run_backtest(flat(20), d, cfg(horizon=3), schedule=((T0, 3, None),))
    assert same.trades.equals(run_backtest(flat(20), d, cfg(horizon=3)).trades)
