"""Both Dagster instance files load against a real PostgreSQL and keep a run there: the
deployment `dagster.yaml` (as a deployment copies it) and the local `dagster_dev.yaml`."""

from __future__ import annotations

import logging
import shutil
import time
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


class _MonitorContext:
    """What Dagster's monitoring iteration asks of the daemon's workspace context: the
    instance (a run that never started needs no code location)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def create_request_context(self) -> None:
        return None


@pytest.mark.parametrize(
    ("yaml_file", "env_var"),
    [("dagster.yaml", "DAGSTER_PG_URL"), ("pipeline/dagster_dev.yaml", ENV_DAGSTER_PG_URL)],
)
def test_a_run_left_starting_without_a_worker_is_failed_and_then_retried(
    yaml_file: str, env_var: str, pg_server: str, tmp_path: Path, monkeypatch
) -> None:
    """A daemon killed between marking a run STARTING and handing it to the code server (seen
    in trials/daemon_kills.py) leaves it STARTING with no worker; under the series limit of 1
    its market would run no later candle. The instance must run the monitor, which fails
    it after the start timeout, and the run retries must then launch it again."""
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._daemon import MonitoringDaemon
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry
    from dagster._daemon.monitoring import run_monitoring

    name = "monitor_" + Path(yaml_file).stem.replace("dagster", "yaml")
    url = sqlalchemy_url(fresh_database(pg_server, name), driver="postgresql+psycopg2")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / yaml_file, home / "dagster.yaml")
    monkeypatch.setenv(env_var, url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert MonitoringDaemon.daemon_type() in instance.get_required_daemon_types()
        timeout = instance.run_monitoring_start_timeout_seconds
        assert 0 < timeout <= 300  # well within the hour a live candle has to trade
        # A live run as the sensor tags it, marked STARTING, its worker never started.
        run = instance.create_run_for_job(
            ping_job, tags={"dagster/max_retries": "2", "signals/series": "BTCUSDT-1h"}
        )
        starting = DagsterEvent(DagsterEventType.RUN_STARTING.value, job_name=run.job_name)
        instance.report_dagster_event(starting, run.run_id)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTING
        # The monitor's pass once the start timeout has gone by.
        later = time.time() + timeout + 1
        monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: later)
        list(
            run_monitoring.execute_run_monitoring_iteration(
                _MonitorContext(instance), logging.getLogger("monitor")
            )
        )
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert should_retry(failed, instance)  # what the retry daemon launches again
