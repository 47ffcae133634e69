"""Trial: malformed candle batches by the thousand, through the CSV source and through ccxt
over HTTP, into a real PostgreSQL.

For each generated batch (see trials/malformed.py): the candles table is reset to the batch's
seed candles, then `ingest_partition` takes the batch, either from a candle file
(`CsvCandleSource`) or from the replay exchange serving it as raw Binance klines to the real
ccxt client over HTTP (`POST /_replay/klines`, pages of 7 candles). A batch survived when

- it was valid and the table now holds the seed and the batch exactly, row by row; or
- it was malformed and the ingest raised `CandleValidationError` whose headline names the
  market, the timeframe and a rule the break does break (`<symbol> 1h: candles break rule
  '<rule>'`), and the table still holds the seed exactly.

Anything else is lost: a bad value stored, a good row lost or changed, a refusal of a valid
batch, a refusal under a rule that is not the problem, another exception type, a hang.

    python -m trials.malformed_candles --batches 1000 --seed 0
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from trials.malformed import HTTP_PAGE, KINDS, PATHS, TIMEFRAME, Batch, batches
from trials.outcome import TrialOutcome, add_common_arguments, run_and_report

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO.parent / "shared" / "data" / "binance-usdm-1h"
EXCHANGE = "binanceusdm"
HANG_S = 60.0  # an ingest that takes longer than this is a hang (they take milliseconds)


def load_frames(data_dir: Path) -> dict[str, pd.DataFrame]:
    """market id → the folder's validated 1h candles: the valid material batches are cut from."""
    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.schema import validate_candles

    folder = CandleFolder(data_dir)
    return {
        mid: validate_candles(folder.read(symbol), symbol, TIMEFRAME)
        for mid, symbol in zip(folder.market_ids(), folder.symbols(), strict=True)
    }


@contextmanager
def private_database() -> Iterator[str]:
    """A throw-away embedded PostgreSQL in a temporary SIGNALS_HOME (as bench/ingest.py)."""
    from pipeline.store.embedded import embedded_url, stop_embedded

    home = Path(tempfile.mkdtemp(prefix="signals-trial-"))
    saved = {k: os.environ.get(k) for k in ("SIGNALS_HOME", "SIGNALS_DATABASE_URL")}
    os.environ["SIGNALS_HOME"] = str(home)
    os.environ.pop("SIGNALS_DATABASE_URL", None)
    try:
        yield embedded_url(home / "pg")
    finally:
        stop_embedded(home / "pg")
        shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Bench:
    """The parts every batch goes through: the database, a replay exchange over HTTP and the
    ccxt source pointed at it, and a scratch folder for candle files."""

    def __init__(self, database_url: str, frames: dict[str, pd.DataFrame], scratch: Path):
        from pipeline.data.ccxt_source import CcxtCandleSource
        from pipeline.exchange.client import make_exchange
        from pipeline.exchange.retry import RetryPolicy
        from pipeline.replay.clock import ReplayClock
        from pipeline.replay.server import ReplayExchange, ReplayServer
        from pipeline.store.database import Database

        self.db = Database(database_url)
        self.scratch = scratch
        listing = scratch / "listing"  # what exchangeInfo lists; klines come from the batches
        listing.mkdir()
        for market, frame in frames.items():
            frame.iloc[:48].to_csv(listing / f"{market}.csv", index=False)
        self.exchange = ReplayExchange(listing, ReplayClock(0, speed=1e-9))
        self.server = ReplayServer(self.exchange).start()
        self.http = CcxtCandleSource(
            make_exchange(EXCHANGE, self.server.url),
            RetryPolicy(attempts=2, backoff_s=0.01),
            page_limit=HTTP_PAGE,
        )
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="ingest")
        self.files = 0
        self.last_rule: str | None = None  # the rule the last refusal named

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.server.stop()
        self.db.close()

    def _post(self, path: str, body: dict) -> None:
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.server.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status}")

    def reset(self, batch: Batch, symbol: str) -> pd.DataFrame:
        """The table holds the batch's seed candles and nothing else of its market."""
        from pipeline.store.candles import load_candles, upsert_candles

        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM candles WHERE exchange = %s AND symbol = %s AND timeframe = %s",
                (EXCHANGE, symbol, TIMEFRAME),
            )
            upsert_candles(conn, EXCHANGE, symbol, TIMEFRAME, batch.seed)
            conn.commit()
            return load_candles(conn, EXCHANGE, symbol, TIMEFRAME)

    def stored(self, symbol: str) -> pd.DataFrame:
        from pipeline.store.candles import load_candles

        with self.db.connection() as conn:
            return load_candles(conn, EXCHANGE, symbol, TIMEFRAME)

    def ingest(self, batch: Batch, symbol: str) -> Callable[[], object]:
        """The ingest of `batch` by its path, ready to run."""
        from pipeline.data.ingest import CsvCandleSource, ingest_partition

        if batch.path == "csv":
            self.files += 1
            folder = batch.write_csv(self.scratch / f"batch{self.files}")
            source = CsvCandleSource(str(folder), EXCHANGE)
            return lambda: ingest_partition(self.db, source, symbol, TIMEFRAME, 0)
        self._post("/_replay/klines", {"symbol": batch.market, "rows": batch.klines()})
        self._post("/_replay/clock", {"ms": batch.nominal_end})
        return lambda: ingest_partition(self.db, self.http, symbol, TIMEFRAME, 0)

    def run(self, batch: Batch) -> str | None:
        """Ingest one batch; None when it survived, else what was lost, in words."""
        from pipeline.data.schema import CandleValidationError
        from pipeline.exchange.markets import symbol_from_id

        symbol = symbol_from_id(batch.market)
        before = self.reset(batch, symbol)
        future = self.pool.submit(self.ingest(batch, symbol))
        refusal: CandleValidationError | None = None
        self.last_rule = None
        try:
            future.result(timeout=HANG_S)
        except FutureTimeout:
            # The stuck thread cannot be stopped: leave it, and give the next batches a new one.
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="ingest")
            return f"hang: the ingest ran past {HANG_S:.0f} s"
        except CandleValidationError as err:
            refusal = err
            self.last_rule = err.rule
        except Exception as err:  # any other type is the finding
            return f"unexpected {type(err).__name__}: {str(err)[:300]}"
        after = self.stored(symbol)
        if batch.expected is not None:
            if refusal is not None:
                return f"valid batch refused: {str(refusal)[:300]}"
            return _differs(after, batch.expected, "stored")
        if refusal is None:
            return f"malformed batch accepted ({len(after) - len(before)} rows added)"
        headline = f"{symbol} {TIMEFRAME}: candles break rule '{refusal.rule}'"
        if refusal.rule not in batch.rules or not str(refusal).startswith(headline):
            return (
                f"refused under {refusal.rule!r}, not one of {sorted(batch.rules)}: "
                f"{str(refusal)[:300]}"
            )
        return _differs(after, before, "after a refusal, the table")


def _differs(got: pd.DataFrame, want: pd.DataFrame, what: str) -> str | None:
    """None when the frames are equal value for value; else the first difference in words."""
    if len(got) != len(want):
        return f"{what} has {len(got)} rows, expected {len(want)}"
    got_values, want_values = got.to_numpy(), want[list(got.columns)].to_numpy()
    for i, (a, b) in enumerate(zip(got_values, want_values, strict=True)):
        if not (a == b).all():
            return f"{what} row {i} is {a.tolist()}, expected {b.tolist()}"
    return None


def run_trial(
    batches_total: int = 1000,
    seed: int = 0,
    *,
    data_dir: Path = SAMPLE_DIR,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrialOutcome:
    """`batches_total` generated batches, half through each path (the odd one through csv)."""
    frames = load_frames(data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="malformed-trial-"))
    lost: list[str] = []
    tried: Counter[tuple[str, str]] = Counter()
    survived: Counter[tuple[str, str]] = Counter()
    rules: Counter[str] = Counter()
    try:
        with _database(database_url) as url:
            bench = Bench(url, frames, scratch)
            try:
                for index, path in enumerate(PATHS):
                    want = batches_total // len(PATHS) + (index < batches_total % len(PATHS))
                    for batch in _generate(frames, path, want, seed * len(PATHS) + index):
                        problem = bench.run(batch)
                        tried[path, batch.kind] += 1
                        if problem is None:
                            survived[path, batch.kind] += 1
                            rules.update([bench.last_rule or "(stored)"])
                        else:
                            notes = "; ".join(batch.notes)
                            lost.append(f"{path} {batch.kind} {batch.market} [{notes}]: {problem}")
                        done = sum(tried.values())
                        if progress and done % 100 == 0:
                            progress(f"{done}/{batches_total} batches, {len(lost)} lost")
            finally:
                bench.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    kinds = sorted({k for _, k in tried})
    return TrialOutcome(
        name="malformed candle batches",
        cases=sum(tried.values()),
        survived=sum(survived.values()),
        lost=lost,
        command=f"python -m trials.malformed_candles --batches {batches_total} --seed {seed}",
        details={
            "per path (tried/survived)": {
                p: f"{sum(n for (q, _), n in tried.items() if q == p)}/"
                f"{sum(n for (q, _), n in survived.items() if q == p)}"
                for p in PATHS
            },
            "per kind (csv tried, http tried; all survived unless lost)": {
                k: f"{tried['csv', k]}, {tried['http', k]}" for k in kinds
            },
            "outcome of the survivors (rule refused under, or stored)": dict(rules.most_common()),
        },
    )


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with private_database() as private:
        yield private


def _generate(frames: dict[str, pd.DataFrame], path: str, count: int, seed: int) -> list[Batch]:
    """Exactly `count` batches for `path`, the kinds in turn (as even as `count` allows),
    reproducible from `seed`."""
    share = [count // len(KINDS) + (i < count % len(KINDS)) for i in range(len(KINDS))]
    per_kind = [
        _generate_kind(frames, path, kind, n, seed * 100 + i)
        for i, (kind, n) in enumerate(zip(KINDS, share, strict=True))
    ]
    # Interleaved, so a short run (or its progress lines) covers every kind.
    return [b for group in itertools.zip_longest(*per_kind) for b in group if b is not None]


def _generate_kind(
    frames: dict[str, pd.DataFrame], path: str, kind: str, count: int, seed: int
) -> list[Batch]:
    """`count` batches of one kind: hypothesis draws them (generation only, no shrinking, no
    example database, a fixed seed), round after round until there are enough."""
    out: list[Batch] = []
    round_ = 0
    while len(out) < count:
        want = count - len(out)

        @settings(
            max_examples=want,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis_seed(seed * 1000 + round_)
        @given(batches(frames, path, kind))
        def collect(batch: Batch) -> None:
            if len(out) < count:
                out.append(batch)

        collect()
        round_ += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trials.malformed_candles",
        description=(
            "Generate malformed (and some valid) candle batches with hypothesis and ingest each "
            "into a private embedded PostgreSQL, half from candle files (the csv source), half "
            "as Binance klines served by the replay exchange to ccxt over HTTP. A batch "
            "survives when a valid one is stored exactly and a malformed one is refused with "
            "CandleValidationError naming market, timeframe and the broken rule, the table "
            "unchanged. Exits 1 when any batch was lost."
        ),
    )
    parser.add_argument(
        "--batches", type=int, default=1000, help="batches in all, split between the two paths"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=SAMPLE_DIR, help="the sample candle folder (1h files)"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.exchange != EXCHANGE:
        # Each batch's verdict (stored, or refused under which rule) is derived from Binance's
        # kline arrays as ccxt's binance parser reads them; Bybit's arrays are all strings and
        # its parser reads them otherwise, so its verdicts would need deriving anew.
        parser.error("the malformed-candles trial speaks Binance's klines only (no --exchange)")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return run_and_report(
        lambda: run_trial(args.batches, args.seed, data_dir=args.data_dir, progress=say),
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
