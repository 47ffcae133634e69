"""The main job: materialise the asset chain for every configured partition, as the UI would.

Each asset × partition is its own in-process run of the named job that owns the asset
(`pipeline.jobs.MAIN_JOBS`) in the given Dagster instance, so the runs, their metadata and
asset checks appear in the UI afterwards under that job, and can be re-executed from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg

from pipeline.definitions import ASSETS
from pipeline.jobs import MAIN_JOB_SEQUENCE, MAIN_JOBS

STAGES = tuple(a.key.to_user_string() for a in ASSETS)

# Dagster's console logger prints every event; the caller prints one line per partition.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class StepOutcome:
    asset: str
    partition: str | None
    result: dg.ExecuteInProcessResult

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
        for event in self.result.all_events:
            if event.is_step_failure and event.step_failure_data:
                return event.step_failure_data.error.message.strip()
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
        if self.asset == "lstm_model":
            return (
                f"lstm_model  candidate {meta['model_id']}: {meta['parameters']} parameters, "
                f"{meta['epochs']} epochs ({meta['stopped']}), validation accuracy "
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
                    else "no model is in production (live runs record nothing until one is)"
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


def run_main_job(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    stages: tuple[str, ...] = STAGES,
    on_step: Callable[[StepOutcome], None] | None = None,
) -> Iterator[StepOutcome]:
    """Materialise each stage's partitions in order; a failed stage stops the later ones."""
    steps = plan(stages)
    jobs = dg.Definitions(assets=ASSETS, jobs=MAIN_JOB_SEQUENCE, resources=resources)
    failed_stage = None
    for stage, key in steps:
        if failed_stage and STAGES.index(stage) > STAGES.index(failed_stage):
            break
        job = jobs.resolve_job_def(MAIN_JOBS[stage].name)
        result = job.execute_in_process(
            run_config=QUIET_RUN,
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
