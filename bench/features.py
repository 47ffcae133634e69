"""Feature benchmark: the 79 features of the five sample markets at 1h, beside references.

Run on demand (never part of the test suite):

    .venv/bin/python bench/features.py --repeat 5

Lines (all in one process, same candles, best and median of --repeat runs):

- feature set:           `compute_features(candles)`: all 79 features, 4h/1d candles built
                         from the 1h ones inside the call (complete buckets only);
- feature set, higher given: the same with 4h/1d frames aggregated beforehand
                         (`pipeline.data.aggregate`, untimed);
- (a) TA-Lib alone:      exactly the TA-Lib calls the feature set makes (recorded from one
                         run of it, inputs copied), replayed, nothing else: the reference;
- (b) pandas idiomatic:  the same classic indicators written the way a pandas user would
                         (ewm / rolling; rolling.apply where pandas has no vectorised form:
                         CCI's mean deviation and Aroon's arg-max).

`cells/s` = rows x outputs / seconds (79 outputs for the set; for (a) and (b) the number of
output series they produce). `vs (a)` = seconds / (a)'s seconds, best against best.
Peak memory: tracemalloc's peak over one run of the set (numpy reports its buffers to it),
and the process's maximum resident set size (getrusage ru_maxrss) at the end.
Candle reading: the 5 gzip CSVs through `CandleFolder.read` against Parquet copies written
to a temporary folder first, read with `pd.read_parquet` (pyarrow).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import DEFAULT_DATA_DIR, timed  # noqa: E402

from pipeline.data.aggregate import aggregate  # noqa: E402
from pipeline.data.csv_source import CandleFolder  # noqa: E402
from pipeline.features.compute import compute_features  # noqa: E402

GOAL = 2.0  # the whole set within 2x the time of TA-Lib alone


# -- (a) the TA-Lib calls the set makes ----------------------------------------------------


def record_talib_calls(run: Callable[[], object]) -> list[tuple[Callable, tuple, dict]]:
    """Run `run` with every TA-Lib function wrapped; return its calls with copied inputs."""
    calls: list[tuple[Callable, tuple, dict]] = []
    originals = {n: getattr(talib, n) for n in talib.get_functions()}

    def recorder(fn):
        def wrapped(*args, **kwargs):
            copies = tuple(np.array(a) if isinstance(a, np.ndarray) else a for a in args)
            calls.append((fn, copies, dict(kwargs)))
            return fn(*args, **kwargs)

        return wrapped

    try:
        for name, fn in originals.items():
            setattr(talib, name, recorder(fn))
        run()
    finally:
        for name, fn in originals.items():
            setattr(talib, name, fn)
    return calls


def replay(calls) -> int:
    cells = 0
    for fn, args, kwargs in calls:
        out = fn(*args, **kwargs)
        cells += sum(o.size for o in out) if isinstance(out, tuple) else out.size
    return cells


# -- (b) idiomatic pandas ------------------------------------------------------------------


def _rsi(c: pd.Series, n: int) -> pd.Series:
    delta = c.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False).mean()
    return 100 - 100 / (1 + gain / loss)


def _ema(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(span=n, adjust=False).mean()


def _macd(c: pd.Series) -> list[pd.Series]:
    line = _ema(c, 12) - _ema(c, 26)
    signal = _ema(line, 9)
    return [line, signal, line - signal]


def _true_range(h, lo, c):
    prev = c.shift()
    return pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)


def _atr(h, lo, c, n):
    return _true_range(h, lo, c).ewm(alpha=1 / n, adjust=False).mean()


def pandas_classic(frame: pd.DataFrame) -> list[pd.Series]:
    """The classic indicators of the set, in idiomatic pandas."""
    h, lo, c, v = (frame[k] for k in ("high", "low", "close", "volume"))
    out = [_rsi(c, n) for n in (7, 14, 28)]
    out += _macd(c)
    hh, ll = h.rolling(14).max(), lo.rolling(14).min()
    slow_k = (100 * (c - ll) / (hh - ll)).rolling(3).mean()
    out += [slow_k, slow_k.rolling(3).mean(), -100 * (hh - c) / (hh - ll)]
    tp = (h + lo + c) / 3
    mad = tp.rolling(20).apply(lambda x: np.abs(x - x.mean()).mean(), raw=True)
    out.append((tp - tp.rolling(20).mean()) / (0.015 * mad))
    up, down = h.diff(), -lo.diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0)
    minus_dm = down.where((down > up) & (down > 0), 0.0)
    atr14 = _atr(h, lo, c, 14)
    plus_di = 100 * plus_dm.ewm(alpha=1 / 14, adjust=False).mean() / atr14
    minus_di = 100 * minus_dm.ewm(alpha=1 / 14, adjust=False).mean() / atr14
    dx = 100 * (plus_di - minus_di).abs() / (plus_di + minus_di)
    out += [dx.ewm(alpha=1 / 14, adjust=False).mean(), plus_di, minus_di]
    prev = c.shift()
    bp = c - pd.concat([lo, prev], axis=1).min(axis=1)
    tr = pd.concat([h, prev], axis=1).max(axis=1) - pd.concat([lo, prev], axis=1).min(axis=1)
    avg = {n: bp.rolling(n).sum() / tr.rolling(n).sum() for n in (7, 14, 28)}
    out.append(100 * (4 * avg[7] + 2 * avg[14] + avg[28]) / 7)
    out += [_ema(c, n) for n in (9, 20, 21, 50, 100, 200)]
    out += [atr14, _atr(h, lo, c, 48), _atr(h, lo, c, 20)]
    index = pd.Series(np.arange(len(c), dtype="float64"), index=c.index)
    for n in (24, 72):
        out.append(c.rolling(n).cov(index) / index.rolling(n).var())
    aroon_up = h.rolling(26).apply(np.argmax, raw=True) * 4
    aroon_down = lo.rolling(26).apply(np.argmin, raw=True) * 4
    out.append(aroon_up - aroon_down)
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    out += [mid + 2 * sd, mid, mid - 2 * sd]
    for n in (20, 55, 24):
        out += [h.rolling(n).max(), lo.rolling(n).min()]
    obv = (np.sign(c.diff()).fillna(0) * v).cumsum()
    out += [obv, obv.rolling(24).cov(index) / index.rolling(24).var()]
    flow = tp * v
    rising = tp > tp.shift()
    pos = flow.where(rising, 0.0).rolling(14).sum()
    neg = flow.where(~rising, 0.0).rolling(14).sum()
    out.append(100 * pos / (pos + neg))
    clv = ((c - lo) - (h - c)) / (h - lo)
    adl = (clv.fillna(0) * v).cumsum()
    out.append(_ema(adl, 3) - _ema(adl, 10))
    return out


def pandas_higher(frame: pd.DataFrame) -> list[pd.Series]:
    c = frame["close"]
    return [_rsi(c, 14), _ema(c, 20), _macd(c)[2]]


# -- the run -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", default=os.environ.get("SIGNALS_DATA_DIR", DEFAULT_DATA_DIR))
    args = parser.parse_args(argv)

    folder = CandleFolder(args.data_dir)
    symbols = folder.symbols()
    candles = {s: folder.read(s) for s in symbols}
    rows = sum(len(f) for f in candles.values())
    higher = {s: {tf: aggregate(f, "1h", tf) for tf in ("4h", "1d")} for s, f in candles.items()}

    def feature_set():
        return compute_features(candles)

    def feature_set_higher():
        return compute_features(candles, "1h", higher)

    calls = record_talib_calls(feature_set)
    names = sorted({fn.__name__ for fn, _, _ in calls})

    def talib_alone():
        return replay(calls)

    def pandas_idiomatic():
        out = []
        for symbol, frame in candles.items():
            out += pandas_classic(frame)
            for tf in ("4h", "1d"):
                out += pandas_higher(higher[symbol][tf])
        return out

    talib_cells = replay(calls)
    pandas_cells = sum(len(s) for s in pandas_idiomatic())
    lines = [
        ("feature set (79, 4h/1d built inside)", timed(feature_set, args.repeat), rows * 79),
        ("feature set, higher given", timed(feature_set_higher, args.repeat), rows * 79),
        ("(a) TA-Lib alone, same calls", timed(talib_alone, args.repeat), talib_cells),
        (
            "(b) pandas idiomatic, same indicators",
            timed(pandas_idiomatic, max(1, args.repeat // 2)),
            pandas_cells,
        ),
    ]

    tracemalloc.start()
    feature_set()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for symbol, frame in candles.items():
            paths[symbol] = Path(tmp) / f"{folder.file_for(symbol).name.split('.')[0]}.parquet"
            frame.to_parquet(paths[symbol], index=False)
        csv_runs = timed(lambda: [folder.read(s) for s in symbols], args.repeat)
        parquet_runs = timed(lambda: [pd.read_parquet(p) for p in paths.values()], args.repeat)
        same = all(pd.read_parquet(paths[s]).equals(candles[s]) for s in symbols)

    print(f"features benchmark: {len(symbols)} markets x 1h, {rows:,} rows; repeat {args.repeat}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"TA-Lib {talib.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"(a) = {len(calls)} TA-Lib calls of {len(names)} functions: {', '.join(names)}")
    print()
    print(
        f"| {'line':40s} | {'best s':>8s} | {'median s':>8s} | {'cells/s':>12s} | {'vs (a)':>7s} |"
    )
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 14}|{'-' * 9}|")
    ref = min(lines[2][1])
    for label, runs, cells in lines:
        best, median = min(runs), statistics.median(runs)
        print(
            f"| {label:40s} | {best:8.4f} | {median:8.4f} | {cells / best:12.3e} | "
            f"{best / ref:6.2f}x |"
        )
    print()
    ratio = min(lines[0][1]) / ref
    verdict = "met" if ratio <= GOAL else "NOT MET"
    print(f"goal: whole set <= {GOAL:.0f}x the time of (a): {ratio:.2f}x -> {verdict}")
    print(
        f"peak memory: tracemalloc peak during one feature-set run {peak / 2**20:.1f} MiB; "
        f"process max RSS (getrusage ru_maxrss) "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"
    )
    print(
        f"reading the candles (5 markets): gzip CSV best {min(csv_runs):.4f} s, median "
        f"{statistics.median(csv_runs):.4f} s; Parquet best {min(parquet_runs):.4f} s, median "
        f"{statistics.median(parquet_runs):.4f} s ({min(csv_runs) / min(parquet_runs):.1f}x); "
        f"identical frames: {same}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
