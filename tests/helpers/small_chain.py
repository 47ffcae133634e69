"""The main job on a small setting, in-process against the Dagster instance of $DAGSTER_HOME:
what the browser tests' pages need, materialised beforehand because that is cheaper than
clicking through a dozen launches. Each stage runs as the named job that owns it
(`pipeline.jobs.MAIN_JOBS`), as `signals run` does, so the UI lists the runs under those jobs
and offers to re-execute them (it cannot for an ephemeral asset job's run).

Run as `python -m tests.helpers.small_chain ASSETS_JSON STAGE[:PARTITION]...` (every
partition of a stage unless one is named) in a process whose SIGNALS_* variables describe
the small setting: the partitions come from the settings at import, so this cannot run
inside a test process that imported the Definitions with other settings.
ASSETS_JSON receives every asset key of those Definitions with its group, as the UI's code
location loads them (same settings), for the lineage test. The configs keep each stage to
seconds (one study trial, a light selection); the epochs come from SIGNALS_MAX_EPOCHS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Per-stage run config: the small setting's data starts in late 2020.
CONFIG: dict[str, dict] = {
    "selected_features": {"folds": 2, "repeats": 1, "max_iter": 20},
    "hyperparameter_study": {"budget": 1, "train_start": "2020-10-23"},
    # One network (the pages need a model, not an ensemble's threefold training).
    "lstm_model": {"train_start": "2020-10-23", "ensemble": 1},
}


def main(assets_json: Path, stages: list[str]) -> int:
    import dagster as dg

    from pipeline.definitions import ASSETS, build_resources, defs
    from pipeline.jobs import MAIN_JOB_SEQUENCE, MAIN_JOBS
    from pipeline.location import SETTINGS
    from pipeline.main_job import QUIET_RUN, plan

    groups = {s.key.to_user_string(): s.group_name for s in defs.resolve_all_asset_specs()}
    assets_json.write_text(json.dumps(groups, indent=1, sort_keys=True))
    jobs = dg.Definitions(
        assets=ASSETS, jobs=MAIN_JOB_SEQUENCE, resources=build_resources(SETTINGS)
    )
    with dg.DagsterInstance.get() as instance:
        only = dict(s.split(":", 1) for s in stages if ":" in s)
        for stage, key in plan(tuple(s.split(":", 1)[0] for s in stages)):
            if stage in only and key != only[stage]:
                continue
            started = time.monotonic()
            config = {**QUIET_RUN}
            if stage in CONFIG:
                config["ops"] = {stage: {"config": CONFIG[stage]}}
            result = jobs.resolve_job_def(MAIN_JOBS[stage].name).execute_in_process(
                run_config=config,
                instance=instance,
                partition_key=key,
                raise_on_error=False,
                asset_selection=[dg.AssetKey(stage)],
            )
            print(f"{stage} {key or ''}: {result.success} in {time.monotonic() - started:.1f} s")
            if not result.success:
                failure = next((e for e in result.all_events if e.is_step_failure), None)
                print(failure.step_failure_data.error.to_string() if failure else "", flush=True)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
