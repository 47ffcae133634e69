"""The replay exchange's funding history: GET /fapi/v1/fundingRate as Binance USDⓈ-M serves it.

Rates come from `MARKETID_funding.csv[.gz]` in the funding folder (`funding_dir`, the shared
sample's `binance-usdm-funding/`) or, without one, beside the candles (columns funding_ms,
rate). A market with no file: with a funding folder given, it has no recorded history and
none is served (a verdict then charges its stated constant and counts it); without one, every
00/08/16 UTC settlement within its candles is given the constant 0.0001 (0.01 % per 8h), a
stand-in for tests of the paging, not a record. Settlements after the replay clock do not
exist yet.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.funding_rows import funding_file
from pipeline.data.timeframes import HOUR_MS
from pipeline.replay.clock import ReplayClock
from pipeline.replay.errors import BinanceError
from pipeline.replay.market_data import ReplayMarketData

DEFAULT_RATE = 0.0001
SETTLEMENT_MS = 8 * HOUR_MS
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def _recorded(path: object, market: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(path, dtype={"funding_ms": "int64", "rate": "float64"})
    missing = {"funding_ms", "rate"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    times = frame["funding_ms"].to_numpy(dtype="int64")
    rates = frame["rate"].to_numpy(dtype="float64")
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise ValueError(f"{path}: funding times of {market} must be strictly ascending")
    if not np.isfinite(rates).all():
        raise ValueError(f"{path}: funding rates of {market} must be finite")
    return times, rates


class ReplayFunding:
    """Funding settlements per market, recorded or constant, loaded on first request."""

    def __init__(
        self, data: ReplayMarketData, clock: ReplayClock, funding_dir: str | Path | None = None
    ):
        self.data, self.clock = data, clock
        self.funding_dir = Path(funding_dir) if funding_dir is not None else None
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def series(self, market: str) -> tuple[np.ndarray, np.ndarray]:
        """(funding times ms, rates), ascending, for the market's whole recorded span."""
        with self._lock:
            if market not in self._series:
                if self.funding_dir is not None:
                    path = funding_file(self.funding_dir, market)
                else:
                    path = self.data.folder.funding_file(market)
                if path is not None:
                    self._series[market] = _recorded(path, market)
                elif self.funding_dir is not None:  # no record: nothing to serve
                    self._series[market] = (np.empty(0, "int64"), np.empty(0))
                else:
                    opens = self.data.base[market]["timestamp"]
                    first = math.ceil(int(opens.iloc[0]) / SETTLEMENT_MS) * SETTLEMENT_MS
                    times = np.arange(first, int(opens.iloc[-1]) + 1, SETTLEMENT_MS, dtype="int64")
                    self._series[market] = (times, np.full(len(times), DEFAULT_RATE))
            return self._series[market]

    def _rows(self, market: str, start: int | None, end: int | None, limit: int) -> list[dict]:
        times, rates = self.series(market)
        visible = int(np.searchsorted(times, self.clock.now_ms(), side="right"))
        hi = visible if end is None else min(visible, int(np.searchsorted(times, end, "right")))
        if start is not None:
            lo = int(np.searchsorted(times, start, side="left"))
            hi = min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        rows = []
        for t, rate in zip(times[lo:hi].tolist(), rates[lo:hi].tolist(), strict=True):
            mark = self.data.price(market, t)
            rows.append(
                {
                    "symbol": market,
                    "fundingTime": t,
                    "fundingRate": f"{rate:.8f}",
                    "markPrice": "" if mark is None else f"{mark:.8f}",
                }
            )
        return rows

    def funding_rate(self, query: dict[str, str]) -> list[dict]:
        """GET /fapi/v1/fundingRate: from startTime up to `limit` rows (oldest first); without
        it, the newest `limit` up to endTime (or now); every market when no symbol is sent."""
        market = query.get("symbol")
        if market is not None and market not in self.data.base:
            raise BinanceError(-1121, "Invalid symbol.")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        markets = [market] if market is not None else self.data.symbols()
        rows = [row for m in markets for row in self._rows(m, start, end, limit)]
        rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
        return rows[:limit] if start is not None else rows[max(0, len(rows) - limit) :]
