"""The shared-equity portfolio replay: a plain-Python reference of its rules against the
compiled loop on generated panels, hand-computed cases, refusals, and funding on real files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.backtest.panel import Panel, panel
from pipeline.backtest.portfolio import PortfolioCosts, run_portfolio_backtest
from pipeline.backtest.portfolio_kernel import simulate
from pipeline.data.aggregate import aggregate

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_609_459_200_000  # 2021-01-01T00:00Z: a settlement, a day's open
NO_FUNDING = PortfolioCosts(fee=0.0, slippage_bps=0.0, funding_rate=0.0)


# ---------------------------------------------------------------- the reference, in plain Python


def reference(open_, high, low, close, targets, orders, funding_unit, fee, slip) -> dict:
    """The module docstring's rules as a readable loop over Python floats (funding dense)."""
    n, m = len(open_), len(open_[0])
    cash, qty = 1.0, [0.0] * m
    out = {
        "equity": [0.0] * n,
        "gross": [0.0] * n,
        "net": [0.0] * n,
        "funding": [0.0] * n,
        "quantity": [[0.0] * m for _ in range(n)],
        "traded": [0.0] * n,
        "fees": [0.0] * n,
        "fills": [],
        "attribution": [[0.0] * 4 for _ in range(m)],  # price, slippage, fees, funding
        "turnover": 0.0,
        "liquidated_at": -1,
        "residual": 0.0,
    }
    pnl = out["attribution"]
    marks = list(close[n - 1])
    for k in range(n):
        value = cash + sum(qty[j] * open_[k][j] for j in range(m))
        if value <= 0:
            out["liquidated_at"], out["residual"], marks = k, value, list(open_[k])
            break
        traded = 0.0
        for j in range(m):
            if k == 0 or not orders[k - 1][j]:
                continue
            price = open_[k][j]
            wanted = targets[k - 1][j] * value / price
            delta = wanted - qty[j]
            if delta == 0:
                continue
            fill = price * (1 + slip) if delta > 0 else price * (1 - slip)
            cost = fee * abs(delta) * fill
            cash -= delta * fill + cost
            qty[j] = wanted
            out["fills"].append([k, j, delta, fill, cost, wanted])
            traded += abs(delta) * fill
            out["traded"][k] += abs(delta) * fill
            out["fees"][k] += cost
            pnl[j][0] -= delta * price
            pnl[j][1] += abs(delta) * price * slip
            pnl[j][2] += cost
        out["turnover"] += traded / value
        for j in range(m):
            paid = qty[j] * funding_unit[k][j]
            cash -= paid
            out["funding"][k] += paid
            pnl[j][3] += paid
        worst = cash + sum(q * (low[k][j] if q > 0 else high[k][j]) for j, q in enumerate(qty))
        mark = cash + sum(qty[j] * close[k][j] for j in range(m))
        if worst <= 0 or mark <= 0:
            out["liquidated_at"], out["residual"], marks = k, mark, list(close[k])
            break
        out["equity"][k] = mark
        out["quantity"][k] = list(qty)
        out["gross"][k] = sum(abs(qty[j] * close[k][j]) for j in range(m)) / mark
        out["net"][k] = sum(qty[j] * close[k][j] for j in range(m)) / mark
    for j in range(m):
        pnl[j][0] += qty[j] * marks[j]
    return out


def sparse(funding_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's funding rows: only candles with a charge."""
    rows = np.flatnonzero((funding_unit != 0).any(axis=1))
    return rows, np.ascontiguousarray(funding_unit[rows])


def random_panel(
    rng: np.random.Generator, n: int, m: int, vol: float, gap: float
) -> dict[str, np.ndarray]:
    """Random walks with wicks (low ≤ open, close ≤ high), prices of different scales, and
    opens `gap` × vol away from the previous close (gaps through zero equity at large ones)."""
    scale = 10.0 ** rng.uniform(-1, 4, m)
    close = scale * np.exp(np.cumsum(rng.normal(0, vol, (n, m)), axis=0))
    open_ = np.vstack([scale, close[:-1]]) * np.exp(rng.normal(0, vol * gap, (n, m)))
    wick = np.exp(np.abs(rng.normal(0, vol, (2, n, m))))
    return {
        "open": open_,
        "high": np.maximum(open_, close) * wick[0],
        "low": np.minimum(open_, close) / wick[1],
        "close": close,
    }


def assert_same(ours: tuple, ref: dict) -> None:
    equity, gross, net, funding, fills, attribution, turnover, liquidated_at, residual = ours
    for name, got in (("equity", equity), ("gross", gross), ("net", net), ("funding", funding)):
        np.testing.assert_allclose(got, np.array(ref[name]), rtol=1e-12, atol=1e-12, err_msg=name)
    want = np.array(ref["fills"]).reshape(-1, 6)
    np.testing.assert_allclose(fills, want, rtol=1e-12, atol=1e-12, err_msg="fills")
    np.testing.assert_allclose(attribution, np.array(ref["attribution"]), rtol=1e-12, atol=1e-12)
    assert turnover == pytest.approx(ref["turnover"], rel=1e-12, abs=1e-12)
    assert liquidated_at == ref["liquidated_at"]
    assert residual == pytest.approx(ref["residual"], rel=1e-12, abs=1e-12)


@settings(derandomize=True, deadline=None, max_examples=200)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    m=st.integers(1, 4),
    leverage=st.sampled_from([0.5, 1.0, 3.0, 12.0]),
    share=st.floats(0.0, 1.0),
    fee=st.sampled_from([0.0, 0.0005, 0.002]),
    slip=st.sampled_from([0.0, 0.0002, 0.01]),
    vol=st.sampled_from([0.002, 0.03, 0.15]),
    gap=st.sampled_from([0.2, 3.0]),
)
def test_kernel_matches_the_reference(seed, n, m, leverage, share, fee, slip, vol, gap) -> None:
    rng = np.random.default_rng(seed)
    p = random_panel(rng, n, m, vol, gap)
    targets = rng.uniform(-leverage, leverage, (n, m))
    targets[rng.random((n, m)) < 0.1] = 0.0  # flat targets, and re-sent unchanged ones
    orders = rng.random((n, m)) < share
    funding_unit = rng.normal(0.0, 1e-3, (n, m)) * p["close"] * (rng.random((n, m)) < 0.3)
    prices = [p[c] for c in ("open", "high", "low", "close")]
    ours = simulate(*prices, targets, orders, *sparse(funding_unit), fee, slip)
    args = [*prices, targets, orders, funding_unit]
    assert_same(ours, reference(*(a.tolist() for a in args), fee, slip))


def reference_funding(ts, step, open_, close, histories, constant) -> list[list[float]]:
    """Σ rate × price per unit held through each candle, for candles that open at every
    settlement: price the next open (the last close at the panel's end), rate the recorded one
    within a minute, else the constant."""
    n, m = len(ts), len(open_[0])
    unit = [[0.0] * m for _ in range(n)]
    for k in range(n):
        first = (ts[k] // (8 * HOUR) + 1) * 8 * HOUR  # the first settlement after the open
        for s in range(first, ts[k] + step + 1, 8 * HOUR):
            for j in range(m):
                near = [r for t, r in histories[j] if abs(t - s) <= 60_000]
                rate = near[0] if near else constant
                price = open_[k + 1][j] if k + 1 < n else close[k][j]
                unit[k][j] += rate * price
    return unit


@settings(derandomize=True, deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    timeframe=st.sampled_from(["1h", "2h", "4h", "8h"]),
)
def test_api_funding_matches_the_reference(seed, n, timeframe) -> None:
    rng = np.random.default_rng(seed)
    step = {"1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "8h": 8 * HOUR}[timeframe]
    start = T0 + step * int(rng.integers(0, 24))
    prices = random_panel(rng, n, 3, float(rng.choice([0.01, 0.08])), 0.2)
    ts = [start + step * k for k in range(n)]
    names = ["A", "B", "C"]
    candles = {
        name: pd.DataFrame({"timestamp": ts, **{c: prices[c][:, j] for c in prices}})
        for j, name in enumerate(names)
    }
    p = panel(candles, timeframe)
    # A recorded at every settlement (a few ms late), B with holes, C nothing: the constant.
    after = (ts[0] // (8 * HOUR) + 1) * 8 * HOUR
    settlements = list(range(after, ts[-1] + step + 1, 8 * HOUR))
    wider = range(after - 16 * HOUR, ts[-1] + 3 * step, 8 * HOUR)
    history_a = [(s + 7, float(rng.normal(1e-4, 3e-4))) for s in wider]
    history_b = [(s, float(rng.normal(0, 5e-4))) for s in settlements if rng.random() < 0.5]
    histories = [history_a, history_b, []]
    targets = rng.uniform(-4, 4, (n, 3))  # liquidations too: positions end with them
    orders = rng.random((n, 3)) < 0.5
    costs = PortfolioCosts(fee=0.0005, slippage_bps=3.0, funding_rate=0.0002)
    r = run_portfolio_backtest(
        p, targets, orders, costs, funding=dict(zip(["A", "B"], histories[:2], strict=True))
    )
    unit = reference_funding(
        ts, step, prices["open"].tolist(), prices["close"].tolist(), histories, 0.0002
    )
    ref = reference(
        *(prices[c].tolist() for c in ("open", "high", "low", "close")),
        targets.tolist(),
        orders.tolist(),
        unit,
        0.0005,
        0.0003,
    )
    np.testing.assert_allclose(r.equity_values, ref["equity"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.funding, ref["funding"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.quantities, ref["quantity"], rtol=1e-12, atol=1e-12)
    for name in ("traded", "fees"):
        np.testing.assert_allclose(r.exposure[name], ref[name], rtol=1e-12, atol=1e-12)
    assert r.metrics["trades"] == len(ref["fills"])
    assert r.metrics["funding_settlements"] == 3 * len(settlements)
    assert r.metrics["funding_filled_by_constant"] == 2 * len(settlements) - len(history_b)


# ---------------------------------------------------------------- the Python API, by hand


def frame(bars: list[tuple[float, float, float, float]], start: int = T0, step: int = HOUR):
    return pd.DataFrame(
        {
            "timestamp": start + step * np.arange(len(bars), dtype=np.int64),
            "open": [b[0] for b in bars],
            "high": [b[1] for b in bars],
            "low": [b[2] for b in bars],
            "close": [b[3] for b in bars],
            "volume": 1.0,
        }
    )


def flat_bars(prices: list[tuple[float, float]]) -> list[tuple[float, float, float, float]]:
    """(open, close) pairs as candles whose range is exactly [min, max] of the two."""
    return [(o, max(o, c), min(o, c), c) for o, c in prices]


def one_market(targets: list[float], orders: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(targets, dtype=float)[:, None], np.array(orders)[:, None]


def test_long_then_flat_with_fee_and_slippage() -> None:
    p = panel({"BTC": frame(flat_bars([(100, 100), (100, 110), (110, 121), (120, 120)]))}, "1h")
    costs = PortfolioCosts(fee=0.001, slippage_bps=10.0, funding_rate=0.0)
    # Decided at close 0: all in at open 1 (100 × 1.001 = 100.1): qty 1/100 = 0.01;
    # cash = 1 − 0.01 × 100.1 − 0.001 × 0.01 × 100.1 = −0.002001001.
    # Decided at close 2: flat at open 3 (120 × 0.999 = 119.88): cash += 1.1988 − 0.0011988.
    targets, orders = one_market([1.0, 0.0, 0.0, 0.5], [True, False, True, True])
    r = run_portfolio_backtest(p, targets, orders, costs)
    cash_1 = 1 - 0.01 * 100.1 * 1.001
    assert r.equity.tolist() == pytest.approx(
        [1.0, cash_1 + 0.01 * 110, cash_1 + 0.01 * 121, cash_1 + 0.01 * 119.88 * 0.999], abs=1e-14
    )
    fills = r.fills
    assert fills["quantity"].tolist() == pytest.approx([0.01, -0.01], abs=1e-15)
    assert fills["price"].tolist() == pytest.approx([100.1, 119.88])
    assert fills["fee"].tolist() == pytest.approx([0.001 * 1.001, 0.001 * 1.1988])
    assert list(fills["time"].astype("int64") // 1_000_000) == [T0 + HOUR, T0 + 3 * HOUR]
    assert r.positions["BTC"].tolist() == pytest.approx([0, 0.01, 0.01, 0])
    assert r.weights["BTC"].iloc[1] == pytest.approx(1.1 / r.equity.iloc[1])
    row = r.by_market.loc["BTC"]
    assert row["price_pnl"] == pytest.approx(0.2)  # bought at 100, sold at 120, 0.01 each
    assert row["slippage"] == pytest.approx(0.01 * 100 * 0.001 + 0.01 * 120 * 0.001)
    assert 1 + row["net_pnl"] == pytest.approx(r.equity.iloc[-1], abs=1e-15)
    assert r.metrics["trades"] == 2
    assert r.metrics["fees_paid"] == pytest.approx(0.001 * (1.001 + 1.1988))
    value_open_3 = cash_1 + 0.01 * 120
    assert r.metrics["turnover_per_year"] == pytest.approx(
        (1.001 / 1.0 + 1.1988 / value_open_3) / (4 * HOUR / (365 * DAY))
    )
    assert r.exposure["traded"].tolist() == pytest.approx([0, 1.001, 0, 1.1988])
    assert r.exposure["fees"].tolist() == pytest.approx([0, 0.001001, 0, 0.0011988])
    assert not r.metrics["liquidated"] and r.metrics["liquidated_at"] is None


def test_a_short_receives_funding_at_the_settlement_it_holds() -> None:
    # Candles 06:00 .. 09:00; short decided at close 06:00, filled at open 07:00 (100).
    start = T0 + 6 * HOUR
    p = panel({"ETH": frame(flat_bars([(100, 100), (100, 100), (98, 98), (98, 98)]), start)}, "1h")
    targets, orders = one_market([-1.0, 0, 0, 0], [True, False, False, False])
    history = [(T0 + 8 * HOUR + 3, 0.0003)]  # Binance's few ms late: this settlement
    r = run_portfolio_backtest(p, targets, orders, NO_FUNDING, funding={"ETH": history})
    # qty −0.01 holds through candle 07:00, whose next open (08:00, 98) is the settlement:
    # received 0.01 × 0.0003 × 98. Then +0.01 × 2 price P&L.
    assert r.funding.tolist() == pytest.approx([0, -0.01 * 0.0003 * 98, 0, 0])
    assert r.equity.iloc[-1] == pytest.approx(1 + 0.01 * 2 + 0.01 * 0.0003 * 98)
    assert r.metrics["funding_paid"] == pytest.approx(-0.01 * 0.0003 * 98)
    assert r.metrics["funding_settlements"] == 1
    assert r.metrics["funding_filled_by_constant"] == 0
    # Without the history, the constant is charged and counted.
    constant = PortfolioCosts(fee=0.0, funding_rate=0.0001)
    r = run_portfolio_backtest(p, targets, orders, constant)
    assert r.metrics["funding_paid"] == pytest.approx(-0.01 * 0.0001 * 98)
    assert r.metrics["funding_filled_by_constant"] == 1


def hours_of_three_days() -> pd.DataFrame:
    """1h candles whose open is 100 + the hour's index: every settlement has its own price."""
    n = 72
    o = 100.0 + np.arange(n)
    return frame([(x, x + 0.5, x - 0.5, x + 0.25) for x in o])


def test_intraday_settlements_of_daily_candles_priced_from_hourly_candles() -> None:
    hours = hours_of_three_days()
    days = aggregate(hours, "1h", "1d")
    p = panel({"BTC": days}, "1d")
    targets, orders = one_market([0.5, 0.5, 0.5], [True, False, False])
    costs = PortfolioCosts(fee=0.0, funding_rate=0.0001)
    exact = run_portfolio_backtest(p, targets, orders, costs, hourly={"BTC": hours})
    rough = run_portfolio_backtest(p, targets, orders, costs)
    # Long 0.5 of 1.0 at open of day 1 (124): qty = 0.5 / 124. Day 1 holds settlements at
    # 08:00 (hour 32, open 132), 16:00 (hour 40, open 140) and 00:00 of day 2 (its open, 148);
    # day 2 holds 08:00 (156), 16:00 (164) and the end of the panel (no candle: day 2's close).
    qty = 0.5 / 124
    day2_close = days["close"].iloc[2]
    assert exact.funding.tolist() == pytest.approx(
        [0, qty * 1e-4 * (132 + 140 + 148), qty * 1e-4 * (156 + 164 + day2_close)]
    )
    day1_close = days["close"].iloc[1]
    assert rough.funding.tolist() == pytest.approx(
        [0, qty * 1e-4 * (2 * day1_close + 148), qty * 1e-4 * 3 * day2_close]
    )
    # Day 0's own settlements (08:00, 16:00, day 1's open) are counted, though nothing is held.
    assert exact.metrics["funding_settlements"] == rough.metrics["funding_settlements"] == 9
    assert exact.metrics["funding_priced_at_close"] == 0
    assert rough.metrics["funding_priced_at_close"] == 6  # two inside each of the three days


def test_liquidation_stops_trading_and_has_no_sharpe() -> None:
    bars = [*flat_bars([(100, 100), (100, 99)]), (99, 99, 79, 95), *flat_bars([(95, 96)] * 3)]
    p = panel({"SOL": frame(bars)}, "1h")
    targets, orders = one_market([5.0, 5.0, 5.0, 1.0, 1.0, 1.0], [True] * 6)
    r = run_portfolio_backtest(p, targets, orders, NO_FUNDING)
    # 5x long from open 1 (100): qty 0.05, cash −4; equity 0.95 at close 1 (99). Rebalanced
    # at open 2 (99) to 5 × 0.95: qty 0.04798, cash −3.8; at candle 2's low (79) the longs are
    # worth 3.79 < 3.8: liquidated in candle 2, though its close (95) would be worth 0.758.
    assert r.liquidated_at == 2
    assert r.metrics["liquidated"]
    assert r.metrics["liquidated_at"] == "2021-01-01T02:00:00Z"
    assert r.equity.tolist()[2:] == [0.0] * 4
    assert (r.positions.iloc[2:] == 0).all().all()
    assert r.fills["time"].max() == pd.Timestamp(T0 + 2 * HOUR, unit="ms", tz="UTC")
    assert math.isnan(r.metrics["sharpe"]) and math.isnan(r.metrics["sortino"])
    assert r.metrics["total_return"] == -1.0
    assert r.metrics["max_drawdown"] == 1.0
    qty2 = 5 * 0.95 / 99
    cash2 = 1 - 0.05 * 100 - (qty2 - 0.05) * 99
    assert r.liquidation_residual == pytest.approx(cash2 + qty2 * 95)
    assert 1 + r.by_market["net_pnl"].sum() == pytest.approx(r.liquidation_residual)


def test_the_last_candles_decision_is_ignored_and_nan_targets_need_no_order() -> None:
    p = panel({"A": frame(flat_bars([(10, 10)] * 3)), "B": frame(flat_bars([(5, 5)] * 3))}, "1h")
    targets = np.array([[0.5, np.nan], [np.nan, np.nan], [1.0, 1.0]])
    orders = np.array([[True, False], [False, False], [True, True]])
    r = run_portfolio_backtest(p, targets, orders, NO_FUNDING)
    assert len(r.fills) == 1
    assert r.weights.iloc[-1].tolist() == pytest.approx([0.5, 0.0])
    with pytest.raises(ValueError, match=r"A: order at 2021-01-01T00:00:00Z has target nan"):
        run_portfolio_backtest(p, np.full((3, 2), np.nan), orders, NO_FUNDING)


# ---------------------------------------------------------------- refusals


def test_a_nan_price_is_refused_naming_market_and_time() -> None:
    bad = frame(flat_bars([(10, 10)] * 4))
    bad.loc[2, "close"] = np.nan
    with pytest.raises(ValueError, match=r"B: close price nan at 2021-01-01T02:00:00Z"):
        panel({"A": frame(flat_bars([(10, 10)] * 4)), "B": bad}, "1h")
    prices = np.full((4, 3, 1), 10.0)
    prices[0, 1, 0] = np.nan  # a panel built by hand is checked too
    with pytest.raises(ValueError, match="A: open price nan at 2021-01-01T01:00:00Z"):
        Panel(T0 + HOUR * np.arange(3), ("A",), *prices, timeframe="1h")
    good = panel({"A": frame(flat_bars([(10, 10)] * 4))}, "1h")
    with pytest.raises(ValueError, match="read-only"):  # so the replay need not check again
        good.open[1, 0] = np.nan


def test_a_gap_is_refused_and_markets_are_inner_aligned() -> None:
    gappy = frame(flat_bars([(10, 10)] * 5)).drop(index=2)
    with pytest.raises(ValueError, match=r"B: gap in the 1h candles after 2021-01-01T01:00:00Z"):
        panel({"A": frame(flat_bars([(10, 10)] * 5)), "B": gappy}, "1h")
    # A gap outside [start, end] does not matter; spans are cut to the common period.
    late = frame(flat_bars([(20, 20)] * 5), start=T0 + 2 * HOUR)
    p = panel(
        {"A": frame(flat_bars([(10, 10)] * 5)), "B": gappy, "C": late}, "1h", start=T0 + 3 * HOUR
    )
    assert p.timestamps.tolist() == [T0 + 3 * HOUR, T0 + 4 * HOUR]
    assert p.markets == ("A", "B", "C")
    assert p.close[:, 2].tolist() == [20.0, 20.0]
    with pytest.raises(ValueError, match="share no 1h candle"):
        panel({"A": frame(flat_bars([(1, 1)] * 2)), "C": late}, "1h")
    with pytest.raises(ValueError, match="one row per candle and one column per market"):
        run_portfolio_backtest(p, np.zeros((2, 2)), np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="must be boolean"):
        run_portfolio_backtest(p, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not the panel's markets"):
        run_portfolio_backtest(
            p, pd.DataFrame(np.zeros((2, 3)), columns=["C", "B", "A"]), np.zeros((2, 3), bool)
        )
    with pytest.raises(ValueError, match="fee"):
        PortfolioCosts(fee=-0.001)
    with pytest.raises(ValueError, match="one 1h step apart"):
        Panel(np.array([T0, T0 + 2 * HOUR]), ("A",), *np.ones((4, 2, 1)), timeframe="1h")


# ---------------------------------------------------------------- the sample's real files


@pytest.fixture(scope="module")
def funding_dir(sample_dir: Path) -> Path:
    folder = sample_dir.parent / "binance-usdm-funding"
    if not (folder / "BTCUSDT_funding.csv.gz").exists():
        pytest.fail(f"sample funding missing: expected {folder}/BTCUSDT_funding.csv.gz")
    return folder


def test_funding_counts_on_the_samples_real_files(sample_frames, funding_dir: Path) -> None:
    histories = {}
    for market in ("BTCUSDT", "ETHUSDT", "XRPUSDT"):  # SOL and BNB have no recorded history
        rows = pd.read_csv(funding_dir / f"{market}_funding.csv.gz")
        histories[market] = list(
            zip(rows["funding_ms"].tolist(), rows["rate"].tolist(), strict=True)
        )
    days = {m: aggregate(f, "1h", "1d") for m, f in sample_frames.items()}
    p = panel(days, "1d", start="2021-03-01", end="2021-03-10")
    n, m = p.shape
    assert n == 10
    targets = np.full((n, m), 0.1)
    orders = np.zeros((n, m), dtype=bool)
    orders[0] = True
    r = run_portfolio_backtest(p, targets, orders, funding=histories, hourly=sample_frames)
    per = r.by_market
    # Settlements after the first open, to the last close: 10 days × 3.
    assert per["funding_settlements"].tolist() == [30] * 5
    assert per["funding_filled_by_constant"].to_dict() == {
        "BNBUSDT": 30,
        "BTCUSDT": 0,
        "ETHUSDT": 0,
        "SOLUSDT": 30,
        "XRPUSDT": 0,
    }
    assert per["funding_priced_at_close"].sum() == 0
    assert r.metrics["funding_settlements"] == 150
    assert r.metrics["funding_filled_by_constant"] == 60
    # BTC paid its recorded rates on the hourly opens of its settlements (held from day 1).
    qty = r.positions["BTCUSDT"].iloc[1]
    hourly = sample_frames["BTCUSDT"].set_index("timestamp")["open"]
    rates = dict(histories["BTCUSDT"])
    paid = 0.0
    for s in range(int(p.timestamps[1]) + 8 * HOUR, int(p.timestamps[-1]) + DAY + 1, 8 * HOUR):
        rate = next(v for t, v in rates.items() if abs(t - s) <= 60_000)
        paid += qty * rate * hourly[s]
    assert per.loc["BTCUSDT", "funding"] == pytest.approx(paid, rel=1e-12)
