"""Ingestion throughput benchmark: candles per second into PostgreSQL, beside raw references.

Run on demand (never part of the test suite):

    .venv/bin/python bench/ingest.py --repeat 3

It starts a private, throw-away embedded PostgreSQL in a temporary SIGNALS_HOME, so it never
touches the user's database, and times the same candles (every 1h candle of the sample folder)
along these paths:

- raw COPY:       the reference every ratio is against: the rows, already parsed in memory,
                  rendered by `copy_binary` (exchange, symbol, timeframe as leading text) and
                  binary-COPYed into an unindexed table shaped like `candles` (LIKE candles:
                  no key, no CHECKs), one transaction: the ceiling for any writer;
- text COPY:      the same rows rendered as text by pandas (`to_csv`, ISO timestamps with an
                  explicit UTC offset) and COPYed in text format into the same kind of table:
                  what the hand-written binary encoder saves;
- direct COPY:    the binary COPY straight into the real, indexed `candles` (PK and CHECKs, no
                  staging, no ON CONFLICT): what an append-only writer would cost, so the price
                  of the staging + upsert design can be read off;
- csv:            the product's `ingest_partition` over `CsvCandleSource` (read + parse the gz
                  CSV, pandera validation, COPY into staging, INSERT … ON CONFLICT into `candles`);
- replay:         the same through the replay exchange over HTTP with the real ccxt client,
                  with ccxt's rate limiter on (the product default) and off;
- naive INSERT:   psycopg's `executemany` of single-row INSERTs into a table keyed like
                  `candles`: the floor a straightforward implementation would reach.

Every run also times rendering alone (no database), binary against pandas text, for the
staging rows `upsert_candles` sends and for the raw COPY rows, so the speed-up `copy_binary`'s
docstring cites is measured, not remembered.

See bench/README.md for what each line of the output means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.store.database import Database

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "binance-usdm-1h"
TIMEFRAME = "1h"
GOAL_SHARE = 0.50  # the CSV path should reach at least half of raw COPY's rate

RAW_TABLE = "bench_raw_copy"
TEXT_TABLE = "bench_text_copy"
NAIVE_TABLE = "bench_naive_insert"

# The rows as stored in `candles` (see pipeline/store/migrations/0001_candles.sql), as a plain
# heap: LIKE without INCLUDING INDEXES / CONSTRAINTS copies no primary key and no CHECKs (only
# NOT NULL and, here, the ingested_at default). What the bytes cost to land, and nothing more.
RAW_DDL = f"CREATE TABLE {RAW_TABLE} (LIKE candles INCLUDING DEFAULTS)"
TEXT_DDL = f"CREATE TABLE {TEXT_TABLE} (LIKE candles INCLUDING DEFAULTS)"

# `candles`' columns and primary key, without the CHECKs: the naive writer pays for the index,
# not for our rules.
NAIVE_DDL = f"CREATE TABLE {NAIVE_TABLE} (LIKE candles INCLUDING DEFAULTS INCLUDING INDEXES)"

# The columns every in-memory writer fills, in `copy_binary`'s order with three leading texts.
COPY_COLUMNS = "exchange, symbol, timeframe, open_time, open, high, low, close, volume"
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")

NAIVE_INSERT = (
    f"INSERT INTO {NAIVE_TABLE} (exchange, symbol, timeframe, open_time, "
    "open, high, low, close, volume) "
    "VALUES (%s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s)"
)

PATHS = ("copy", "copy-text", "copy-direct", "naive", "csv", "replay-nolimit", "replay")


@dataclass
class Measurement:
    """One benchmark line: every repeat's time, so best and median can both be reported."""

    key: str
    label: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    # Rows actually timed when only a subset was (naive INSERT); rates are per timed row.
    timed_rows: int | None = None
    note: str = ""

    @property
    def rows_timed(self) -> int:
        return self.timed_rows if self.timed_rows is not None else self.rows

    @property
    def best_s(self) -> float:
        return min(self.seconds)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def rate(self, run: str) -> float:
        """Rows per second of the best or the median run."""
        return self.rows_timed / (self.best_s if run == "best" else self.median_s)

    def seconds_for_all(self, run: str) -> float:
        """Seconds for all rows: measured, or extrapolated from the timed subset's rate."""
        return self.rows / self.rate(run)

    @property
    def extrapolated(self) -> bool:
        return self.rows_timed != self.rows


# -- set-up ------------------------------------------------------------------------------


# (path key, ccxt's rate limiter on?, what the line means): the two replay measurements.
REPLAY_PATHS = (
    (
        "replay-nolimit",
        False,
        "ccxt over HTTP to the replay exchange, enableRateLimit=False: our code plus HTTP/JSON",
    ),
    (
        "replay",
        True,
        "the product default: ccxt spaces requests as Binance requires "
        "(1000-candle pages weigh 5, i.e. ~250 ms apart)",
    ),
)


def resolve_data_dir(cli_value: str | None) -> Path:
    """--data-dir, else $SIGNALS_DATA_DIR, else the shared sample folder; fail clearly if absent."""
    raw = cli_value or os.environ.get("SIGNALS_DATA_DIR") or str(DEFAULT_DATA_DIR)
    path = Path(raw).expanduser().resolve()
    where = (
        "--data-dir"
        if cli_value
        else ("SIGNALS_DATA_DIR" if os.environ.get("SIGNALS_DATA_DIR") else "the default location")
    )
    if not path.is_dir():
        raise SystemExit(
            f"error: candle folder not found: {path} (from {where}).\n"
            "Point --data-dir (or SIGNALS_DATA_DIR) at a folder of MARKETID.csv[.gz] 1h "
            "candle files, e.g. ../shared/data/binance-usdm-1h relative to the repository root."
        )
    if not any(path.glob("*.csv*")):
        raise SystemExit(f"error: no MARKETID.csv[.gz] candle files in {path} (from {where}).")
    return path


def isolate_environment() -> Path:
    """Point SIGNALS_HOME at a fresh temporary directory and drop any external database URL.

    Must run before Settings are read, so the benchmark's embedded server lives (and dies)
    in the temporary directory and never touches the user's data.
    """
    home = Path(tempfile.mkdtemp(prefix="signals-bench-"))
    os.environ["SIGNALS_HOME"] = str(home)
    os.environ.pop("SIGNALS_DATABASE_URL", None)
    return home


def load_frames(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Every market's 1h candles, parsed and validated once, for the in-memory references."""
    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.schema import validate_candles

    folder = CandleFolder(data_dir)
    return {
        symbol: validate_candles(folder.read(symbol, TIMEFRAME), symbol, TIMEFRAME)
        for symbol in folder.symbols()
    }


def reset(db: Database, table: str, ddl: str | None = None) -> None:
    """Start a run empty: truncate (or recreate) the table, then checkpoint.

    The checkpoint flushes the previous run's dirty pages now, so that work is not billed to
    the next timed run (superusers only; the embedded server's user is one).
    """
    with db.connection() as conn:
        if ddl is None:
            conn.execute(f"TRUNCATE {table}")
        else:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(ddl)
        conn.commit()
        try:
            conn.execute("CHECKPOINT")
            conn.commit()
        except Exception:  # not a superuser: carry on, only noisier
            conn.rollback()


def count_rows(db: Database, table: str) -> int:
    with db.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        conn.commit()
    assert row is not None
    return int(row[0])


def check_rows(db: Database, table: str, expected: int, label: str) -> None:
    """A benchmark that silently wrote nothing would look fast; refuse to report it."""
    got = count_rows(db, table)
    if got != expected:
        raise SystemExit(f"error: {label} left {got} rows in {table}, expected {expected}")


# -- the paths ---------------------------------------------------------------------------


def run_csv(db: Database, data_dir: Path, symbols: list[str], since_ms: int) -> None:
    """The product's CSV ingestion, one partition per market, as `signals ingest` runs it."""
    from pipeline.data.ingest import CsvCandleSource, ingest_partition

    source = CsvCandleSource(str(data_dir))
    for symbol in symbols:
        ingest_partition(db, source, symbol, TIMEFRAME, since_ms)


def run_replay(
    db: Database, api_url: str, symbols: list[str], since_ms: int, rate_limit: bool
) -> None:
    """The product's ccxt ingestion against the replay exchange, with a fresh client per run
    (so market loading is paid each time, as a new process pays it)."""
    from pipeline.data.ingest import ingest_partition
    from pipeline.data.sources import open_source
    from pipeline.exchange.ids import BINANCE_USDM

    source = open_source("ccxt", BINANCE_USDM, api_url=api_url)
    source.exchange.enableRateLimit = rate_limit  # type: ignore[attr-defined]
    for symbol in symbols:
        ingest_partition(db, source, symbol, TIMEFRAME, since_ms)


def run_binary_copy(
    db: Database, table: str, frames: dict[str, pd.DataFrame], exchange: str
) -> None:
    """All frames through `copy_candles` (binary rendering included) in one transaction."""
    from pipeline.store.candles import copy_candles

    with db.connection() as conn:
        with conn.transaction(), conn.cursor() as cur:
            for symbol, frame in frames.items():
                copy_candles(
                    cur,
                    table,
                    frame,
                    columns=COPY_COLUMNS,
                    leading_text=(exchange, symbol, TIMEFRAME),
                )
        conn.commit()


def render_text(frame: pd.DataFrame, leading_text: tuple[str, ...] = ()) -> bytes:
    """The text COPY alternative to `copy_binary`, same layout: [leading_text…,] open_time,
    open, high, low, close, volume, rendered by pandas.

    Open times become tz-aware UTC datetimes ('2020-10-23 08:00:00+00:00'), which the server
    reads right whatever the session's TimeZone; floats keep pandas' shortest exact repr.
    """
    import pandas as pd

    columns: dict[str, Any] = {f"text{i}": text for i, text in enumerate(leading_text)}
    columns["open_time"] = pd.to_datetime(frame["timestamp"].to_numpy(), unit="ms", utc=True)
    for name in VALUE_COLUMNS:
        columns[name] = frame[name].to_numpy()
    rows = pd.DataFrame(columns)
    return rows.to_csv(sep="\t", header=False, index=False, lineterminator="\n").encode()


def run_text_copy(db: Database, frames: dict[str, pd.DataFrame], exchange: str) -> None:
    """All frames rendered by `render_text` and COPYed in text format, one transaction."""
    with db.connection() as conn:
        with conn.transaction(), conn.cursor() as cur:
            for symbol, frame in frames.items():
                text = render_text(frame, (exchange, symbol, TIMEFRAME))
                with cur.copy(f"COPY {TEXT_TABLE} ({COPY_COLUMNS}) FROM STDIN") as copy:
                    copy.write(text)
        conn.commit()


def check_same_rows(db: Database, left: str, right: str, label: str) -> None:
    """The text path must store exactly what the binary path stores, or its timing means little."""
    cols = COPY_COLUMNS
    with db.connection() as conn:
        row = conn.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM {left} "
            f"EXCEPT ALL SELECT {cols} FROM {right}) d) + "
            f"(SELECT count(*) FROM (SELECT {cols} FROM {right} "
            f"EXCEPT ALL SELECT {cols} FROM {left}) d)"
        ).fetchone()
        conn.commit()
    assert row is not None
    if row[0]:
        raise SystemExit(f"error: {label} stored {row[0]} row(s) unlike {left}'s")


@dataclass
class RenderTiming:
    """Rendering alone (no database) of every frame, binary against pandas text."""

    layout: str
    binary_s: list[float] = field(default_factory=list)
    text_s: list[float] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return min(self.text_s) / min(self.binary_s)

    def line(self) -> str:
        return (
            f"render, {self.layout}: binary {min(self.binary_s):.4f} s, "
            f"text {min(self.text_s):.3f} s ({self.speedup:.0f}× faster)"
        )


def time_rendering(
    frames: dict[str, pd.DataFrame], exchange: str, repeat: int
) -> list[RenderTiming]:
    """Best-of-`repeat` render times for the staging rows (6 columns, what `upsert_candles`
    sends) and the raw COPY rows (9 columns, three constant texts in front)."""
    from pipeline.store.candles import copy_binary

    layouts = {
        "staging rows (6 columns)": lambda symbol: (),
        "raw COPY rows (9 columns)": lambda symbol: (exchange, symbol, TIMEFRAME),
    }
    timings = []
    for layout, leading in layouts.items():
        t = RenderTiming(layout)
        for symbol, frame in frames.items():  # warm up (first-call costs) outside the timing
            copy_binary(frame, leading(symbol))
            render_text(frame, leading(symbol))
        # Each renderer's runs back to back, so neither inherits the other's heap churn.
        for _ in range(repeat):
            t.binary_s.append(
                timed(lambda lead=leading: [copy_binary(f, lead(s)) for s, f in frames.items()])
            )
        for _ in range(repeat):
            t.text_s.append(
                timed(lambda lead=leading: [render_text(f, lead(s)) for s, f in frames.items()])
            )
        timings.append(t)
    return timings


def naive_params(frames: dict[str, pd.DataFrame], exchange: str) -> list[tuple[Any, ...]]:
    """Python tuples for every row, built outside the timed region."""
    params: list[tuple[Any, ...]] = []
    for symbol, frame in frames.items():
        for ts, o, h, lo, c, v in frame.itertuples(index=False, name=None):
            params.append((exchange, symbol, TIMEFRAME, int(ts), o, h, lo, c, v))
    return params


def run_naive(db: Database, params: list[tuple[Any, ...]]) -> None:
    """psycopg 3 `executemany` of the single-row INSERT, committed once at the end."""
    with db.connection() as conn:
        with conn.cursor() as cur:
            cur.executemany(NAIVE_INSERT, params)
        conn.commit()


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# -- reporting ---------------------------------------------------------------------------


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def render_table(results: list[Measurement], raw: Measurement | None, repeat: int) -> str:
    header = (
        f"{'path':<42} {'rows':>8} {'best s':>8} {'median s':>9} "
        f"{'best c/s':>11} {'median c/s':>11} {'vs COPY':>8}"
    )
    lines = [header, "-" * len(header)]
    for m in results:
        ratio = f"{m.rate('best') / raw.rate('best'):>7.1%}" if raw else "    n/a"
        mark = "*" if m.extrapolated else " "
        lines.append(
            f"{m.label:<42} {m.rows:>8,} {m.seconds_for_all('best'):>7.2f}{mark} "
            f"{m.seconds_for_all('median'):>8.2f}{mark} "
            f"{fmt_rate(m.rate('best')):>11} {fmt_rate(m.rate('median')):>11} {ratio:>8}"
        )
    lines.append("")
    lines.append(
        f"best and median of {repeat} run(s) each; c/s = candles per second; "
        "'vs COPY' = best c/s over raw binary COPY's best c/s."
    )
    for m in results:
        if m.note:
            lines.append(f"{'*' if m.extrapolated else '-'} {m.label}: {m.note}")
    return "\n".join(lines)


def goal_line(csv: Measurement | None, raw: Measurement | None) -> tuple[str, bool | None]:
    text = f"goal: CSV path ≥ {GOAL_SHARE:.0%} of raw COPY".replace("%", " %")
    if csv is None or raw is None:
        return f"{text}: not measured (needs both the csv and copy paths)", None
    share = csv.rate("best") / raw.rate("best")
    met = share >= GOAL_SHARE
    verdict = "MET" if met else "NOT MET"
    return f"{text}: {verdict} (CSV path at {share:.1%} of raw COPY, best vs best)", met


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description=(
            "Benchmark candle ingestion into a private, temporary embedded PostgreSQL: the "
            "product's CSV path and replay-exchange (ccxt over HTTP) path, beside a raw binary "
            "COPY ceiling, a text COPY, a direct COPY into the indexed table and a naive "
            "executemany INSERT floor, measured in the same run, plus binary vs text render "
            "times. "
            "Prints candles per second per path and whether the CSV path reaches "
            f"{GOAL_SHARE:.0%} of raw COPY."
        ),
    )
    parser.add_argument(
        "--data-dir",
        help="folder of MARKETID.csv[.gz] 1h candles (default: $SIGNALS_DATA_DIR, else "
        "../shared/data/binance-usdm-1h relative to the repository root)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per path; best and median are reported (default: 3)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of {', '.join(PATHS)} (default: all); 'replay' is the "
        "rate-limited one and takes ~40 s a run",
    )
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=0,
        help="time the naive INSERT on the first N rows only and extrapolate (default: 0 = all)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.naive_rows < 0:
        parser.error("--naive-rows must not be negative")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def benchmark(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Run the selected paths against the (already isolated) embedded server."""
    from pipeline.data.timeframes import parse_date_ms
    from pipeline.exchange.ids import DEFAULT_EXCHANGE
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.settings import DEFAULT_SINCE, Settings
    from pipeline.store.database import open_database

    settings = Settings.from_env()
    progress(f"starting a private embedded PostgreSQL in {settings.pgdata} …")
    db = open_database(settings)
    with db.connection() as conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        conn.commit()

    progress(f"loading candles from {data_dir} …")
    frames = load_frames(data_dir)
    symbols = list(frames)
    total = sum(len(f) for f in frames.values())
    since_ms = parse_date_ms(DEFAULT_SINCE)
    exchange = DEFAULT_EXCHANGE  # what CsvCandleSource and the replay source report
    progress(f"{len(symbols)} markets, {total:,} {TIMEFRAME} candles")

    results: dict[str, Measurement] = {}

    def measure(
        m: Measurement,
        table: str,
        run: Callable[[], None],
        ddl: str | None = None,
    ) -> None:
        for i in range(args.repeat):
            reset(db, table, ddl)
            seconds = timed(run)
            check_rows(db, table, m.rows_timed, m.label)
            m.seconds.append(seconds)
            progress(
                f"  {m.label}: run {i + 1}/{args.repeat}: {seconds:.2f} s "
                f"({fmt_rate(m.rows_timed / seconds)} c/s)"
            )
        results[m.key] = m

    progress("timing rendering alone (binary vs text) …")
    renders = time_rendering(frames, exchange, args.repeat)
    for r in renders:
        progress(f"  {r.line()}")

    if "copy" in args.paths:
        m = Measurement(
            "copy",
            "raw binary COPY (unindexed, in memory)",
            total,
            note="copy_candles (copy_binary, exchange/symbol/timeframe as leading text) of the "
            "parsed frames into LIKE candles (no key, no CHECKs), one transaction; "
            "rendering included",
        )
        measure(m, RAW_TABLE, lambda: run_binary_copy(db, RAW_TABLE, frames, exchange), ddl=RAW_DDL)

    if "copy-text" in args.paths:
        m = Measurement(
            "copy-text",
            "text COPY (pandas to_csv, unindexed)",
            total,
            note="the same rows rendered by pandas to_csv (ISO timestamps, +00:00) and COPYed "
            "as text into the same kind of table; rendering included",
        )
        measure(m, TEXT_TABLE, lambda: run_text_copy(db, frames, exchange), ddl=TEXT_DDL)
        if "copy" in args.paths:
            check_same_rows(db, RAW_TABLE, TEXT_TABLE, m.label)

    if "copy-direct" in args.paths:
        m = Measurement(
            "copy-direct",
            "direct COPY into candles (PK, no upsert)",
            total,
            note="the raw binary COPY into the real candles table (primary key, CHECKs) after "
            "a TRUNCATE: an append-only writer without staging or ON CONFLICT",
        )
        measure(m, "candles", lambda: run_binary_copy(db, "candles", frames, exchange))
        if "copy" in args.paths:
            check_same_rows(db, RAW_TABLE, "candles", m.label)

    if "naive" in args.paths:
        params = naive_params(frames, exchange)
        subset = args.naive_rows if 0 < args.naive_rows < total else total
        timed_params = params[:subset]
        m = Measurement(
            "naive",
            "naive executemany INSERT (PK)",
            total,
            timed_rows=subset,
            note="single-row INSERT … VALUES via psycopg executemany into a table "
            "with candles' columns and primary key, one commit",
        )
        if subset < total:
            m.note += f"; timed on the first {subset:,} rows, seconds extrapolated to all rows"
        measure(m, NAIVE_TABLE, lambda: run_naive(db, timed_params), ddl=NAIVE_DDL)

    if "csv" in args.paths:
        m = Measurement(
            "csv",
            "CSV path (ingest_partition)",
            total,
            note="CsvCandleSource: gz CSV read + parse, pandera, COPY staging + "
            "upsert, summary and gap queries; into empty candles",
        )
        measure(m, "candles", lambda: run_csv(db, data_dir, symbols, since_ms))

    replay_paths = [p for p in ("replay-nolimit", "replay") if p in args.paths]
    if replay_paths:
        progress("starting the replay exchange …")
        exchange = ReplayExchange(data_dir)
        for market in exchange.data.symbols():  # warm the server's cache outside the timing
            exchange.data.series(market, TIMEFRAME)
        with ReplayServer(exchange) as server:
            for key, rate_limit, note in REPLAY_PATHS:
                if key not in replay_paths:
                    continue
                label = f"replay path, rate limiter {'on' if rate_limit else 'off'}"
                measure(
                    Measurement(key, label, total, note=note),
                    "candles",
                    lambda limit=rate_limit: run_replay(
                        db, server.url, symbols, since_ms, rate_limit=limit
                    ),
                )
            requests = dict(exchange.requests)
    else:
        requests = {}

    order = ("copy", "copy-text", "copy-direct", "csv", "replay-nolimit", "replay", "naive")
    ordered = [results[k] for k in order if k in results]
    raw = results.get("copy")
    table = render_table(ordered, raw, args.repeat)
    goal, met = goal_line(results.get("csv"), raw)
    print()
    print(
        f"ingest benchmark: {len(symbols)} markets × {TIMEFRAME}, {total:,} candles, "
        f"PostgreSQL {server_version} (embedded, private)"
    )
    print(table)
    print()
    for r in renders:
        print(r.line())
    print()
    print(goal)

    return {
        "candles": total,
        "markets": symbols,
        "timeframe": TIMEFRAME,
        "repeat": args.repeat,
        "postgres": server_version,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "replay_requests_all_runs": requests,
        "paths": [
            {
                **asdict(m),
                "best_s": m.seconds_for_all("best"),
                "median_s": m.seconds_for_all("median"),
                "best_candles_per_s": m.rate("best"),
                "median_candles_per_s": m.rate("median"),
                "extrapolated": m.extrapolated,
                "ratio_to_raw_copy": m.rate("best") / raw.rate("best") if raw else None,
            }
            for m in ordered
        ],
        "render_best_s": [
            {
                "layout": r.layout,
                "binary_s": min(r.binary_s),
                "text_s": min(r.text_s),
                "text_over_binary": r.speedup,
            }
            for r in renders
        ],
        "goal": {"csv_share_of_raw_copy_at_least": GOAL_SHARE, "met": met, "line": goal},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    home = isolate_environment()
    try:
        figures = benchmark(args, data_dir)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
            progress(f"figures written to {args.json}")
    finally:
        from pipeline.settings import Settings
        from pipeline.store.database import close_all
        from pipeline.store.embedded import stop_embedded

        close_all()
        stop_embedded(Settings.from_env().pgdata)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
