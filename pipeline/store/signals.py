"""Live signals: one row per model, market, timeframe and candle, written once.

A second write of the same decision (a retried run) finds the first and returns it, so the
row, its id and the client order ids derived from it never change. A row is `production`
(the model in production decided it; execution acts on it) or `shadow` (a candidate decided
it on the same path; it is recorded, compared and resolved, never executed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from pipeline.store.models import jsonb

Mode = Literal["production", "shadow"]
MODES: tuple[Mode, ...] = ("production", "shadow")


@dataclass(frozen=True)
class SignalRow:
    id: int
    model_id: int
    exchange: str
    symbol: str
    timeframe: str
    candle_ms: int
    probability_up: float
    side: int
    input_hash: str
    created: bool  # False: the decision was already recorded (a retried run)
    mode: Mode = "production"


def record_signal(
    conn: psycopg.Connection,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    candle_ms: int,
    decision: Any,  # pipeline.signals.inference.Decision
    run_id: str | None,
    timings: dict[str, float],
    mode: Mode = "production",
    horizon: int | None = None,
    context: dict[str, Any] | None = None,
) -> SignalRow:
    """Insert the decision unless this model already decided this candle; return the row.
    `horizon`: the model's label horizon in candles (when the signal resolves); `context`: a
    portfolio model's place of this market in the portfolio (score, target weight, …)."""
    if mode not in MODES:
        raise ValueError(f"signal mode {mode!r} is not one of {MODES}")
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO signals (model_id, exchange, symbol, timeframe, candle_time,
                                    probability_up, confidence, side, threshold, input_hash,
                                    explanation, run_id, timings, mode, horizon, context)
               VALUES (%s, %s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s,
                       %s, %s, %s, %s)
               ON CONFLICT (model_id, exchange, symbol, timeframe, candle_time) DO NOTHING
               RETURNING id""",
            (
                decision.model_id,
                exchange,
                symbol,
                timeframe,
                candle_ms,
                decision.probability_up,
                decision.confidence,
                decision.side,
                decision.threshold,
                decision.input_hash,
                jsonb(decision.to_json()["explanation"]),
                run_id,
                jsonb(timings),
                mode,
                horizon,
                jsonb(context) if context is not None else None,
            ),
        ).fetchone()
        created = row is not None
        found = conn.execute(
            """SELECT id, probability_up, side, input_hash, mode FROM signals
               WHERE model_id = %s AND exchange = %s AND symbol = %s AND timeframe = %s
                 AND candle_time = to_timestamp(%s / 1000.0)""",
            (decision.model_id, exchange, symbol, timeframe, candle_ms),
        ).fetchone()
    assert found is not None
    return SignalRow(
        id=int(found[0]),
        model_id=int(decision.model_id),
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        candle_ms=candle_ms,
        probability_up=float(found[1]),
        side=int(found[2]),
        input_hash=str(found[3]),
        created=created,
        mode=found[4],
    )


def update_timings(conn: psycopg.Connection, signal_id: int, timings: dict[str, float]) -> None:
    """Merge more phase timings (ms) into a signal's record (execution adds its own)."""
    with conn.transaction():
        conn.execute(
            "UPDATE signals SET timings = timings || %s WHERE id = %s",
            (jsonb(timings), signal_id),
        )


def recent_sides(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    first_ms: int,
    last_ms: int,
) -> dict[int, int]:
    """Candle open ms → side over [first_ms, last_ms] of the production signals (shadow ones
    are never executed); where two models decided one candle (a promotion in between), the
    newer model's decision counts."""
    rows = conn.execute(
        """SELECT DISTINCT ON (candle_time)
                  (extract(epoch FROM candle_time) * 1000)::bigint, side
           FROM signals
           WHERE exchange = %s AND symbol = %s AND timeframe = %s AND mode = 'production'
             AND candle_time BETWEEN to_timestamp(%s / 1000.0) AND to_timestamp(%s / 1000.0)
           ORDER BY candle_time, model_id DESC""",
        (exchange, symbol, timeframe, first_ms, last_ms),
    ).fetchall()
    conn.commit()
    return {int(ms): int(side) for ms, side in rows}


_SIGNAL_COLUMNS = """id, model_id, (extract(epoch FROM candle_time) * 1000)::bigint AS candle_ms,
    probability_up, confidence, side, threshold, input_hash, explanation, run_id, timings,
    recorded_at, mode, horizon, realised_return, realised_net_return"""


def _signal_rows(conn: psycopg.Connection, where_and_order: str, params: tuple) -> list[dict]:
    """Signals as dicts (`_SIGNAL_COLUMNS`), read in their own short transaction."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_SIGNAL_COLUMNS} FROM signals {where_and_order}", params)
        rows = cur.fetchall()
    conn.commit()
    return rows


def load_signals(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    mode: Mode | None = None,
    model_id: int | None = None,
) -> list[dict[str, Any]]:
    """Every recorded signal of one market and timeframe (of one mode and model, if given),
    oldest first (for audits and parity)."""
    return _signal_rows(
        conn,
        """WHERE exchange = %s AND symbol = %s AND timeframe = %s
             AND (%s::text IS NULL OR mode = %s) AND (%s::bigint IS NULL OR model_id = %s)
           ORDER BY candle_time, model_id""",
        (exchange, symbol, timeframe, mode, mode, model_id, model_id),
    )


def resolve_signals(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    step_ms: int,
    round_trip_cost: float,
    now_ms: int | None,
) -> int:
    """Fill in what happened after each unresolved signal whose exit candle is stored and has
    closed by `now_ms` (the exchange's clock: a store may hold candles from a source ahead of
    it, and an outcome is never read from a candle the exchange has not closed; None: the
    stored candles are the exchange's): the market's return from the next candle's open to
    the open `horizon` candles later (the backtest's time exit), and the signal's net return
    on it after `round_trip_cost` (a flat signal nets 0). Idempotent; returns the rows
    resolved now."""
    with conn.transaction():
        rows = conn.execute(
            """UPDATE signals s
               SET realised_return = x.open / e.open - 1,
                   realised_net_return = CASE WHEN s.side = 0 THEN 0
                        ELSE s.side * (x.open / e.open - 1) - %(cost)s END,
                   resolved_at = now()
               FROM candles e, candles x
               WHERE s.exchange = %(exchange)s AND s.symbol = %(symbol)s
                 AND s.timeframe = %(timeframe)s AND s.realised_return IS NULL
                 AND s.horizon IS NOT NULL
                 AND e.exchange = s.exchange AND e.symbol = s.symbol
                 AND e.timeframe = s.timeframe
                 AND e.open_time = s.candle_time + make_interval(secs => %(step)s / 1000.0)
                 AND x.exchange = s.exchange AND x.symbol = s.symbol
                 AND x.timeframe = s.timeframe
                 AND x.open_time = s.candle_time
                     + make_interval(secs => (1 + s.horizon) * %(step)s / 1000.0)
                 AND (%(now)s::bigint IS NULL OR x.open_time
                      + make_interval(secs => %(step)s / 1000.0)
                      <= to_timestamp(%(now)s::bigint / 1000.0))
               RETURNING s.id""",
            {
                "cost": round_trip_cost,
                "exchange": exchange,
                "symbol": symbol,
                "timeframe": timeframe,
                "step": step_ms,
                "now": now_ms,
            },
        ).fetchall()
    return len(rows)


def reported(conn: psycopg.Connection, signal_id: int) -> bool:
    """Whether the candle of this signal was already reported to the live_signals asset."""
    row = conn.execute("SELECT reported_at IS NOT NULL FROM signals WHERE id = %s", (signal_id,))
    found = row.fetchone()
    conn.commit()
    return bool(found and found[0])


def mark_reported(conn: psycopg.Connection, signal_ids: list[int]) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE signals SET reported_at = now() WHERE id = ANY(%s) AND reported_at IS NULL",
            (signal_ids,),
        )


def latest_signals(
    conn: psycopg.Connection, exchange: str, symbol: str, timeframe: str, limit: int = 10
) -> list[dict[str, Any]]:
    """The newest `limit` signals of one market (both modes), newest first."""
    return _signal_rows(
        conn,
        """WHERE exchange = %s AND symbol = %s AND timeframe = %s
           ORDER BY candle_time DESC, model_id DESC LIMIT %s""",
        (exchange, symbol, timeframe, limit),
    )


def resolved_outcomes(
    conn: psycopg.Connection,
    model_id: int,
    exchange: str,
    symbol: str,
    timeframe: str,
    limit: int = 500,
) -> tuple[list[float], list[bool]]:
    """The newest `limit` resolved signals of one model and market: (probability_up, whether
    the market went up from entry to exit), oldest first, for the rolling calibration."""
    rows = conn.execute(
        """SELECT probability_up, realised_return > 0 FROM (
               SELECT candle_time, probability_up, realised_return FROM signals
               WHERE model_id = %s AND exchange = %s AND symbol = %s AND timeframe = %s
                 AND realised_return IS NOT NULL
               ORDER BY candle_time DESC LIMIT %s) newest
           ORDER BY candle_time""",
        (model_id, exchange, symbol, timeframe, limit),
    ).fetchall()
    conn.commit()
    return [float(r[0]) for r in rows], [bool(r[1]) for r in rows]
