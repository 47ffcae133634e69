"""Batches that never become a candle frame (an unreadable CSV file, a kline page whose open
times ccxt cannot read) are refused with the schema's error, market and timeframe named, and
the table is left as it was; the replay exchange serves such pages raw over HTTP."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.data.ingest import CsvCandleSource, ingest_partition
from pipeline.data.schema import CandleValidationError
from pipeline.exchange.client import make_exchange
from pipeline.exchange.retry import RetryPolicy
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.candles import load_candles, upsert_candles

SYM, MID, STEP = "BTC/USDT:USDT", "BTCUSDT", 3_600_000


@pytest.fixture()
def hours(sample_frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """30 hours inside `small_dir` (from 2021-01-01), which the replay exchange serves."""
    frame = sample_frames[MID]
    return frame[frame["timestamp"] >= 1609459200000].iloc[:30].reset_index(drop=True)


def _seed(db, frame: pd.DataFrame) -> pd.DataFrame:
    with db.connection() as conn:
        upsert_candles(conn, "binanceusdm", SYM, "1h", frame)
        conn.commit()
        return load_candles(conn, "binanceusdm", SYM, "1h")


def _stored(db) -> pd.DataFrame:
    with db.connection() as conn:
        return load_candles(conn, "binanceusdm", SYM, "1h")


def _csv(path: Path, header: str, lines: list[str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{MID}.csv").write_text("\n".join([header, *lines]) + "\n")
    return path


def _lines(frame: pd.DataFrame) -> list[str]:
    return [",".join(repr(v) for v in row) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize(
    ("header", "edit", "rule", "words"),
    [
        ("timestamp,open,high,low,close,volume", "price_text", "csv_readable", "'abc'"),
        ("timestamp,open,high,low,close,volume", "time_empty", "csv_readable", "timestamp"),
        ("timestamp,open,high,low,close,volume", "ragged", "csv_readable", "fields"),
        ("timestamp,open,high,low,close", "no_volume", "columns_present", "volume"),
    ],
)
def test_an_unreadable_candle_file_is_refused_by_rule(
    db, tmp_path: Path, hours, header, edit, rule, words
) -> None:
    before = _seed(db, hours.iloc[:20])
    lines = _lines(hours)
    if edit == "price_text":
        lines[25] = lines[25].replace(lines[25].split(",")[2], "abc", 1)
    elif edit == "time_empty":
        lines[25] = "," + lines[25].split(",", 1)[1]
    elif edit == "ragged":
        lines[25] += ",7.5"
    elif edit == "no_volume":
        lines = [line.rsplit(",", 1)[0] for line in lines]
    folder = _csv(tmp_path / "bad", header, lines)
    with pytest.raises(CandleValidationError) as caught:
        ingest_partition(db, CsvCandleSource(str(folder)), SYM, "1h", 0)
    assert caught.value.rule == rule
    message = str(caught.value)
    assert message.startswith(f"{SYM} 1h: candles break rule '{rule}'")
    assert words in message
    pd.testing.assert_frame_equal(_stored(db), before)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _kline(row) -> list:
    t = int(row.timestamp)
    prices = [repr(float(v)) for v in (row.open, row.high, row.low, row.close, row.volume)]
    return [t, *prices, t + STEP - 1, "0", 0, "0", "0", "0"]


@pytest.mark.parametrize("open_time", [None, "soon", "", "NaN"])
def test_a_kline_with_an_unreadable_open_time_is_refused_not_dropped(
    db, small_dir: Path, hours, open_time
) -> None:
    """ccxt skips such a row silently (its since filter wants an integer): the batch would be
    stored with a hole where the exchange sent garbage."""
    before = _seed(db, hours.iloc[:20])
    rows = [_kline(r) for r in hours.iloc[20:30].itertuples(index=False)]
    rows[4][0] = open_time
    clock = ReplayClock(int(hours["timestamp"].iloc[29]) + STEP)
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        _post(f"{server.url}/_replay/klines", {"symbol": MID, "rows": rows})
        source = CcxtCandleSource(
            make_exchange("binanceusdm", server.url), RetryPolicy(attempts=2, backoff_s=0.01)
        )
        with pytest.raises(CandleValidationError) as caught:
            ingest_partition(db, source, SYM, "1h", 0)
    assert caught.value.rule == "open_time_readable"
    assert str(caught.value).startswith(f"{SYM} 1h: candles break rule 'open_time_readable'")
    assert repr(open_time) in str(caught.value)
    pd.testing.assert_frame_equal(_stored(db), before)


def test_injected_klines_are_served_raw_and_paged(small_dir: Path, hours) -> None:
    rows = [_kline(r) for r in hours.iloc[:10].itertuples(index=False)]
    rows[3][1] = None  # a wrong type travels as it is
    rows[5][0] = "x"  # no integer open time: served with the row before it
    t = [int(v) for v in hours["timestamp"].iloc[:10]]
    clock = ReplayClock(t[9] + STEP)
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        assert _post(f"{server.url}/_replay/klines", {"symbol": MID, "rows": rows}) == {"ok": True}

        def page(**query) -> list:
            params = "&".join(f"{k}={v}" for k, v in {"symbol": MID, **query}.items())
            with urllib.request.urlopen(f"{server.url}/fapi/v1/klines?{params}") as answer:
                return json.loads(answer.read())

        assert page(interval="1h", startTime=t[0], limit=4) == rows[:4]
        assert page(interval="4h", startTime=t[4], endTime=t[6], limit=10) == rows[4:7]
        assert page(interval="1h", startTime=t[6], limit=1000) == rows[6:]
        assert page(interval="1h", endTime=t[9], limit=2) == rows[8:]
        _post(f"{server.url}/_replay/klines", {"symbol": MID})  # the recording again
        recorded = page(interval="1h", startTime=t[0], limit=2)
        assert [r[0] for r in recorded] == t[:2]
        assert recorded[0][1] == repr(float(hours["open"].iloc[0]))


def test_full_precision_prices_in_a_candle_file_are_stored_exactly(db, tmp_path, hours) -> None:
    """pandas' default float parser is off by an ulp on some 17-digit values; the csv source
    must store what the file says, as the ccxt source does (float(text) is exact)."""
    precise = hours.copy()
    factors = 1 + (pd.Series(range(len(hours))) + 1) * 1.2345678901234e-7
    for column in ("open", "high", "low", "close", "volume"):
        precise[column] = precise[column] * factors
    folder = _csv(tmp_path / "precise", "timestamp,open,high,low,close,volume", _lines(precise))
    ingest_partition(db, CsvCandleSource(str(folder)), SYM, "1h", 0)
    stored = _stored(db)
    assert stored.to_numpy().tolist() == precise.to_numpy().tolist()


def test_lines_longer_than_the_header_are_refused_not_shifted(db, tmp_path, hours) -> None:
    """Every line one field longer than the header: pandas would silently take the first
    column as the index and shift every value one column left."""
    before = _seed(db, hours.iloc[:20])
    whole = hours.astype({c: "int64" for c in ("open", "high", "low", "close", "volume")})
    lines = [line + ",7" for line in _lines(whole)]
    folder = _csv(tmp_path / "long", "timestamp,open,high,low,close,volume", lines)
    with pytest.raises(CandleValidationError) as caught:
        ingest_partition(db, CsvCandleSource(str(folder)), SYM, "1h", 0)
    assert caught.value.rule == "csv_readable"
    assert "more fields than the header" in str(caught.value)
    pd.testing.assert_frame_equal(_stored(db), before)


@pytest.mark.parametrize("extra", ["off_grid", "duplicate"])
def test_a_candle_cut_off_by_the_page_limit_is_not_missed(db, small_dir, hours, extra) -> None:
    """An extra row (off-grid or duplicate open time) after any candle of the batch: where a
    window holds as many open times as the page limit, the limit cuts the last one off, and a
    pager that trusts the window never sees it."""
    before = _seed(db, hours.iloc[:10])
    rows = [_kline(r) for r in hours.iloc[10:30].itertuples(index=False)]
    clock = ReplayClock(int(hours["timestamp"].iloc[29]) + STEP, speed=1e-9)
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        exchange = make_exchange("binanceusdm", server.url)
        source = CcxtCandleSource(exchange, RetryPolicy(attempts=2), page_limit=5)
        for after in range(12):
            bad = [list(r) for r in rows]
            odd = list(bad[after])
            odd[0] += 60_000 if extra == "off_grid" else 0
            bad.insert(after + 1, odd)
            _post(f"{server.url}/_replay/klines", {"symbol": MID, "rows": bad})
            with pytest.raises(CandleValidationError) as caught:
                ingest_partition(db, source, SYM, "1h", 0)
            rule = "timestamp_on_1h_grid" if extra == "off_grid" else "timestamps_unique"
            assert caught.value.rule in (rule, "page_fits_its_window"), after
            pd.testing.assert_frame_equal(_stored(db), before)


@pytest.mark.parametrize(("column", "value"), [(1, "abc"), (3, None), (5, True), (2, "")])
def test_a_kline_with_an_unreadable_price_is_refused_as_sent(
    db, small_dir: Path, hours, column, value
) -> None:
    """ccxt reads text, null or a boolean price as None: the refusal names the raw value the
    exchange sent, not the NaN the schema would see."""
    before = _seed(db, hours.iloc[:20])
    rows = [_kline(r) for r in hours.iloc[20:30].itertuples(index=False)]
    rows[6][column] = value
    clock = ReplayClock(int(hours["timestamp"].iloc[29]) + STEP, speed=1e-9)
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        _post(f"{server.url}/_replay/klines", {"symbol": MID, "rows": rows})
        source = CcxtCandleSource(make_exchange("binanceusdm", server.url))
        with pytest.raises(CandleValidationError) as caught:
            ingest_partition(db, source, SYM, "1h", 0)
    assert caught.value.rule == "values_readable"
    message = str(caught.value)
    assert message.startswith(f"{SYM} 1h: candles break rule 'values_readable'")
    assert f"{rows[6]!r}: its price or volume is unreadable" in message
    pd.testing.assert_frame_equal(_stored(db), before)
