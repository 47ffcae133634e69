"""What a main job left behind in its home and database, compared with another run's: the
candle rows, every Parquet asset, the study's best trial, the model (weights' hash, metrics,
curves, status) and the backtest reports' markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg

CANDLES = (
    "SELECT exchange, symbol, timeframe, open_time, open, high, low, close, volume "
    "FROM candles ORDER BY exchange, symbol, timeframe, open_time"
)
MODELS = (
    "SELECT name, timeframe, status, features, scaler, metrics, seed, checkpoint_sha256 "
    "FROM models ORDER BY id"
)
CURVES = (
    "SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy, gap "
    "FROM training_epochs ORDER BY model_id, epoch"
)


@dataclass(frozen=True)
class MainJobOutput:
    """A main job's home (`SIGNALS_HOME`: the Parquet store, the reports) and database."""

    home: Path
    database_url: str

    def table(self, sql: str) -> pd.DataFrame:
        with psycopg.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute(sql)
            columns = [c.name for c in cur.description or []]
            return pd.DataFrame(cur.fetchall(), columns=columns)

    def parquet(self) -> dict[str, pd.DataFrame]:
        store = self.home / "store"
        return {
            str(p.relative_to(store)): pd.read_parquet(p) for p in sorted(store.rglob("*.parquet"))
        }

    def study(self) -> dict | None:
        path = self.home / "store" / "hyperparameter_study.json"
        return json.loads(path.read_text()) if path.exists() else None

    def reports(self) -> dict[str, str]:
        root = self.home / "reports"
        return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.md"))}


def _frames_differ(a: pd.DataFrame, b: pd.DataFrame, what: str) -> str | None:
    try:
        pd.testing.assert_frame_equal(a, b, obj=what)
    except AssertionError as err:
        return str(err).splitlines()[0] + " …"
    return None


def differences(reference: MainJobOutput, other: MainJobOutput) -> dict[str, str | None]:
    """Each compared materialisation → None where `other` equals `reference`, else what
    differs. The study is compared by its best trial (parameters and value), not by name:
    two runs on one server need two studies (the same name would resume the first)."""
    found: dict[str, str | None] = {}
    for name, sql in (("candles", CANDLES), ("models", MODELS), ("training curves", CURVES)):
        found[name] = _frames_differ(reference.table(sql), other.table(sql), name)
    ref_files, other_files = reference.parquet(), other.parquet()
    if set(ref_files) != set(other_files):
        found["parquet files"] = f"{sorted(set(ref_files) ^ set(other_files))} in one only"
    for path, frame in ref_files.items():
        if path in other_files:
            found[path] = _frames_differ(frame, other_files[path], path)
    ref_study, other_study = reference.study(), other.study()
    if ref_study is not None or other_study is not None:
        same = (
            ref_study is not None
            and other_study is not None
            and (ref_study["params"], ref_study["value"])
            == (other_study["params"], other_study["value"])
        )
        found["study's best trial"] = None if same else f"{ref_study} vs {other_study}"
    ref_reports, other_reports = reference.reports(), other.reports()
    found["backtest reports"] = (
        None
        if ref_reports == other_reports
        else f"{[k for k in ref_reports if ref_reports[k] != other_reports.get(k)]} differ"
    )
    return found
