"""Backtest benchmark: our replay over the five sample markets beside vectorbt's simulation.

Run on demand (never part of the test suite):

    .venv/bin/python bench/backtest.py --repeat 7

vectorbt is a bench-only extra, not a project dependency. It must be installed without
moving the project's pins (vectorbt >= 1 wants pandas 3), e.g.

    .venv/bin/pip freeze | grep -E '^(pandas|numpy)==' > /tmp/pins.txt
    .venv/bin/pip install 'vectorbt==0.28.5' -c /tmp/pins.txt

Lines (one process, same candles, best and median of --repeat runs after one warm-up):

- ours, full rules:   `run_backtest` per market on a seeded decision series (35 % non-zero,
                      both sides), everything included: decision checks, the schedule (enter
                      next open, hold H, re-arm, reversal, gaps), costs, equity marked at every
                      close, the trades DataFrame and all metrics;
- ours, common case:  the same on the series vectorbt can take (below);
- vectorbt 2-D:       one `Portfolio.from_signals` call over a (candles x 5) frame, its best
                      case; vectorbt per market: five calls. Only the simulation is timed:
                      its entry/exit arrays are prepared beforehand, untimed, so vectorbt gets
                      the schedule for free while ours computes it.

The common case. vectorbt's `from_signals` sizes with `size_type="percent"` by spending a
share of cash *including* the entry fee (notional = cash / (1 + fee) at size 100 %), and
refuses position reversal with percent sizing. So: (1) our position_size is 1 / (1 + fee),
which gives the same notional, and then entry fee, exit notional and exit fee agree exactly;
(2) decisions that would reverse an open position (or re-enter at the very open where it
exits) are dropped by a literal loop, the same filtered series going to both engines;
re-arm and fixed H-candle holds stay. The loop's held sides become vectorbt's entries and
exits at `price = open` (the decision at close t fills at open t + 1); one extra bar priced at
the last close lets vectorbt close the final position at that close, as our rule does.
Funding is 0 (vectorbt has no funding). Final equities must agree to 1e-9 (relative).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import DEFAULT_DATA_DIR, timed  # noqa: E402

from pipeline.backtest import BacktestConfig, run_backtest  # noqa: E402
from pipeline.data.csv_source import CandleFolder  # noqa: E402

GOAL = 5.0  # our replay at least 5x vectorbt's simulation
TOLERANCE = 1e-9


def decisions_for(n: int, seed: int, active: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    return np.where(rng.random(n) < active, side, 0).astype(np.int8)


def without_reversals(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop decisions that would reverse (or re-enter at the exit open); the held sides."""
    d = d.copy()
    n = len(d)
    held = np.zeros(n + 1, dtype=np.int8)  # one extra bar: flat after the final close
    side, exit_at = 0, -1
    for t in range(n - 1):
        k = t + 1  # the candle decision t acts on
        if side and exit_at == k and d[t] != side:
            side = 0  # hold over: exit at the open of k
        if side and d[t] == -side:
            d[t] = 0
        elif d[t] and d[t] == side:
            exit_at = k + horizon
        elif d[t] and not side:
            if exit_at == k:  # would re-enter at the open it exits at: one bar, two orders
                d[t] = 0
            else:
                side, exit_at = int(d[t]), k + horizon
        held[k] = side
    return d, held


def vectorbt_inputs(frame: pd.DataFrame, held: np.ndarray) -> dict[str, np.ndarray]:
    prev = np.concatenate(([0], held[:-1]))
    last_close = frame["close"].to_numpy()[-1:]
    return {
        "price": np.concatenate((frame["open"].to_numpy(), last_close)),
        "close": np.concatenate((frame["close"].to_numpy(), last_close)),
        "entries": (held == 1) & (prev != 1),
        "exits": (prev == 1) & (held != 1),
        "short_entries": (held == -1) & (prev != -1),
        "short_exits": (prev == -1) & (held != -1),
    }


def stack(per_market: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.column_stack([m[key] for m in per_market]) for key in per_market[0]}


def line(name: str, runs: list[float], candles: int, reference: float | None) -> str:
    best, median = min(runs), statistics.median(runs)
    ratio = f"{reference / best:7.2f}x" if reference else "       "
    return (
        f"{name:<28} best {best * 1e3:8.2f} ms  median {median * 1e3:8.2f} ms  "
        f"{candles / best / 1e6:7.2f} M candles/s  {ratio}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--horizon", type=int, default=2)
    parser.add_argument("--active", type=float, default=0.35, help="share of non-zero decisions")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    folder = CandleFolder(args.data_dir)
    frames = {m: folder.read(s) for m, s in zip(folder.market_ids(), folder.symbols(), strict=True)}
    total = sum(len(f) for f in frames.values())
    fee, slippage_bps = 0.0005, 2.0
    full = {
        m: decisions_for(len(f), args.seed + i, args.active)
        for i, (m, f) in enumerate(frames.items())
    }
    common = {m: without_reversals(d, args.horizon) for m, d in full.items()}
    cfg_full = BacktestConfig(horizon=args.horizon, fee=fee, slippage_bps=slippage_bps)
    cfg_common = BacktestConfig(
        horizon=args.horizon, fee=fee, slippage_bps=slippage_bps, position_size=1 / (1 + fee)
    )

    print(f"backtest bench: {len(frames)} markets x {total // len(frames)} 1h candles = {total}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"{platform.machine()}; repeat {args.repeat}; H = {args.horizon}, fee {fee:.2%} a side, "
        f"slippage {slippage_bps:g} bps, seed {args.seed}"
    )
    share = np.mean([np.count_nonzero(d) / len(d) for d in full.values()])
    kept = np.mean([np.count_nonzero(c[0]) / len(c[0]) for c in common.values()])
    print(f"decisions non-zero: full {share:.1%}, common case {kept:.1%}")

    def ours_full() -> None:
        for m, f in frames.items():
            run_backtest(f, full[m], cfg_full)

    def ours_common() -> None:
        for m, f in frames.items():
            run_backtest(f, common[m][0], cfg_common)

    ours = timed(ours_full, args.repeat)
    ours_c = timed(ours_common, args.repeat)

    try:
        import vectorbt as vbt
    except ImportError:
        print(line("ours, full rules", ours, total, None))
        print(line("ours, common case", ours_c, total, None))
        print("vectorbt is not installed: only our figures (see the module docstring)")
        return 0

    per_market = [vectorbt_inputs(frames[m], common[m][1]) for m in frames]
    wide = stack(per_market)
    vbt_kwargs = {
        "fees": fee,
        "slippage": slippage_bps / 1e4,
        "size": 1.0,
        "size_type": "percent",
        "init_cash": 1.0,
        "freq": "1h",
    }

    def vbt_2d():
        return vbt.Portfolio.from_signals(**wide, **vbt_kwargs)

    def vbt_each() -> None:
        for inputs in per_market:
            vbt.Portfolio.from_signals(**inputs, **vbt_kwargs)

    theirs_2d = timed(vbt_2d, args.repeat)
    theirs_each = timed(vbt_each, args.repeat)

    # Same final equity, market by market.
    final_vbt = np.asarray(vbt_2d().final_value(), dtype=float)
    final_ours = np.array(
        [run_backtest(f, common[m][0], cfg_common).equity.iloc[-1] for m, f in frames.items()]
    )
    rel = np.abs(final_ours / final_vbt - 1)
    agree = bool(np.all(rel <= TOLERANCE))
    trades = sum(len(run_backtest(f, common[m][0], cfg_common).trades) for m, f in frames.items())

    vbt_best = min(theirs_2d)
    print(f"vectorbt {vbt.__version__}, numba {__import__('numba').__version__}")
    print(f"{'':28} {'':49}  vs vectorbt 2-D")
    print(line("ours, full rules", ours, total, vbt_best))
    print(line("ours, common case", ours_c, total, vbt_best))
    print(line("vectorbt from_signals 2-D", theirs_2d, total, vbt_best))
    print(line("vectorbt per market", theirs_each, total, vbt_best))
    for m, a, b, r in zip(frames, final_ours, final_vbt, rel, strict=True):
        print(f"  final equity {m:<8} ours {a:.12f}  vectorbt {b:.12f}  rel diff {r:.1e}")
    print(
        f"common case: {trades} trades; final equities agree to {TOLERANCE:g}: "
        f"{'yes' if agree else 'NO'} (max rel diff {rel.max():.1e})"
    )
    speedup = vbt_best / min(ours)
    verdict = "met" if speedup >= GOAL else "NOT MET"
    print(
        f"goal: our replay (full rules) >= {GOAL:g}x vectorbt's simulation (2-D, best): "
        f"{speedup:.2f}x, {verdict}"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
