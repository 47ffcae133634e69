"""`signals run`: the main job, one printed line per materialisation."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from importlib import resources as package_files
from pathlib import Path

from pipeline.cli.common import CliError, csv_list, progress
from pipeline.settings import Settings

DEV_INSTANCE = package_files.files("pipeline").joinpath("dagster_dev.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="the main job: materialise ohlcv → market_factor → features → selected_features → "
        "hyperparameter_study → lstm_model → backtest_report → production_model for the "
        "configured markets, "
        "through Dagster",
    )
    run.add_argument(
        "--assets", type=csv_list, help="only these stages, e.g. ohlcv (default: the whole chain)"
    )
    run.add_argument(
        "--config",
        type=_asset_config,
        default=None,
        metavar="JSON",
        help="run config of some assets, as the launchpad takes it, e.g. "
        '\'{"hyperparameter_study": {"budget": 2}}\' (default: each asset\'s own)',
    )
    run.add_argument(
        "--executor",
        choices=("in_process", "celery"),
        default="in_process",
        help="where the steps execute: in this process, one run after another (default), or "
        "on the Celery workers of SIGNALS_CELERY_BROKER (`signals worker`), a stage's "
        "partitions at once",
    )
    run.add_argument(
        "--wait-workers",
        type=float,
        default=30.0,
        metavar="S",
        help="with --executor celery: how long to wait for a worker to answer (default 30)",
    )
    run.set_defaults(func=cmd_run)


def _asset_config(text: str) -> dict[str, dict]:
    """`--config`: a JSON object of asset name → that asset's run config."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from err
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError('expected {"asset": {…config…}, …}')
    return value


def local_instance(dagster_home: Path, settings: Settings) -> Path:
    """The local instance's dagster.yaml (written when missing, and over an older local one
    that kept Dagster's storage in SQLite files), with `SIGNALS_DAGSTER_PG_URL` set to
    Dagster's database on the project's server."""
    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL, dagster_storage_url
    from pipeline.store.database import resolve_url

    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists() or "storage:" not in instance_yaml.read_text(encoding="utf-8"):
        instance_yaml.write_text(DEV_INSTANCE.read_text(encoding="utf-8"))
    os.environ.setdefault(ENV_DAGSTER_PG_URL, dagster_storage_url(resolve_url(settings)))
    return instance_yaml


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: materialise the asset chain for every configured partition."""
    import dagster as dg

    from pipeline.replay.clock import ReplayClock, sample_start_ms
    from pipeline.replay.server import ReplayExchange, ReplayServer

    settings = Settings.from_env()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster")))
    local_instance(dagster_home, settings)
    if args.executor == "celery":
        from pipeline.celery_app import run_processes

        run_processes()  # imports the job's code in the background while this process does

    from pipeline.definitions import build_resources
    from pipeline.main_job import STAGES, plan, run_main_job, run_main_job_on_celery
    from pipeline.store.dagster_storage import dagster_database_name
    from pipeline.store.database import resolve_url

    stages = tuple(args.assets) if args.assets else STAGES
    steps = plan(stages)
    unknown = set(args.config or {}) - set(STAGES)
    if unknown:
        raise CliError(f"--config names {sorted(unknown)}; assets are {', '.join(STAGES)}")
    with ExitStack() as stack:
        if settings.data_dir and settings.source == "ccxt" and not settings.api_url:
            exchange = ReplayExchange(
                settings.data_dir, ReplayClock(), funding_dir=settings.funding_dir
            )
            # A folder that ends in the past is served as of the clock `signals
            # replay-exchange` starts at by default (24 h before its last close): the world
            # the offline live recipe then continues, so the store never holds a candle that
            # exchange has not closed yet; ohlcv's freshness is judged against that clock.
            start = sample_start_ms(exchange.data.last_close_ms(), int(time.time() * 1000))
            if start is not None:
                exchange.clock.set(start, 1.0)
            server = ReplayServer(exchange).start()
            stack.callback(server.stop)
            settings = Settings(**{**settings.__dict__, "api_url": server.url})
            print(f"replaying {settings.data_dir} through ccxt at {server.url}", file=sys.stderr)
        instance = stack.enter_context(dg.DagsterInstance.get())
        if args.executor == "celery":
            from pipeline.celery_app import broker_url, check_broker

            broker = broker_url()
            workers = check_broker(broker, wait_s=args.wait_workers)
            print(f"executing on Celery: {', '.join(workers)} via {broker}", file=sys.stderr)
            outcomes = run_main_job_on_celery(
                instance, stages, settings=settings, op_config=args.config
            )
        else:
            outcomes = run_main_job(
                instance, build_resources(settings), stages, op_config=args.config
            )
        bar = stack.enter_context(progress(len(steps), sys.stderr.isatty(), unit="run"))
        failures = []
        for outcome in outcomes:
            bar.update(1)
            bar.clear()
            print(outcome.summary())
            if not outcome.success:
                failures.append(outcome)
                print(
                    f"{outcome.asset} {outcome.partition or ''}: {outcome.error()}", file=sys.stderr
                )
    if failures:
        raise CliError(
            f"{len(failures)} run(s) failed, starting with {failures[0].asset} "
            f"{failures[0].partition or ''}; later stages were not run"
        )
    print(
        f"materialised {', '.join(stages)}; runs recorded in PostgreSQL "
        f"(database {dagster_database_name(resolve_url(settings))}; instance {dagster_home})"
    )
    if "backtest_report" in stages:
        each = "the portfolio's" if settings.strategy == "portfolio" else "per market"
        print(f"backtest reports (markdown + equity.png, {each}): {settings.home / 'reports'}")
    return 0
