"""The trials ledger: every evaluation on a test period, appended, never deduplicated.

Rule of method 8: a headline figure is reported with the number of looks behind it. Each
call of `append_trial` is one look, even when the same config is evaluated again on the same
period: rerunning a config is itself a choice made after seeing a test figure, so it counts.
`count_trials` and `trial_sharpes` give the deflated Sharpe ratio (`pipeline.stats`) its
number of trials and the variance of their Sharpe ratios.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.store.models import json_safe, jsonb


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys, no spaces, NaN as null)."""
    text = json.dumps(json_safe(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append_trial(
    conn: psycopg.Connection,
    *,
    kind: str,
    config: dict[str, Any],
    period_start: datetime | None,
    period_end: datetime | None,
    figures: dict[str, Any],
    note: str = "",
) -> int:
    """Record one look at a test period; returns its id.

    Never deduplicated: the same config on the same period appended twice is two trials,
    because every look at a test period counts. `figures["sharpe"]`, when present, is what
    `trial_sharpes` reads: keep it on one scale for every trial of a kind (say, annualised)
    and convert before deflating.
    """
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO evaluation_trials (kind, config, config_hash, period_start, period_end,
                                              figures, note)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                kind,
                jsonb(config),
                config_hash(config),
                period_start,
                period_end,
                jsonb(figures),
                note,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _where(
    kind: str | None, period_start: datetime | None, period_end: datetime | None
) -> tuple[sql.Composable, list[Any]]:
    """Trials of `kind` whose test period overlaps [period_start, period_end] (both ends
    included). A missing end, given or stored, is open: a trial recorded without a period
    overlaps every period, so it is counted rather than forgotten."""
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if kind is not None:
        clauses.append(sql.SQL("kind = %s"))
        params.append(kind)
    if period_start is not None or period_end is not None:
        clauses.append(
            sql.SQL(
                "tstzrange(period_start, period_end, '[]') && "
                "tstzrange(%s::timestamptz, %s::timestamptz, '[]')"
            )
        )
        params += [period_start, period_end]
    return sql.SQL(" AND ").join(clauses), params


def count_trials(
    conn: psycopg.Connection,
    *,
    kind: str | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> int:
    """How many trials (of `kind`, on a test period overlapping the given one) are recorded."""
    where, params = _where(kind, period_start, period_end)
    query = sql.SQL("SELECT count(*) FROM evaluation_trials WHERE {}").format(where)
    row = conn.execute(query, params).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def trial_sharpes(
    conn: psycopg.Connection,
    *,
    kind: str | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> list[float]:
    """The `sharpe` figure of each counted trial that has one, oldest first.

    For the variance of the trials' Sharpe ratios in the deflated Sharpe ratio; the values
    are as stored (on the scale the trials were recorded in).
    """
    where, params = _where(kind, period_start, period_end)
    query = sql.SQL(
        "SELECT (figures->>'sharpe')::double precision FROM evaluation_trials "
        "WHERE {} AND jsonb_typeof(figures->'sharpe') = 'number' ORDER BY id"
    ).format(where)
    rows = conn.execute(query, params).fetchall()
    conn.commit()
    return [float(r[0]) for r in rows]


def list_trials(conn: psycopg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` trials, newest first, every column."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM evaluation_trials ORDER BY id DESC LIMIT %s", (limit,))
        rows = cur.fetchall()
    conn.commit()
    return [dict(r) for r in rows]
