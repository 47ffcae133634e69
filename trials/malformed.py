"""Malformed candle batches, generated with hypothesis from real candles.

A batch starts as a run of real, valid 1h candles of one sample market (the `seed` candles
before it are what the table already holds) and is then broken in one way: NaN, ±inf, zero or
negative prices, high below the body, low above it, negative volume, duplicate, unsorted or
off-grid open times, a missing or an extra field, a cell of the wrong type, an empty batch or
an empty page in the middle. Some batches stay valid (the controls: several pages with a
partial last one, full float precision): they must be stored exactly.

Each batch is drawn for one path, because the paths see different things:

- `csv`: the batch is a candle file (`MARKETID.csv`, seed rows first) read by
  `CsvCandleSource`; a cell is text, so a wrong type is text that is no number.
- `http`: the batch is a page of raw Binance kline arrays that the replay exchange serves to
  ccxt (`POST /_replay/klines`); prices are strings as Binance sends them, a wrong type is
  JSON null, a boolean, a list or text. ccxt sorts each page, so an unsorted page is a valid
  one there; it reads an unreadable price as None, which the source refuses as sent
  (`values_readable`), and 'NaN' as NaN, which the schema refuses.

What is decided, and why: a duplicate open time is refused on both paths, even an identical
copy (silently keeping one would hide an exchange or recording fault); an unsorted candle file
is refused (a recording out of order is a broken one), while an unsorted kline page is stored
sorted, because ccxt sorts every page it parses before the source sees it; a named extra
column (csv) or extra kline fields (http) are ignored, the candles stored; an empty batch
stores nothing and is no error (a gap, reported by the ingest as one).

`Batch.expected` is what the table must hold after the ingest when the batch may be stored
(seed plus the batch's candles, ascending), or None when it must be refused; `Batch.rules`
are the schema rules a refusal may name in its headline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from pipeline.data.candles import COLUMNS

STEP = 3_600_000  # the batches are 1h candles
TIMEFRAME = "1h"
PATHS = ("csv", "http")
HTTP_PAGE = 7  # candles per klines request in the trial: batches span several pages
HTTP_WINDOW = HTTP_PAGE - 1  # open times per request window (ccxt_source: one fewer)

PRICE, VOLUME = "prices_positive_and_finite", "volume_non_negative_and_finite"
GRID, UNIQUE, ASCENDING = (
    f"timestamp_on_{TIMEFRAME}_grid",
    "timestamps_unique",
    "timestamps_ascending",
)
HIGH, LOW = "high_at_least_open_and_close", "low_at_most_open_and_close"
CSV_READABLE, COLUMNS_PRESENT, OPEN_TIME = "csv_readable", "columns_present", "open_time_readable"
# A window whose page comes back full: more rows than open times (ccxt_source).
PAGE_FITS = "page_fits_its_window"
VALUES_READABLE = "values_readable"  # a price or volume ccxt read as None (ccxt_source)

# What each kind of break does to a batch; every one is drawn for both paths.
KINDS = (
    "valid",
    "valid_pages",  # several pages, the last one partial
    "valid_precise",  # prices and volume at full float precision (17 significant digits)
    "empty",  # no candle at all where some were due
    "empty_page",  # a whole page of candles missing in the middle (a gap)
    "nan",
    "inf",
    "zero_price",
    "negative_price",
    "high_below_body",
    "low_above_body",
    "negative_volume",
    "duplicate_time",
    "unsorted",
    "off_grid",
    "missing_field",
    "extra_field",
    "wrong_type_time",
    "wrong_type_value",
    "several",  # two or three of the breaks above at once
)
SINGLE_BREAKS = KINDS[5:-1]
# The order in which several breaks are applied to one batch: relations and times while every
# cell is still a number, wrong types after them, a field taken away last.
_BREAK_ORDER = (
    "high_below_body",
    "low_above_body",
    "off_grid",
    "duplicate_time",
    "unsorted",
    "nan",
    "inf",
    "zero_price",
    "negative_price",
    "negative_volume",
    "wrong_type_value",
    "wrong_type_time",
    "missing_field",
)

Cell = object  # int | float | str | bool | None | list: what a raw row may carry


@dataclass
class Batch:
    """One generated batch, ready for its path."""

    path: str
    kind: str
    market: str  # market id, e.g. BTCUSDT
    seed: pd.DataFrame  # valid candles already in the table
    rows: list[list[Cell]]  # the batch: [timestamp, open, high, low, close, volume, extra…]
    first: int  # open time of the unbroken batch's first candle
    nominal_end: int  # open time after the unbroken batch's last candle: the exchange clock
    columns: list[str] = field(default_factory=lambda: list(COLUMNS))  # the CSV header
    seed_suffix: str = ""  # appended to each seed line of the CSV file (an extra field)
    expected: pd.DataFrame | None = None  # the table after a valid batch; None: refuse
    rules: frozenset[str] = frozenset()  # rules a refusal may name first
    notes: list[str] = field(default_factory=list)  # what was broken, in words

    # -- rendering ------------------------------------------------------------------------
    def write_csv(self, folder: Path) -> Path:
        """The market's candle file: seed rows, then the batch, as text."""
        folder.mkdir(parents=True, exist_ok=True)
        lines = [",".join(self.columns)]
        lines += [
            ",".join(_csv_cell(record[c]) for c in self.columns if c in record) + self.seed_suffix
            for record in self.seed.to_dict("records")
        ]
        lines += [",".join(_csv_cell(v) for v in row) for row in self.rows]
        path = folder / f"{self.market}.csv"
        path.write_text("\n".join(lines) + "\n")
        return folder

    def klines(self) -> list[list[Cell]]:
        """The batch as Binance kline arrays (12 fields; fewer or more where broken so)."""
        out = []
        for row in self.rows:
            cells = [_http_cell(v, i) for i, v in enumerate(row[:6])]
            if len(row) >= 6:
                opened = row[0] if isinstance(row[0], int) and not isinstance(row[0], bool) else 0
                cells += [opened + STEP - 1, "0", 0, "0", "0", "0"]
                cells += [_http_cell(v, 6) for v in row[6:]]
            out.append(cells)
        return out


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _http_cell(value: Cell, index: int) -> Cell:
    """Open time as an integer, prices and volume as decimal strings, as Binance sends them;
    any other type travels as it is."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return repr(float(value)) if index else value
    return value


# -- strategies ---------------------------------------------------------------------------

# Text that reads as no number in either path (no digits, no 'e', 'i', 'n', 'a', 'f' to
# spell exponent, inf or nan), and never one of pandas' NA spellings.
_GARBAGE = st.text(alphabet="bcdgkmqrtuvwxyz?#", min_size=1, max_size=6)
_NA_TEXT = st.sampled_from(["", "null", "NULL", "None", "NA", "N/A", "NaN", "nan"])


@st.composite
def batches(
    draw: st.DrawFn, frames: dict[str, pd.DataFrame], path: str, kind: str | None = None
) -> Batch:
    """One batch for `path` ('csv' or 'http') from `frames` (market id → valid 1h candles),
    broken the `kind` way (drawn when None)."""
    kind = kind or draw(st.sampled_from(KINDS))
    market = draw(st.sampled_from(sorted(frames)))
    frame = frames[market]
    if kind == "valid_pages":
        n = draw(st.integers(HTTP_PAGE + 1, 6 * HTTP_PAGE))
        if n % HTTP_PAGE == 0:
            n += 1
    elif kind == "empty_page":
        n = draw(st.integers(3 * HTTP_PAGE, 6 * HTTP_PAGE))
    else:
        n = draw(st.integers(2, 30))
    seed_len = draw(st.integers(1, 24))
    start = draw(st.integers(seed_len, len(frame) - n))
    seed = frame.iloc[start - seed_len : start].reset_index(drop=True)
    good = frame.iloc[start : start + n].reset_index(drop=True)
    batch = Batch(
        path=path,
        kind=kind,
        market=market,
        seed=seed,
        rows=[_row(r) for r in good.itertuples(index=False)],
        first=int(good["timestamp"].iloc[0]),
        nominal_end=int(good["timestamp"].iloc[-1]) + STEP,
    )
    if kind.startswith("valid") or kind in ("empty", "empty_page"):
        _keep_valid(draw, batch)
    elif kind == "several":
        # Breaks that leave a batch valid on this path (ccxt sorts pages) are not drawn here.
        pool = [k for k in _BREAK_ORDER if not (path == "http" and k == "unsorted")]
        chosen = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=3, unique=True))
        for name in sorted(chosen, key=_BREAK_ORDER.index):
            _break(draw, batch, name)
        batch.expected = None
    else:
        _break(draw, batch, kind)
    return batch


def _row(candle: tuple) -> list[Cell]:
    return [int(candle[0]), *(float(v) for v in candle[1:6])]


def _frame(rows: list[list[Cell]]) -> pd.DataFrame:
    frame = pd.DataFrame([r[:6] for r in rows], columns=list(COLUMNS))
    frame["timestamp"] = frame["timestamp"].astype("int64")
    return frame.astype({c: "float64" for c in COLUMNS[1:]})


def _stored(batch: Batch, rows: list[list[Cell]]) -> pd.DataFrame:
    """Seed plus `rows`, ascending: the table after a batch that may be stored."""
    frame = pd.concat([batch.seed, _frame(rows)], ignore_index=True)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _keep_valid(draw: st.DrawFn, batch: Batch) -> None:
    rows = batch.rows
    if batch.kind == "empty":
        rows.clear()
    elif batch.kind == "empty_page":
        # One whole window of the HTTP pager (windows start at the first candle) missing.
        page = draw(st.integers(1, len(rows) // HTTP_WINDOW - 2))
        del rows[page * HTTP_WINDOW : (page + 1) * HTTP_WINDOW]
        batch.notes.append(f"window {page} of {HTTP_WINDOW} candles missing")
    elif batch.kind == "valid_precise":
        for row in rows:
            factor = 1 + draw(st.floats(1e-9, 1e-3))
            row[1:5] = [v * factor for v in row[1:5]]
            row[5] = row[5] * (1 + draw(st.floats(1e-9, 1e-3)))
    batch.expected = _stored(batch, rows)


def _break(draw: st.DrawFn, batch: Batch, kind: str) -> None:
    """Break `batch.rows` in place one way; add the rules a refusal may name."""
    rows, path = batch.rows, batch.path
    full = [r for r in rows if len(r) >= 6]
    if not full:  # an earlier break took every row apart: break the first row again
        full = rows
    row = draw(st.sampled_from(full))
    i = rows.index(row)
    value_column = draw(st.integers(1, 5))
    rules: set[str] = set()

    def price_or_volume(c: int) -> str:
        return PRICE if c < 5 else VOLUME

    if kind == "nan":
        row[value_column] = math.nan
        rules.add(price_or_volume(value_column))
    elif kind == "inf":
        row[value_column] = draw(st.sampled_from([math.inf, -math.inf]))
        rules.add(price_or_volume(value_column))
    elif kind in ("zero_price", "negative_price"):
        column = draw(st.integers(1, 4))
        row[column] = 0.0 if kind == "zero_price" else -draw(st.floats(1e-8, 1e6))
        rules.add(PRICE)
    elif kind == "high_below_body":
        body = max(row[1], row[4])
        row[2] = body * (1 - draw(st.floats(1e-6, 0.5)))
        rules.add(HIGH)
    elif kind == "low_above_body":
        body = min(row[1], row[4])
        row[3] = body * (1 + draw(st.floats(1e-6, 0.5)))
        rules.add(LOW)
    elif kind == "negative_volume":
        row[5] = -draw(st.floats(1e-8, 1e6))
        rules.add(VOLUME)
    elif kind == "duplicate_time":
        copy = list(row) if draw(st.booleans()) else [row[0], *draw(st.sampled_from(full))[1:]]
        rows.insert(i + 1, copy)
        rules.update([UNIQUE, PAGE_FITS] if path == "http" else [UNIQUE])
    elif kind == "unsorted":
        j = draw(st.integers(0, len(rows) - 1).filter(lambda j: j != i))
        rows[i], rows[j] = rows[j], rows[i]
        if path == "http" and batch.expected is None and batch.kind == "unsorted":
            batch.expected = _stored(batch, rows)  # ccxt sorts every page it parses
        rules.add(ASCENDING)
    elif kind == "off_grid":
        shift = draw(st.integers(1, STEP - 1))
        # Between two candles of the batch (never past the last one, which is not closed yet).
        row[0] = row[0] + shift if row[0] == batch.first else row[0] - shift
        rules.update([GRID, PAGE_FITS] if path == "http" else [GRID])
    elif kind == "missing_field":
        if path == "csv" and draw(st.booleans()):
            gone = draw(st.sampled_from(list(COLUMNS)))
            index = batch.columns.index(gone)
            batch.columns.pop(index)
            for r in rows:
                if len(r) > index:
                    r.pop(index)
            rules.add(COLUMNS_PRESENT)
        elif path == "csv":  # a short line: pandas reads the missing cells as NaN
            keep = draw(st.integers(1, 5))
            del row[keep:]
            rules.add(price_or_volume(keep))
        else:  # a short kline: ccxt reads the missing fields as None
            keep = draw(st.integers(0, 5))
            del row[keep:]
            rules.add(OPEN_TIME if keep == 0 else VALUES_READABLE)
    elif kind == "extra_field":
        if path == "csv" and draw(st.booleans()):
            # Values but no name for them: pandas would take the first column as the index.
            if draw(st.booleans()):  # on every line, seed too: no line is longer than another
                batch.seed_suffix = ",0.5"
                for r in rows:
                    r.append(draw(st.floats(0, 1e6)))
            else:
                row.append(draw(st.floats(0, 1e6)))
            rules.add(CSV_READABLE)
        elif path == "csv":
            batch.columns.append("trades")  # a named extra column: harmless, ignored
            batch.seed_suffix = ",0"
            for r in rows:
                r.append(draw(st.integers(0, 10**6)))
            batch.expected = _stored(batch, rows)
            return
        else:  # Binance's 12 fields and more: ccxt reads the first six
            for r in rows if draw(st.booleans()) else [row]:
                r.extend(draw(st.lists(st.integers(0, 9) | _GARBAGE, min_size=1, max_size=3)))
            batch.expected = _stored(batch, rows)
            return
    elif kind == "wrong_type_time":
        if path == "csv":
            row[0] = draw(_GARBAGE | _NA_TEXT | st.just(f"{row[0]}.5"))
            rules.add(CSV_READABLE)
        else:
            row[0] = draw(st.none() | _GARBAGE | st.sampled_from(["", "NaN", "null"]))
            rules.add(OPEN_TIME)
        batch.notes.append(f"open time {row[0]!r}")
    elif kind == "wrong_type_value":
        if path == "csv":
            cell = draw(_GARBAGE | _NA_TEXT)
            # pandas reads its NA spellings (and an empty cell) as NaN; other text fails.
            na = cell in ("", "null", "NULL", "None", "NA", "N/A", "NaN", "nan")
            rules.add(price_or_volume(value_column) if na else CSV_READABLE)
        else:
            cell = draw(
                st.none()
                | _GARBAGE
                | _NA_TEXT
                | st.booleans()
                | st.just([1.0])
                | st.just({"price": "1"})
            )
            # ccxt reads 'NaN' as a NaN float, everything else here as None.
            nan = cell in ("NaN", "nan")
            rules.add(price_or_volume(value_column) if nan else VALUES_READABLE)
        row[value_column] = cell
        batch.notes.append(f"{COLUMNS[value_column]} {cell!r}")
    else:  # pragma: no cover
        raise ValueError(f"unknown break {kind!r}")
    if kind != "unsorted" or path == "csv":
        batch.expected = None
    batch.rules = batch.rules | rules
    batch.notes.append(f"{kind} at row {i}")
