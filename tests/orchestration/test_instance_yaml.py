"""Both Dagster instance files load against a real PostgreSQL and keep a run there: the
deployment `dagster.yaml` (as a deployment copies it) and the local `dagster_dev.yaml`."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL
from pipeline.store.database import fresh_database
from pipeline.store.studies import sqlalchemy_url

REPO = Path(__file__).resolve().parents[2]


@dg.op
def ping() -> int:
    return 1


@dg.job
def ping_job() -> None:
    ping()


@pytest.mark.parametrize(
    ("yaml_file", "env_var"),
    [("dagster.yaml", "DAGSTER_PG_URL"), ("pipeline/dagster_dev.yaml", ENV_DAGSTER_PG_URL)],
)
def test_the_instance_file_keeps_runs_events_and_schedules_in_postgres(
    yaml_file: str, env_var: str, pg_server: str, tmp_path: Path, monkeypatch
) -> None:
    name = "instance_" + Path(yaml_file).stem.replace("dagster", "yaml")
    libpq = fresh_database(pg_server, name)
    url = sqlalchemy_url(libpq, driver="postgresql+psycopg2")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / yaml_file, home / "dagster.yaml")
    monkeypatch.setenv(env_var, url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert {
            "key": "signals/series",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in [dict(limit) for limit in limits]
        assert instance.run_retries_enabled
        result = ping_job.execute_in_process(instance=instance)
        assert result.success
    # The run and its events are rows in that database, not files under the home.
    with psycopg.connect(libpq) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        events = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,)
        ).fetchone()[0]
    assert runs == 1 and events > 5
    assert not [p for p in home.rglob("*") if p.suffix in (".db", ".sqlite")]
