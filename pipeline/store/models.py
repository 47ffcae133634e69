"""The model store: checkpoints with their SHA-256, config, features, scaler, data and metrics.

A checkpoint is kept as bytes (`pipeline.model.checkpoint` writes and reads them) and comes
back only after its bytes match the recorded SHA-256: a tampered or corrupted one is refused
here, before anything tries to read it. A seed ensemble is one record with N networks
(`members`), each checksummed, and the record's own digest covers them all in order. The
store never imports torch.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


class ModelStoreError(RuntimeError):
    """A model could not be stored, found, verified or promoted; the message says which."""


@dataclass(frozen=True)
class MemberCheckpoint:
    """One network of an ensemble record: its seed and checkpoint bytes."""

    seed: int
    checkpoint: bytes
    checkpoint_sha256: str | None = None


@dataclass
class ModelRecord:
    name: str
    timeframe: str
    config: dict[str, Any]
    features: list[str]
    scaler: dict[str, Any]
    data_window: dict[str, Any]
    metrics: dict[str, Any]
    seed: int
    checkpoint: bytes = b""  # the state dict as `pipeline.model.checkpoint` writes it
    epochs: list[dict[str, float]] = field(default_factory=list)
    id: int | None = None
    status: str = "candidate"
    checkpoint_sha256: str | None = None
    # An ensemble's networks, in order (then `checkpoint` is empty): they decide together,
    # by the mean of their probabilities. Empty for a single network.
    members: list[MemberCheckpoint] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        """The seed of every network the record holds."""
        return [m.seed for m in self.members] if self.members else [self.seed]


def ensemble_sha256(members: list[tuple[int, str]]) -> str:
    """The digest of an ensemble record: its members' (seed, checkpoint SHA-256) in order."""
    text = "\n".join(f"{i} {seed} {digest}" for i, (seed, digest) in enumerate(members))
    return hashlib.sha256(text.encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """PostgreSQL's JSON has no NaN or infinity: store them as null (an undefined figure)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not _is_tensor(value):  # numpy scalars
        return json_safe(value.item())
    return value


def _is_tensor(value: Any) -> bool:
    """A torch tensor, without importing torch: none exists unless torch is loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(json_safe(value))


def save_model(conn: psycopg.Connection, record: ModelRecord) -> int:
    """Insert a candidate with its epochs (and an ensemble's members); returns its id."""
    if record.members and record.checkpoint:
        raise ModelStoreError("a model holds one checkpoint or ensemble members, not both")
    if not record.checkpoint and not record.members:
        raise ModelStoreError("a model needs its checkpoint to be stored")
    if any(not m.checkpoint for m in record.members):
        raise ModelStoreError("every ensemble member needs its checkpoint to be stored")
    blob = record.checkpoint
    member_digests = [hashlib.sha256(m.checkpoint).hexdigest() for m in record.members]
    digest = (
        ensemble_sha256([(m.seed, d) for m, d in zip(record.members, member_digests, strict=True)])
        if record.members
        else hashlib.sha256(blob).hexdigest()
    )
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO models (name, timeframe, config, features, scaler, data_window,
                                   metrics, seed, checkpoint, checkpoint_sha256)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                record.name,
                record.timeframe,
                jsonb(record.config),
                jsonb(record.features),
                jsonb(record.scaler),
                jsonb(record.data_window),
                jsonb(record.metrics),
                record.seed,
                blob,
                digest,
            ),
        ).fetchone()
        assert row is not None
        model_id = int(row[0])
        if record.members:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO model_members (model_id, member, seed, checkpoint,
                                                  checkpoint_sha256)
                       VALUES (%s, %s, %s, %s, %s)""",
                    [
                        (model_id, i, m.seed, m.checkpoint, d)
                        for i, (m, d) in enumerate(zip(record.members, member_digests, strict=True))
                    ],
                )
        if record.epochs:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO training_epochs (model_id, epoch, train_loss, train_accuracy,
                                                    val_loss, val_accuracy, gap, seconds)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (
                            model_id,
                            e["epoch"],
                            e["train_loss"],
                            e["train_accuracy"],
                            e["val_loss"],
                            e["val_accuracy"],
                            e["gap"],
                            e.get("seconds", 0.0),
                        )
                        for e in record.epochs
                    ],
                )
    record.id, record.checkpoint_sha256 = model_id, digest
    record.members = [
        MemberCheckpoint(m.seed, m.checkpoint, d)
        for m, d in zip(record.members, member_digests, strict=True)
    ]
    return model_id


_COLUMNS = """id, name, timeframe, status, config, features, scaler, data_window, metrics, seed,
              checkpoint, checkpoint_sha256"""


def load_model(conn: psycopg.Connection, model_id: int) -> ModelRecord:
    """The stored model with its checkpoint, after checking the bytes against their hash."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE id = %s", (model_id,)).fetchone()
    if row is None:
        conn.commit()
        raise ModelStoreError(f"no model with id {model_id}")
    return _record(conn, row)


def production_model(conn: psycopg.Connection, name: str, timeframe: str) -> ModelRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM models WHERE name = %s AND timeframe = %s "
        "AND status = 'production'",
        (name, timeframe),
    ).fetchone()
    return _record(conn, row) if row else _done(conn)


def shadow_candidate(
    conn: psycopg.Connection, name: str, timeframe: str, newer_than: int | None = None
) -> ModelRecord | None:
    """The newest candidate (newer than `newer_than`, production's id) whose fit-time asset
    checks were recorded (`metrics["checks"]`: name → passed, severity) and none of whose
    ERROR checks failed: the model that decides in shadow. A WARN check (not beating the
    majority class, say) does not keep a model out of shadow, where nothing is executed; the
    gate still requires it before production."""
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM models
            WHERE name = %s AND timeframe = %s AND status = 'candidate' AND id > %s
              AND jsonb_typeof(metrics -> 'checks') = 'object'
              AND NOT EXISTS (
                  SELECT 1 FROM jsonb_each(metrics -> 'checks') AS c(check_name, outcome)
                  WHERE outcome ->> 'severity' = 'ERROR'
                    AND NOT coalesce((outcome ->> 'passed')::boolean, false))
            ORDER BY id DESC LIMIT 1""",
        (name, timeframe, newer_than or 0),
    ).fetchone()
    return _record(conn, row) if row else _done(conn)


def deciding_models(
    conn: psycopg.Connection, name: str, timeframe: str
) -> list[tuple[ModelRecord, str]]:
    """Who decides a live candle, with its signal mode: the production model (executed) and
    the newest candidate newer than it that may decide in shadow (recorded, never
    executed); with no production model, that candidate alone; nobody, without either."""
    production = production_model(conn, name, timeframe)
    challenger = shadow_candidate(conn, name, timeframe, production.id if production else None)
    found = [(production, "production")] if production is not None else []
    return found + ([(challenger, "shadow")] if challenger is not None else [])


def newest_model_id(
    conn: psycopg.Connection, name: str, timeframe: str, status: str | None = None
) -> int | None:
    """The id of the newest model of this name and timeframe (of one status, if given).

    The one look-up by recency: assets take their model from lineage, not from here.
    """
    sql = "SELECT max(id) FROM models WHERE name = %s AND timeframe = %s"
    params: tuple = (name, timeframe)
    if status is not None:
        sql += " AND status = %s"
        params = (*params, status)
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    return None if row is None or row[0] is None else int(row[0])


def _done(conn: psycopg.Connection) -> None:
    """End the read's transaction: nothing found."""
    conn.commit()


def _record(conn: psycopg.Connection, row: tuple) -> ModelRecord:
    """The record of a models row with its members, each checkpoint checked against its
    recorded SHA-256 (and an ensemble's members against the record's digest)."""
    (
        model_id,
        name,
        timeframe,
        status,
        config,
        features,
        scaler,
        window,
        metrics,
        seed,
        blob,
        digest,
    ) = row
    try:
        members = _members(conn, model_id)
    finally:
        conn.commit()  # end the read's transaction, whatever the checks find
    actual = (
        ensemble_sha256([(m.seed, str(m.checkpoint_sha256)) for m in members])
        if members
        else hashlib.sha256(bytes(blob)).hexdigest()
    )
    if actual != digest:
        what = "its members' digest" if members else "checkpoint SHA-256"
        raise ModelStoreError(
            f"model {model_id}: {what} {actual[:12]}… does not match the recorded "
            f"{digest[:12]}…; refusing to load a tampered or corrupted checkpoint"
        )
    if members and blob:
        raise ModelStoreError(f"model {model_id}: an ensemble record holds a stray checkpoint")
    return ModelRecord(
        name=name,
        timeframe=timeframe,
        config=config,
        features=list(features),
        scaler=scaler,
        data_window=window,
        metrics=metrics,
        seed=int(seed),
        checkpoint=bytes(blob),
        id=model_id,
        status=status,
        checkpoint_sha256=digest,
        members=members,
    )


def _members(conn: psycopg.Connection, model_id: int) -> list[MemberCheckpoint]:
    """An ensemble's members in order, each after its bytes matched its SHA-256."""
    rows = conn.execute(
        """SELECT member, seed, checkpoint, checkpoint_sha256 FROM model_members
           WHERE model_id = %s ORDER BY member""",
        (model_id,),
    ).fetchall()
    members = []
    for position, (member, seed, blob, digest) in enumerate(rows):
        if member != position:
            raise ModelStoreError(f"model {model_id}: member {position} is missing")
        actual = hashlib.sha256(bytes(blob)).hexdigest()
        if actual != digest:
            raise ModelStoreError(
                f"model {model_id}: member {member} (seed {seed}) checkpoint SHA-256 "
                f"{actual[:12]}… does not match the recorded {digest[:12]}…; refusing to load "
                "a tampered or corrupted checkpoint"
            )
        members.append(MemberCheckpoint(int(seed), bytes(blob), digest))
    return members


def epochs(conn: psycopg.Connection, model_id: int) -> list[dict[str, float]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM training_epochs WHERE model_id = %s ORDER BY epoch", (model_id,))
        rows = cur.fetchall()
    conn.commit()
    return [dict(r) for r in rows]


def promote(conn: psycopg.Connection, model_id: int, note: dict[str, Any]) -> int | None:
    """Make a candidate production and retire the one it replaces; returns that one's id.

    Call only with a passed promotion gate's verdict as `note` (pipeline.evaluation.gates).
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT name, timeframe, status FROM models WHERE id = %s FOR UPDATE", (model_id,)
        ).fetchone()
        if row is None:
            raise ModelStoreError(f"no model with id {model_id}")
        name, timeframe, status = row
        if status != "candidate":
            raise ModelStoreError(f"model {model_id} is {status}; only a candidate is promoted")
        old = conn.execute(
            """UPDATE models SET status = 'retired', retired_at = now()
               WHERE name = %s AND timeframe = %s AND status = 'production' RETURNING id""",
            (name, timeframe),
        ).fetchone()
        conn.execute(
            """UPDATE models SET status = 'production', promoted_at = now(), promotion_note = %s
               WHERE id = %s""",
            (jsonb(note), model_id),
        )
    return int(old[0]) if old else None
