"""Portfolio decisions: every market's score and target weight at one decision candle, and the
portfolio layer's state after it, written once per model, exchange, timeframe and candle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.store.models import jsonb


@dataclass(frozen=True)
class StoredDecision:
    id: int
    model_id: int
    candle_ms: int
    mode: str
    markets: list[str]
    scores: list[float | None]
    vol: list[float | None]
    raw: list[float]
    targets: list[float]
    orders: list[bool]
    state: dict[str, Any]
    created: bool  # False: a retried run found the decision already recorded


_COLUMNS = """id, model_id, (extract(epoch FROM candle_time) * 1000)::bigint, mode, markets,
              scores, vol, raw, targets, orders, state"""


def record_decision(
    conn: psycopg.Connection,
    *,
    model_id: int,
    exchange: str,
    timeframe: str,
    candle_ms: int,
    mode: str,
    markets: list[str],
    scores: list[float | None],
    vol: list[float | None],
    raw: list[float],
    targets: list[float],
    orders: list[bool],
    state: dict[str, Any],
    run_id: str | None,
) -> StoredDecision:
    """Insert the decision unless this model already decided this candle; return the row."""
    with conn.transaction():
        inserted = conn.execute(
            """INSERT INTO portfolio_decisions (model_id, exchange, timeframe, candle_time, mode,
                                                markets, scores, vol, raw, targets, orders,
                                                state, run_id)
               VALUES (%s, %s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (model_id, exchange, timeframe, candle_time) DO NOTHING
               RETURNING id""",
            (
                model_id,
                exchange,
                timeframe,
                candle_ms,
                mode,
                jsonb(markets),
                jsonb(scores),
                jsonb(vol),
                jsonb(raw),
                jsonb(targets),
                jsonb(orders),
                jsonb(state),
                run_id,
            ),
        ).fetchone()
        row = conn.execute(
            f"""SELECT {_COLUMNS} FROM portfolio_decisions
                WHERE model_id = %s AND exchange = %s AND timeframe = %s
                  AND candle_time = to_timestamp(%s / 1000.0)""",
            (model_id, exchange, timeframe, candle_ms),
        ).fetchone()
    assert row is not None
    return _decision(row, created=inserted is not None)


def previous_decision(
    conn: psycopg.Connection, model_id: int, exchange: str, timeframe: str, before_ms: int
) -> StoredDecision | None:
    """The model's last decision before `before_ms`: whose layer state the next one reads."""
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM portfolio_decisions
            WHERE model_id = %s AND exchange = %s AND timeframe = %s
              AND candle_time < to_timestamp(%s / 1000.0)
            ORDER BY candle_time DESC LIMIT 1""",
        (model_id, exchange, timeframe, before_ms),
    ).fetchone()
    conn.commit()
    return _decision(row, created=False) if row else None


def previous_production_decision(
    conn: psycopg.Connection, exchange: str, timeframe: str, before_ms: int
) -> StoredDecision | None:
    """The last production decision before `before_ms`, of any model: what the account was
    ordered to hold when a newly promoted model takes over."""
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM portfolio_decisions
            WHERE exchange = %s AND timeframe = %s AND mode = 'production'
              AND candle_time < to_timestamp(%s / 1000.0)
            ORDER BY candle_time DESC LIMIT 1""",
        (exchange, timeframe, before_ms),
    ).fetchone()
    conn.commit()
    return _decision(row, created=False) if row else None


def decisions(
    conn: psycopg.Connection, model_id: int, exchange: str, timeframe: str
) -> list[StoredDecision]:
    """Every decision of the model, oldest first (the replay compares them with the backtest)."""
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM portfolio_decisions
            WHERE model_id = %s AND exchange = %s AND timeframe = %s ORDER BY candle_time""",
        (model_id, exchange, timeframe),
    ).fetchall()
    conn.commit()
    return [_decision(r, created=False) for r in rows]


def _decision(row: tuple, created: bool) -> StoredDecision:
    return StoredDecision(
        id=int(row[0]),
        model_id=int(row[1]),
        candle_ms=int(row[2]),
        mode=row[3],
        markets=list(row[4]),
        scores=list(row[5]),
        vol=list(row[6]),
        raw=list(row[7]),
        targets=list(row[8]),
        orders=list(row[9]),
        state=dict(row[10]),
        created=created,
    )
