"""Backtest benchmark: our replay beside vectorbt's `from_signals`, same signals, same costs.

Run on demand (never part of the test suite; vectorbt is the `bench` extra, `make bench-backtest`):

    .venv/bin/python bench/backtest.py --repeat 7

Every figure is measured in the run that prints it: five sample markets (1h, ~28k candles
each), fee 0.05 % a side, slippage 2 bps, funding 0 (vectorbt has no funding). Numba caches
go to a fresh temporary folder (`NUMBA_CACHE_DIR`), so the first call of each engine pays its
real compile; it is printed on its own. Then every timed function runs once untimed and
`--repeat` times timed; ratios are medians (vectorbt's 2-D call ÷ ours).

Case A, time exits (`barrier_k=None`, T = `--horizon`). Timed lines:
- ours, run_backtest, full rules: per market, a seeded decision series (`--active` non-zero,
  both sides) with every rule (re-arm, reversal, time limit), everything included:
  decision checks, arrays, the replay, the trades DataFrame, equity and all metrics;
- ours, replay only: `replay_arrays` on prepared `market_arrays`, the same decisions: the
  compiled loop alone, what random entries and the operating-point choice repeat;
- vectorbt from_signals 2-D: one call over a (candles + 1) × 5 frame, the common case below;
  vectorbt per market: five calls. Only the simulation is timed; its entry/exit arrays are
  prepared beforehand, so vectorbt gets the schedule for free while ours computes it.

The common case A (equity check). With `size_type="percent"`, size 1, vectorbt spends cash
*including* the entry fee (notional = cash / (1 + fee)) and refuses to reverse a position.
So (1) our position_size is 1 / (1 + fee): the same notional, and then entry fee, exit
notional and exit fee agree exactly (both charge fee × fill notional, slippage included);
(2) decisions that would reverse an open position (or re-enter at the open where it exits)
are dropped by a literal loop (`without_reversals`), the same filtered series going to both
(drawn at `--common-active`, sparser than the full rules': with long re-armed holds a short
can lose all the equity, which ours books as ruin and vectorbt as a partial cover);
re-arms (a same-side decision extends the hold) stay, since without barriers they only move
the exit. The loop's held sides become vectorbt's entries and exits at `price = open` (the
decision at close t fills at open t + 1); one extra bar priced at the last close lets
vectorbt close the final position there, as our rule does. Final equities must agree to 1e-9.

Case B, barrier exits (`barrier_k` = `--barrier-k`, T = `--horizon`, widths w = k·σ·√T per
decision candle from `market_arrays`). vectorbt expresses part of it: `sl_stop`/`tp_stop` given
per element apply at the entry bar (so w per entry), `stop_entry_price="price"` bases them on
the quoted open, `stop_exit_price="stopmarket"` fills at the stop with slippage, the stop is
checked before the take-profit (both in one bar: stop first) and a stop gapped through fills
at the open (worse), as ours. The time limit is an exit signal at the open T bars after the
entry. It cannot express our rules exactly, for four reasons read in its source
(`vectorbt.portfolio.nb.simulate_from_signals_nb`, `get_stop_price_nb`):
1. stops are checked from the bar after the entry (against the position held before the bar's
   order); ours checks the entry candle's high and low too;
2. at the bar where the time-limit exit signal sits, the stop is checked on that bar's whole
   range first and wins over the signal; ours leaves at that candle's open;
3. a take-profit gapped through at an open fills at that (better) open; ours at the level;
4. a same-side decision while held re-bases our barriers and restarts the clock; vectorbt
   ignores a repeated entry without accumulation.
So case B's timed lines compare speed only (the native call, isolated decisions spaced more
than T apart, so that no re-arm occurs). The equity check emulates away 1 and 2 by splitting
every candle into two bars, an open-only bar (o = h = l = c = open) and the candle itself:
entries and time exits sit on open-only bars, so stops start on the entry candle, and at the
time-limit bar only an open through the stop can stop (at that open, the price our time exit
gets). Trades where 3 happens (an open beyond the take-profit while held) are counted and
their decisions dropped (trades are isolated, so the others do not move); then the final
equities must agree to 1e-9.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before numba is imported anywhere: compile for real, not from a disk cache.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="bench-numba-"))

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import default_data_dir, timed  # noqa: E402

from pipeline.backtest import BacktestConfig, run_backtest  # noqa: E402
from pipeline.backtest.engine import market_arrays, replay_arrays  # noqa: E402
from pipeline.data.csv_source import CandleFolder  # noqa: E402

GOAL = 5.0  # our replay at least 5x vectorbt's simulation
TOLERANCE = 1e-9
FEE, SLIPPAGE_BPS = 0.0005, 2.0


def decisions_for(n: int, seed: int, active: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    return np.where(rng.random(n) < active, side, 0).astype(np.int8)


def without_reversals(d: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Time exits only: drop decisions that would reverse (or re-enter at the exit open).

    Returns the kept decisions and the side held in each candle, plus one extra bar (flat
    after the final close)."""
    d = d.copy()
    n = len(d)
    held = np.zeros(n + 1, dtype=np.int8)
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


def isolated(d: np.ndarray, width: np.ndarray, horizon: int) -> np.ndarray:
    """Keep decisions more than T candles apart, with a finite width: no re-arm, no reversal."""
    out = np.zeros_like(d)
    last = -horizon - 1
    for t in np.flatnonzero(d[:-1]):
        if t - last > horizon and np.isfinite(width[t]):
            out[t], last = d[t], t
    return out


def time_exit_inputs(frame: pd.DataFrame, held: np.ndarray) -> dict[str, np.ndarray]:
    """Case A: the held sides as entry/exit signals at the next open, one extra bar."""
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


def barrier_inputs(
    frame: pd.DataFrame, d: np.ndarray, width: np.ndarray, horizon: int, split: bool
) -> dict[str, np.ndarray]:
    """Case B: entries at the next open with stops w, time exits T bars later, an extra bar.

    `split`: every candle k becomes bars 2k (open only) and 2k + 1 (the candle)."""
    o, h, lo, c = (frame[x].to_numpy() for x in ("open", "high", "low", "close"))
    n = len(o)
    if split:
        o = np.column_stack((o, o)).ravel()
        h = np.column_stack((o[::2], h)).ravel()
        lo = np.column_stack((o[::2], lo)).ravel()
        c = np.column_stack((o[::2], c)).ravel()
    bars, per = len(o) + 1, 2 if split else 1
    extra = c[-1:]
    out = {
        "price": np.concatenate((o, extra)),
        "open": np.concatenate((o, extra)),
        "high": np.concatenate((h, extra)),
        "low": np.concatenate((lo, extra)),
        "close": np.concatenate((c, extra)),
    }
    for key in ("entries", "exits", "short_entries", "short_exits"):
        out[key] = np.zeros(bars, dtype=bool)
    stop = np.full(bars, np.nan)
    for t in np.flatnonzero(d):
        entry = t + 1
        leave = min(entry + horizon, n)  # n: the extra bar, priced at the last close
        long = d[t] > 0
        out["entries" if long else "short_entries"][entry * per] = True
        out["exits" if long else "short_exits"][leave * per] = True
        stop[entry * per] = width[t]
    out["sl_stop"] = stop
    out["tp_stop"] = stop
    return out


def tp_gaps(frame: pd.DataFrame, d: np.ndarray, width: np.ndarray, cfg: BacktestConfig) -> list:
    """Decisions whose trade meets an open beyond its take-profit while held (reason 3)."""
    o = frame["open"].to_numpy()
    trades = run_backtest(frame, d, cfg).trades
    decided = np.flatnonzero(d)
    out = []
    for t, (_, row) in zip(decided, trades.iterrows(), strict=True):
        start = t + 1
        end = start + int(row["candles"]) - 1
        entry = o[start]
        opens = o[start + 1 : end + 1]
        if row["side"] > 0 and np.any(opens > entry * (1 + width[t])):
            out.append(t)
        if row["side"] < 0 and np.any(opens < entry * (1 - width[t])):
            out.append(t)
    return out


def stack(per_market: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.column_stack([m[key] for m in per_market]) for key in per_market[0]}


def line(name: str, runs: list[float], candles: int, reference: float | None) -> str:
    best, median = min(runs), statistics.median(runs)
    ratio = f"{reference / median:7.2f}x" if reference else "       "
    return (
        f"  {name:<34} median {median * 1e3:8.2f} ms  best {best * 1e3:8.2f} ms  "
        f"{candles / median / 1e6:7.2f} M candles/s  {ratio}"
    )


def first_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def equity_check(name: str, ours: np.ndarray, theirs: np.ndarray, markets) -> bool:
    rel = np.abs(ours / theirs - 1)
    for m, a, b, r in zip(markets, ours, theirs, rel, strict=True):
        print(f"    {m:<8} ours {a:.12f}  vectorbt {b:.12f}  rel diff {r:.1e}")
    agree = bool(np.all(rel <= TOLERANCE))
    print(
        f"  {name}: final equities agree to {TOLERANCE:g}: {'yes' if agree else 'NO'} "
        f"(max rel diff {rel.max():.1e})"
    )
    return agree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=Path(default_data_dir()))
    parser.add_argument("--horizon", type=int, default=12, help="time limit T, candles")
    parser.add_argument("--barrier-k", type=float, default=1.0)
    parser.add_argument("--active", type=float, default=0.35, help="share of non-zero decisions")
    parser.add_argument(
        "--common-active",
        type=float,
        default=0.2,
        help="case A's vectorbt series before filtering (sparser: no account is ruined)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    T = args.horizon

    import numba
    import vectorbt as vbt

    folder = CandleFolder(args.data_dir)
    frames = {m: folder.read(s) for m, s in zip(folder.market_ids(), folder.symbols(), strict=True)}
    markets = list(frames)
    total = sum(len(f) for f in frames.values())
    costs = {"fee": FEE, "slippage_bps": SLIPPAGE_BPS, "funding_rate": 0.0}
    common_size = {"position_size": 1 / (1 + FEE)}
    cfg_a = BacktestConfig(horizon=T, **costs)
    cfg_a_common = BacktestConfig(horizon=T, **costs, **common_size)
    cfg_b = BacktestConfig(horizon=T, barrier_k=args.barrier_k, **costs)
    cfg_b_common = BacktestConfig(horizon=T, barrier_k=args.barrier_k, **costs, **common_size)
    vbt_kwargs = {
        "fees": FEE,
        "slippage": SLIPPAGE_BPS / 1e4,
        "size": 1.0,
        "size_type": "percent",
        "init_cash": 1.0,
        "freq": "1h",
    }
    vbt_stops = {"stop_entry_price": "price", "stop_exit_price": "stopmarket"}

    print(f"backtest bench: {len(frames)} markets x {total // len(frames)} 1h candles = {total}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"numba {numba.__version__}, vectorbt {vbt.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; repeat {args.repeat}; T = {T}, k = {args.barrier_k:g}, "
        f"fee {FEE:.2%} a side, slippage {SLIPPAGE_BPS:g} bps, funding 0, seed {args.seed}"
    )

    full = {
        m: decisions_for(len(f), args.seed + i, args.active)
        for i, (m, f) in enumerate(frames.items())
    }
    arrays_a = {m: market_arrays(f, cfg_a) for m, f in frames.items()}
    arrays_b = {m: market_arrays(f, cfg_b) for m, f in frames.items()}
    common_a = {
        m: without_reversals(decisions_for(len(f), args.seed + i, args.common_active), T)
        for i, (m, f) in enumerate(frames.items())
    }
    iso = {m: isolated(d, arrays_b[m].width, T) for m, d in full.items()}
    inputs_a = [time_exit_inputs(frames[m], common_a[m][1]) for m in markets]
    inputs_b = [
        barrier_inputs(frames[m], iso[m], arrays_b[m].width, T, split=False) for m in markets
    ]
    wide_a, wide_b = stack(inputs_a), stack(inputs_b)

    # Compile (first calls), each engine's own cost, before anything is timed.
    def vbt_call(x: dict, extra: dict):
        return lambda: vbt.Portfolio.from_signals(**x, **vbt_kwargs, **extra)

    m0, f0 = markets[0], frames[markets[0]]
    print("first calls (numba compile, fresh cache folder; then warm):")
    for name, fn in (
        ("ours run_backtest, time exits", lambda: run_backtest(f0, full[m0], cfg_a)),
        ("ours run_backtest, barriers", lambda: run_backtest(f0, full[m0], cfg_b)),
        ("vectorbt from_signals, no stops", vbt_call(inputs_a[0], {})),
        ("vectorbt from_signals, stops", vbt_call(inputs_b[0], vbt_stops)),
    ):
        print(f"  {name:<34} {first_call(fn):7.2f} s")

    def ours(decisions: dict, cfg: BacktestConfig):
        return lambda: [run_backtest(frames[m], decisions[m], cfg) for m in markets]

    def kernel(arrays: dict, decisions: dict, cfg: BacktestConfig):
        return lambda: [replay_arrays(arrays[m], decisions[m], cfg) for m in markets]

    def vbt_2d(wide: dict, extra: dict):
        return lambda: vbt.Portfolio.from_signals(**wide, **vbt_kwargs, **extra)

    def vbt_each(inputs: list, extra: dict):
        return lambda: [vbt.Portfolio.from_signals(**x, **vbt_kwargs, **extra) for x in inputs]

    verdicts, agree = [], True
    for title, cfg, cfg_common, common, arrays, wide, inputs, extra in (
        (
            "A, time exits",
            cfg_a,
            cfg_a_common,
            {m: common_a[m][0] for m in markets},
            arrays_a,
            wide_a,
            inputs_a,
            {},
        ),
        ("B, barrier exits", cfg_b, cfg_b_common, iso, arrays_b, wide_b, inputs_b, vbt_stops),
    ):
        share = np.mean([np.count_nonzero(d) / len(d) for d in full.values()])
        kept = np.mean([np.count_nonzero(common[m]) / len(common[m]) for m in markets])
        runs = {
            "ours run_backtest, full rules": timed(ours(full, cfg), args.repeat),
            "ours run_backtest, vectorbt's case": timed(ours(common, cfg_common), args.repeat),
            "ours replay only, full rules": timed(kernel(arrays, full, cfg), args.repeat),
            "vectorbt from_signals 2-D": timed(vbt_2d(wide, extra), args.repeat),
            "vectorbt from_signals per market": timed(vbt_each(inputs, extra), args.repeat),
        }
        reference = statistics.median(runs["vectorbt from_signals 2-D"])
        print(
            f"case {title}: decisions non-zero {share:.1%} (full rules), {kept:.1%} "
            f"(vectorbt's case); ratio = vectorbt 2-D median / this median"
        )
        for name, r in runs.items():
            print(line(name, r, total, reference))
        for name in ("ours run_backtest, full rules", "ours replay only, full rules"):
            speedup = reference / statistics.median(runs[name])
            verdicts.append(
                f"  case {title}, {name}: {speedup:.2f}x vectorbt 2-D "
                f"({'met' if speedup >= GOAL else 'NOT MET'})"
            )

    # Case A: same final equity.
    final_vbt = np.asarray(vbt_2d(wide_a, {})().final_value(), dtype=float)
    results = [run_backtest(frames[m], common_a[m][0], cfg_a_common) for m in markets]
    final_ours = np.array([r.equity.iloc[-1] for r in results])
    print(f"equity, case A ({sum(len(r.trades) for r in results)} trades):")
    agree &= equity_check("case A", final_ours, final_vbt, markets)

    # Case B: native vectorbt differs by construction (reasons 1-4); the split-bar emulation
    # without take-profit gaps must agree.
    results = [run_backtest(frames[m], iso[m], cfg_b_common) for m in markets]
    final_ours = np.array([r.equity.iloc[-1] for r in results])
    native = np.asarray(vbt_2d(wide_b, vbt_stops)().final_value(), dtype=float)
    rel = np.abs(final_ours / native - 1)
    print(
        f"equity, case B ({sum(len(r.trades) for r in results)} isolated trades), native "
        f"vectorbt (differs by construction, reasons 1-4): max rel diff {rel.max():.1e}"
    )
    gaps = {m: tp_gaps(frames[m], iso[m], arrays_b[m].width, cfg_b_common) for m in markets}
    clean = {}
    for m in markets:
        clean[m] = iso[m].copy()
        clean[m][gaps[m]] = 0
    split = stack(
        [barrier_inputs(frames[m], clean[m], arrays_b[m].width, T, split=True) for m in markets]
    )
    final_vbt = np.asarray(vbt_2d(split, vbt_stops)().final_value(), dtype=float)
    results = [run_backtest(frames[m], clean[m], cfg_b_common) for m in markets]
    final_ours = np.array([r.equity.iloc[-1] for r in results])
    print(
        f"equity, case B, split bars ({sum(len(r.trades) for r in results)} trades; "
        f"{sum(len(g) for g in gaps.values())} with an open beyond the take-profit dropped):"
    )
    agree &= equity_check("case B (split bars)", final_ours, final_vbt, markets)

    print(f"goal: ours >= {GOAL:g}x vectorbt's simulation (medians):")
    print("\n".join(verdicts))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
