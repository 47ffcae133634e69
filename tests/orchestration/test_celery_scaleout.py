"""The main job on dagster-celery workers (Redis broker, instance on PostgreSQL) materialises
exactly what the in-process main job does, and its steps really run in the workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline.replay.clock import LEAD_HOURS
from tests.conftest import _with_dbname
from tests.helpers.celery_cluster import REPO, LocalCluster, local_cluster
from tests.helpers.folders import write_folder
from tests.helpers.materialisations import CANDLES, MODELS, MainJobOutput, differences

# The chain up to the candidate model: candles, the market factor and features per partition,
# then the selection, a one-trial study and a 2-epoch model over both markets.
STAGES = "ohlcv,market_factor,features,selected_features,hyperparameter_study,lstm_model"
START, END = 1609459200000, 1640995200000  # 2021-01-01 … 2022-01-01
MARKETS = ("BTCUSDT", "ETHUSDT")


def _args(study_prefix: str) -> list[str]:
    """The stages and their small configuration; each run's study of its own (a study with
    the same name would be resumed, not run)."""
    config = json.dumps(
        {
            "selected_features": {"folds": 2, "repeats": 1, "max_iter": 20},
            "hyperparameter_study": {
                "budget": 1,
                "study_prefix": study_prefix,
                "train_start": "2021-01-01",
            },
            # One network: an ensemble is three times the training and tests nothing new
            # here (tests/orchestration/test_modeling_assets.py runs the default ensemble).
            "lstm_model": {"train_start": "2021-01-01", "ensemble": 1},
        }
    )
    return ["--assets", STAGES, "--config", config]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`signals …` from the repository root, in a process group of its own (its forked
    children go with it), output to `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(process: subprocess.Popen, log: Path, deadline: float, cluster: LocalCluster) -> str:
    """The command's output once it exits 0; a failure with the workers' logs otherwise."""
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"{log.name}: timed out\n{log.read_text()[-3000:]}\n{cluster.tails()}")
    output = log.read_text()
    assert process.returncode == 0, f"{log.name}:\n{output[-3000:]}\n{cluster.tails()}"
    return output


def _new_database(server: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_dbname(server, name)


def _steps_by_worker(dagster_home: Path, database_url: str, monkeypatch) -> list[tuple]:
    """(job, partition, pids of its STEP_START, Celery workers named in its engine events,
    run config) per run."""
    import dagster as dg

    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL, dagster_storage_url

    monkeypatch.setenv(ENV_DAGSTER_PG_URL, dagster_storage_url(database_url))
    steps = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            entries = [r.event_log_entry for r in instance.get_records_for_run(run.run_id).records]
            events = [e.dagster_event for e in entries if e.dagster_event is not None]
            pids = [e.pid for e in events if e.event_type_value == "STEP_START"]
            workers = [
                entry.text
                for e in events
                if e.event_type_value == "ENGINE_EVENT"
                for label, entry in e.engine_event_data.metadata.items()
                if label == "Celery worker"
            ]
            partition = run.tags.get("dagster/partition")
            steps.append((run.job_name, partition, pids, workers, run.run_config))
    return steps


def test_main_job_on_celery_workers_equals_in_process(
    pg_server: str, sample_frames, tmp_path: Path, monkeypatch
) -> None:
    frames = {
        m: f[(f["timestamp"] >= START) & (f["timestamp"] < END)].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in MARKETS
    }
    folder = write_folder(tmp_path / "candles", frames)
    common = {
        **os.environ,
        "SIGNALS_DATA_DIR": str(folder),  # `signals run` serves it through the replay exchange
        "SIGNALS_MARKETS": "BTC/USDT:USDT,ETH/USDT:USDT",
        "SIGNALS_TIMEFRAMES": "1h",
        "SIGNALS_SINCE": "2021-01-01",
        "SIGNALS_TRAIN_END": "2021-09-30",
        "SIGNALS_VALIDATION_END": "2021-12-31",
        "SIGNALS_MAX_EPOCHS": "2",
        "OMP_NUM_THREADS": "1",  # the same torch threads everywhere: bit-equal training
    }
    homes = {kind: tmp_path / kind for kind in ("in_process", "celery")}
    envs = {
        kind: {
            **common,
            "SIGNALS_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "SIGNALS_DATABASE_URL": _new_database(pg_server),
        }
        for kind, home in homes.items()
    }
    prefix = f"celery-test-{uuid.uuid4().hex[:6]}"
    logs = {kind: tmp_path / f"{kind}.log" for kind in homes}
    with local_cluster(tmp_path / "cluster", envs["celery"]) as cluster:
        # Everything starts at once: the workers and both runs import their code together,
        # and `signals run --executor celery` waits for a worker to answer.
        for name in ("w1", "w2"):
            cluster.start_worker(name)
        runs = {
            "in_process": _start(
                ["run", *_args(f"{prefix}-ref")],
                envs["in_process"],
                logs["in_process"],
            ),
            "celery": _start(
                ["run", "--executor", "celery", "--wait-workers", "120", *_args(prefix)],
                {**envs["celery"], "SIGNALS_CELERY_BROKER": cluster.broker},
                logs["celery"],
            ),
        }
        deadline = time.monotonic() + 300
        try:
            outputs = {k: _finish(p, logs[k], deadline, cluster) for k, p in runs.items()}
        finally:
            for process in runs.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        assert "executing on Celery: w" in outputs["celery"]
        pool_pids = cluster.pool_pids()
        steps = _steps_by_worker(
            homes["celery"] / "dagster", envs["celery"]["SIGNALS_DATABASE_URL"], monkeypatch
        )

    # Every run's step started in a worker's pool process (not in `signals run`), and both
    # workers took steps (a stage's partitions are submitted at once).
    workers_pids = set().union(*pool_pids.values())
    assert len(steps) == 2 + 1 + 2 + 3  # ohlcv ×2, market_factor, features ×2, 3 model runs
    for job, partition, pids, workers, _ in steps:
        assert len(pids) == 1 and pids[0] in workers_pids, (job, partition, pids, pool_pids)
        assert len(workers) == 1 and workers[0].split("@")[0] in pool_pids, (job, workers)
    assert {w.split("@")[0] for *_, workers, _ in steps for w in workers} == {"w1", "w2"}
    # Their run config names no executor, so the code location's own job (the UI's) takes it:
    # a run made on Celery can be re-executed from the UI.
    import dagster as dg

    from pipeline.definitions import defs

    for job, *_, run_config in steps:
        assert "execution" not in run_config
        dg.validate_run_config(defs.resolve_job_def(job), run_config)

    # The same materialisations: candle rows, every Parquet asset (market factor, features,
    # selection), the study's best trial and the model (weights' hash, metrics, curves).
    # Training is bit-deterministic across processes here (same torch threads, same seeds).
    ref, celery = (MainJobOutput(homes[k], envs[k]["SIGNALS_DATABASE_URL"]) for k in homes)
    assert {k: v for k, v in differences(ref, celery).items() if v} == {}
    # `signals run` serves a finished folder as of 24 h before its last close (the clock the
    # offline live recipe starts at): every candle but the last day's.
    served = END - LEAD_HOURS * 3_600_000
    assert len(ref.table(CANDLES)) == sum(
        int((f["timestamp"] < served).sum()) for f in frames.values()
    )
    assert {"market_factor/1h.parquet", "selected_features.parquet"} <= set(ref.parquet())
    assert {f"features/market={m}/timeframe=1h.parquet" for m in MARKETS} <= set(ref.parquet())
    assert len(ref.table(MODELS)) == 1 and "lstm_model  candidate 1: " in outputs["celery"]

    # The study ran on a worker, in the same server's study database as every study.
    from pipeline.store.studies import study_database_url

    study = celery.study()
    assert study is not None and study["study"].startswith(prefix + "-")
    with psycopg.connect(study_database_url(celery.database_url)) as conn:
        (trials,) = conn.execute(
            "SELECT count(*) FROM trials JOIN studies USING (study_id) WHERE study_name = %s",
            (study["study"],),
        ).fetchone()
    assert trials == 1


def test_a_broker_that_does_not_answer_or_has_no_worker_is_a_clear_error(tmp_path: Path) -> None:
    from pipeline.celery_app import ENV_BROKER, BrokerUnavailable, check_broker
    from tests.helpers.celery_cluster import free_port

    with pytest.raises(BrokerUnavailable, match=f"does not answer.*set {ENV_BROKER}"):
        check_broker(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)
    with local_cluster(tmp_path, {}) as cluster:
        assert check_broker(cluster.broker, need_workers=False) == []
        with pytest.raises(BrokerUnavailable, match=r"no Celery worker answered.*signals worker"):
            check_broker(cluster.broker, timeout_s=1.0, wait_s=1.0)
