"""The main job: materialise the asset chain for every configured partition, as the UI would.

Each asset × partition is its own run of the named job that owns the asset
(`pipeline.jobs.MAIN_JOBS`) in the given Dagster instance, so the runs, their metadata and
asset checks appear in the UI afterwards under that job, and can be re-executed from there.
By default each run executes in this process, one after another (`run_main_job`); on Celery
(`run_main_job_on_celery`) a stage's partition runs are submitted together and their steps
execute on whichever workers are free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.instance.ref import InstanceRef

from pipeline.definitions import ASSETS
from pipeline.jobs import MAIN_JOB_SEQUENCE, MAIN_JOBS
from pipeline.settings import Settings

STAGES = tuple(a.key.to_user_string() for a in ASSETS)

# Dagster's console logger prints every event; the caller prints one line per partition.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class StepOutcome:
    asset: str
    partition: str | None
    result: dg.ExecuteInProcessResult | StoredRun

    @property
    def success(self) -> bool:
        return self.result.success

    def metadata(self) -> dict[str, object]:
        events = self.result.get_asset_materialization_events()
        if not events:
            return {}
        return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}

    def checks(self) -> dict[str, bool]:
        return {e.check_name: e.passed for e in self.result.get_asset_check_evaluations()}

    def error(self) -> str:
        """The failed step's error; else the run's (a Celery task that never reported a step,
        say)."""
        for event in self.result.all_events:
            if event.is_step_failure and event.step_failure_data:
                return event.step_failure_data.error.message.strip()
        for event in self.result.all_events:
            if event.is_job_failure and event.job_failure_data.error:
                return event.job_failure_data.error.message.strip()
        return ""

    def summary(self) -> str:
        """One line per materialisation, with the figures a user checks first."""
        meta: dict = self.metadata()
        if not self.success:
            return f"{self.asset:<17} {self.partition or '':<14} FAILED"
        verdict = " ".join(
            f"{name.removeprefix('ohlcv_')}={'ok' if ok else 'NO'}"
            for name, ok in self.checks().items()
        )
        if self.asset == "ohlcv":
            return (
                f"ohlcv  {meta['market']:<16} {meta['timeframe']:>4}  +{meta['rows_added']:<7} "
                f"total {meta['rows_total']:<7} {meta['first_candle']} → {meta['last_candle']}  "
                f"gaps {meta['gaps']}  checks: {verdict}"
            )
        if self.asset == "selected_features":
            uplift = meta.get("uplift") or {}
            scores = {k: v for k, v in uplift.items() if k.startswith(("all_", "selected_"))}
            shown = "  ".join(
                f"{k}: acc {v['accuracy']:.4f} logloss {v['log_loss']:.4f}"
                for k, v in scores.items()
            )
            ci = uplift.get("accuracy_uplift_95ci") or [float("nan")] * 2
            return (
                f"selected_features  {meta.get('selected')} selected  validation {shown}  "
                f"accuracy uplift {uplift.get('accuracy_uplift', float('nan')):+.4f} "
                f"(95% CI {ci[0]:+.4f} … {ci[1]:+.4f})"
            )
        if self.asset == "hyperparameter_study":
            params = meta["best_params"]
            return (
                f"hyperparameter_study  {meta['trials_complete']}/{meta['budget']} trials "
                f"({meta['trials_pruned']} pruned), best validation Sharpe "
                f"{meta['best_value']:+.2f}: window {params['window']} hidden {params['hidden']} "
                f"({meta['best_n_parameters']:,} parameters) dropout {params['dropout']:.2f} "
                f"lr {params['lr']:.1e} wd {params['weight_decay']:.1e} T {params['horizon']} "
                f"k {params['barrier_k']} coverage {params['coverage']:.0%}  study {meta['study']}"
            )
        if self.asset == "funding_rates":
            return (
                f"funding_rates  {meta['market']:<16} +{meta['rows_added']:<6} total "
                f"{meta['rows_total']:<6} {meta['first_settlement']} → {meta['last_settlement']}"
            )
        if self.asset == "lstm_model" and meta.get("kind") == "portfolio":
            size = (
                f"{meta['parameters']} parameters ({meta['stopped']})"
                if meta["scorer"] == "lstm"
                else f"{meta['trees']} trees, {meta['tree_nodes']} nodes"
            )
            return (
                f"lstm_model  portfolio candidate {meta['model_id']}: {meta['scorer']} "
                f"({size}) on {meta['decision_timeframe']} candles, validation accuracy "
                f"{meta['val_accuracy']:.4f} vs majority {meta['val_majority_accuracy']:.4f} "
                f"(reported, not judged), gap {meta['gap']:+.4f}; coverage "
                f"{meta.get('coverage', float('nan')):g} chosen on validation's first half; "
                f"judging half: net Sharpe {meta.get('judged_sharpe', float('nan')):.2f}, net "
                f"{meta.get('judged_net_return', float('nan')):+.1%}  checks: {verdict}"
            )
        if self.asset == "backtest_report" and "attribution" in meta:
            return (
                f"backtest_report  portfolio on validation's judging half "
                f"{meta['judging_half']}: {meta['report']}\n{meta['table']}\n\n"
                f"{meta['attribution']}"
            )
        if self.asset == "production_model" and "judged" in meta:
            verdict_text = "PROMOTED" if meta["passed"] else "REFUSED"
            return (
                f"production_model  candidate {meta['candidate']} {verdict_text}: "
                f"{meta['reasons']}; judged on validation's second half (it chose nothing), "
                f"after fees and funding, beside the baselines:\n{meta['judged']}\n"
                + (
                    f"production is model {meta['production']}"
                    if isinstance(meta["production"], int)
                    else "no model is in production (live runs decide in shadow, never "
                    "executed, with the newest candidate whose ERROR checks passed)"
                )
            )
        if self.asset == "lstm_model":
            count = int(meta.get("networks", 1))  # older runs' metadata: one network
            networks = f"{count} networks (seeds {meta['seeds']}) of " if count > 1 else ""
            return (
                f"lstm_model  candidate {meta['model_id']}: {networks}{meta['parameters']} "
                f"parameters, {meta['epochs']} epochs ({meta['stopped']}), validation accuracy "
                f"{meta['val_accuracy']:.4f} vs majority {meta['val_majority_accuracy']:.4f}, "
                f"gap {meta['gap']:+.4f}  checks: {verdict}"
            )
        if self.asset == "backtest_report":
            tables = "\n\n".join(str(meta[k]) for k in ("table", "trades", "costs") if k in meta)
            return f"backtest_report {self.partition}: {meta['report']}\n{tables}"
        if self.asset == "production_model":
            verdict_text = "PROMOTED" if meta["passed"] else "REFUSED"
            figures = meta["verdict"]["candidate"]
            return (
                f"production_model  candidate {meta['candidate']} {verdict_text}: "
                f"{meta['reasons']}; validation (every market pooled, the operating point "
                f"chosen on it): {int(figures.get('trades', 0))} trades, net "
                f"{figures.get('total_return', float('nan')):+.1%}, profit factor "
                f"{figures.get('profit_factor', float('nan')):.2f}, win rate "
                f"{figures.get('win_rate', float('nan')):.1%}, drawdown "
                f"{figures.get('max_drawdown', float('nan')):.1%}; "
                + (
                    f"production is model {meta['production']}"
                    if isinstance(meta["production"], int)
                    else "no model is in production (live runs decide in shadow, never "
                    "executed, with the newest candidate whose ERROR checks passed)"
                )
            )
        details = "  ".join(
            f"{k} {v}" for k, v in meta.items() if k in ("rows", "complete_rows", "markets")
        )
        return f"{self.asset:<17} {self.partition or '':<14} {details}"


def _partitions(asset: dg.AssetsDefinition) -> list[str | None]:
    """Every partition the asset declares; one unpartitioned run otherwise."""
    if asset.partitions_def is None:
        return [None]
    return list(asset.partitions_def.get_partition_keys())


def plan(stages: tuple[str, ...] = STAGES) -> list[tuple[str, str | None]]:
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown asset(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
    return [
        (asset.key.to_user_string(), key)
        for asset in ASSETS
        if asset.key.to_user_string() in stages
        for key in _partitions(asset)
    ]


def stage_run_config(
    stage: str, op_config: Mapping[str, Mapping[str, object]] | None = None
) -> dict[str, object]:
    """A stage's run config: quiet console logs, and its asset's config from `op_config`
    (asset name → config) when given there. A job rejects config for an asset it does not
    run, so each run gets only its own."""
    if op_config and stage in op_config:
        return {**QUIET_RUN, "ops": {stage: {"config": dict(op_config[stage])}}}
    return dict(QUIET_RUN)


def run_main_job(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    stages: tuple[str, ...] = STAGES,
    on_step: Callable[[StepOutcome], None] | None = None,
    op_config: Mapping[str, Mapping[str, object]] | None = None,
) -> Iterator[StepOutcome]:
    """Materialise each stage's partitions in order; a failed stage stops the later ones.
    `op_config` (asset name → config) overrides an asset's run config, e.g. a smaller study
    budget in a test."""
    steps = plan(stages)
    jobs = dg.Definitions(assets=ASSETS, jobs=MAIN_JOB_SEQUENCE, resources=resources)
    failed_stage = None
    for stage, key in steps:
        if failed_stage and STAGES.index(stage) > STAGES.index(failed_stage):
            break
        job = jobs.resolve_job_def(MAIN_JOBS[stage].name)
        result = job.execute_in_process(
            run_config=stage_run_config(stage, op_config),
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            asset_selection=[dg.AssetKey(stage)],
        )
        outcome = StepOutcome(stage, key, result)
        if not outcome.success:
            failed_stage = stage
        if on_step:
            on_step(outcome)
        yield outcome


@dataclass(frozen=True)
class StoredRun:
    """A finished run as the instance stored it (what the UI shows), with the parts of
    Dagster's execution result that `StepOutcome` reads: how a run orchestrated in another
    process comes back."""

    dagster_run: dg.DagsterRun
    all_events: list[dg.DagsterEvent]

    @classmethod
    def load(cls, instance: dg.DagsterInstance, run_id: str) -> StoredRun:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise LookupError(f"run {run_id} is not in the instance")
        logs = instance.all_logs(run_id)
        return cls(run, [e.dagster_event for e in logs if e.dagster_event is not None])

    @property
    def success(self) -> bool:
        return self.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for e in self.all_events if e.is_step_materialization]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [
            e.asset_check_evaluation_data
            for e in self.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]


def _orchestrate_on_celery(
    instance_ref: InstanceRef,
    pointer: ReconstructableJob,
    run_config: dict[str, object],
    stage: str,
    tags: Mapping[str, str],
) -> str:
    """One run, orchestrated in this process (see `pipeline.celery_app.run_processes`): it
    submits the step to Celery, waits for its task and hands back the run id."""
    with (
        dg.DagsterInstance.from_ref(instance_ref) as instance,
        dg.execute_job(
            pointer, instance, run_config, tags=tags, asset_selection=[dg.AssetKey(stage)]
        ) as result,
    ):
        return result.run_id


# Runs of one stage in flight at once on Celery: each is a process here that polls its step.
MAX_CONCURRENT_RUNS = 8


def run_main_job_on_celery(
    instance: dg.DagsterInstance,
    stages: tuple[str, ...] = STAGES,
    settings: Settings | None = None,
    on_step: Callable[[StepOutcome], None] | None = None,
    op_config: Mapping[str, Mapping[str, object]] | None = None,
    max_concurrent_runs: int = MAX_CONCURRENT_RUNS,
) -> Iterator[StepOutcome]:
    """The same runs as `run_main_job`, their steps executed by the Celery workers of
    SIGNALS_CELERY_BROKER.

    A partition is a run of its own, so to keep N workers busy a stage's partition runs are
    submitted at once (each orchestrated by a process of its own that polls its step's task)
    and the next stage starts when they are all done: the stages depend on each
    other, their partitions do not. Outcomes come in plan order, read back from the instance.
    The instance must be persistent (workers write their events to it) and the workers must
    share this process's SIGNALS_* environment; `settings` sends the candle source's
    configuration along in the run config (see `pipeline.scaleout.celery_run_config`).
    """
    from pipeline.celery_app import run_processes
    from pipeline.scaleout import celery_run_config, reconstructable_job

    on_celery = celery_run_config(settings)
    steps = plan(stages)
    widest = max(Counter(stage for stage, _ in steps).values(), default=1)
    # One pool for the whole job: a run's process loads the job's definitions once.
    with ProcessPoolExecutor(min(widest, max_concurrent_runs), mp_context=run_processes()) as pool:
        for stage in (s for s in STAGES if s in stages):
            keys = [key for name, key in steps if name == stage]
            name = MAIN_JOBS[stage].name
            pointer = reconstructable_job(name)
            job, selection = pointer.get_definition(), [dg.AssetKey(stage)]
            launch = partial(
                _orchestrate_on_celery,
                instance.get_ref(),
                pointer,
                {**stage_run_config(stage, op_config), **on_celery},
                stage,
            )
            futures = [
                pool.submit(launch, job.get_tags_for_partition_key(key, selection) if key else {})
                for key in keys
            ]
            outcomes = []
            for key, future in zip(keys, futures, strict=True):
                outcome = StepOutcome(stage, key, StoredRun.load(instance, future.result()))
                outcomes.append(outcome)
                if on_step:
                    on_step(outcome)
                yield outcome
            if not all(o.success for o in outcomes):
                break
