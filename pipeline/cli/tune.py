"""`signals tune`: an Optuna study of the LSTM on one training window, shared through
PostgreSQL, run by N worker processes (the same command on another machine joins it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.common import CliError, csv_list, json_default
from pipeline.data.timeframes import timeframe_ms
from pipeline.exchange.markets import normalise_symbol


def register(subparsers: argparse._SubParsersAction) -> None:
    tune = subparsers.add_parser(
        "tune",
        help="search the LSTM's hyperparameters on a training window (Optuna, shared study)",
        description="Runs an Optuna study (TPE sampler, median pruner) on one training window: "
        "each trial fits the LSTM on inner chronological folds and scores the validation net "
        "Sharpe at its operating point. The study lives in PostgreSQL (database "
        "signals_studies on the project's server), so the same command with the same "
        "SIGNALS_DATABASE_URL on another machine joins it; --trials is the study's total "
        "budget, finished exactly once however many workers join. Every trial is appended to "
        "the trials ledger. Candles after --fit-end are never read.",
    )
    tune.add_argument("--data-dir", required=True, help="candle folder (MARKETID.csv[.gz], 1h)")
    tune.add_argument("--markets", type=csv_list, required=True, help="markets to fit on")
    tune.add_argument("--timeframe", default="1h")
    tune.add_argument("--fit-start", required=True, help="training window start (ISO, UTC)")
    tune.add_argument("--fit-end", required=True, help="training window end (ISO, UTC)")
    tune.add_argument("--trials", type=int, default=24, help="the study's budget (default 24)")
    tune.add_argument("--workers", type=int, default=1, help="worker processes here (default 1)")
    tune.add_argument(
        "--study",
        help="study name (default: derived from the window, markets and settings, so the same "
        "command resumes or joins the same study)",
    )
    tune.add_argument("--seed", type=int, default=0, help="the sampler's seed (worker i: +i)")
    tune.add_argument("--inner-folds", type=int, default=2)
    tune.add_argument("--max-epochs", type=int, help="cap training epochs (quick looks)")
    tune.add_argument("--json", help="write the study's trials and best parameters here")
    tune.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    """Run (or join) the study to its budget and print its trials and best parameters."""
    from pipeline.data.csv_source import CandleFolder
    from pipeline.evaluation.tuned import study_name
    from pipeline.evaluation.tuning import StudySpec
    from pipeline.evaluation.window_search import (
        Printer,
        WindowObjective,
        known_candles,
        search_on_window,
        search_window,
    )
    from pipeline.model.config import TrainConfig
    from pipeline.settings import Settings
    from pipeline.store.database import resolve_url
    from pipeline.store.studies import study_database_url
    from pipeline.tables import markdown_table

    timeframe_ms(args.timeframe)
    if args.trials < 1 or args.workers < 1:
        raise CliError("--trials and --workers must be at least 1")
    markets = tuple(normalise_symbol(m) for m in args.markets)
    folder = CandleFolder(args.data_dir)
    candles = {s: folder.read(s, args.timeframe) for s in markets}
    train = TrainConfig() if not args.max_epochs else TrainConfig(max_epochs=args.max_epochs)
    print("selecting features on the training window…", file=sys.stderr, flush=True)
    search = search_on_window(
        candles,
        markets,
        args.fit_start,
        args.fit_end,
        timeframe=args.timeframe,
        train=train,
        inner_folds=args.inner_folds,
    )
    known = known_candles(candles, markets, search.fit_end)
    server = resolve_url(Settings.from_env())
    name = args.study or study_name("tune", search, known)
    objective = WindowObjective(
        search, known, ledger_url=server, study=name, log=Printer(prefix="")
    )
    spec = StudySpec(name, study_database_url(server), args.trials, args.seed)
    print(
        f"study {name}: budget {args.trials} trials, {args.workers} worker(s) here, "
        f"{len(search.selected)} features",
        file=sys.stderr,
        flush=True,
    )
    found = search_window(objective, spec, args.workers)
    table = found.trials
    shown = ["number", "state", "value", "window", "hidden", "n_parameters", "dropout", "lr"]
    shown += ["weight_decay", "horizon", "barrier_k", "coverage", "seconds", "train_seconds"]
    rows = [[_fmt(r[c]) for c in shown if c in table.columns] for r in table.to_dict("records")]
    print(markdown_table([c for c in shown if c in table.columns], rows))
    print(f"\nbest: trial value {found.value:+.3f} (validation net Sharpe) with {found.params}")
    print(f"this command's workers ran {found.ran} trial(s); the study holds {len(table)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "study": name,
                    "best": found.params.to_json(),
                    "best_value": found.value,
                    "trials": table.to_dict("records"),
                    "search": search.to_json(),
                },
                indent=1,
                default=json_default,
            )
        )
    return 0


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.4g}"
    return "–" if value is None else str(value)
