"""Live signals: one row per model, market, timeframe and candle, written once.

A second write of the same decision (a retried run) finds the first and returns it, so the
row, its id and the client order ids derived from it never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.store.models import jsonb


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
) -> SignalRow:
    """Insert the decision unless this model already decided this candle; return the row."""
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO signals (model_id, exchange, symbol, timeframe, candle_time,
                                    probability_up, confidence, side, threshold, input_hash,
                                    explanation, run_id, timings)
               VALUES (%s, %s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s,
                       %s)
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
            ),
        ).fetchone()
        created = row is not None
        found = conn.execute(
            """SELECT id, probability_up, side, input_hash FROM signals
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
    """Candle open ms → side over [first_ms, last_ms]; where two models decided one candle
    (a promotion in between), the newer model's decision counts."""
    rows = conn.execute(
        """SELECT DISTINCT ON (candle_time)
                  (extract(epoch FROM candle_time) * 1000)::bigint, side
           FROM signals
           WHERE exchange = %s AND symbol = %s AND timeframe = %s
             AND candle_time BETWEEN to_timestamp(%s / 1000.0) AND to_timestamp(%s / 1000.0)
           ORDER BY candle_time, model_id DESC""",
        (exchange, symbol, timeframe, first_ms, last_ms),
    ).fetchall()
    conn.commit()
    return {int(ms): int(side) for ms, side in rows}


def load_signals(
    conn: psycopg.Connection, exchange: str, symbol: str, timeframe: str
) -> list[dict[str, Any]]:
    """Every recorded signal of one market and timeframe, oldest first (for audits and parity)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT id, model_id, (extract(epoch FROM candle_time) * 1000)::bigint AS candle_ms,
                      probability_up, confidence, side, threshold, input_hash, explanation,
                      run_id, timings, recorded_at
               FROM signals WHERE exchange = %s AND symbol = %s AND timeframe = %s
               ORDER BY candle_time, model_id""",
            (exchange, symbol, timeframe),
        )
        rows = cur.fetchall()
    conn.commit()
    return rows
