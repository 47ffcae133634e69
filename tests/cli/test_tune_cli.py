"""`signals tune --workers 2`: two worker processes on one study in PostgreSQL, the real
objective, the budget finished once, every trial in the ledger."""

import json
import uuid
from pathlib import Path

from pipeline.evaluation.tuning import StudySpec, open_study
from pipeline.store.database import Database
from pipeline.store.studies import study_database_url
from pipeline.store.trials import list_trials
from tests.cli.test_cli import run
from tests.helpers.folders import write_folder

END = 1625097600000  # 2021-07-01 (the slowest feature warms up until late March)


def test_two_workers_finish_one_study_once(database_url, sample_frames, tmp_path: Path) -> None:
    frames = {
        m: f[f["timestamp"] < END].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT")
    }
    folder = write_folder(tmp_path / "candles", frames)
    study = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["tune", "--data-dir", str(folder), "--markets", "BTCUSDT,ETHUSDT"]
    args += ["--fit-start", "2021-01-01", "--fit-end", "2021-06-30", "--trials", "4"]
    args += ["--workers", "2", "--study", study, "--max-epochs", "1"]
    out = run(
        [*args, "--json", str(tmp_path / "study.json")],
        {"SIGNALS_DATABASE_URL": database_url},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "parameters)" in out.stdout  # each trial's parameter count is printed
    trials = open_study(StudySpec(study, study_database_url(database_url), 4)).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # none lost, none repeated
    assert all(t.state.is_finished() for t in trials)
    assert "this command's workers ran [" in out.stdout
    ran = json.loads(out.stdout.split("this command's workers ran ")[1].split(" trial")[0])
    assert len(ran) == 2 and sum(ran) == 4
    db = Database(database_url)
    try:
        with db.connection() as conn:
            rows = [r for r in list_trials(conn) if r["kind"] == "tuning"]
    finally:
        db.close()
    assert sorted(r["config"]["trial"] for r in rows) == [0, 1, 2, 3]
    assert {r["config"]["study"] for r in rows} == {study}
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["study"] == study and len(saved["trials"]) == 4
