"""The portfolio strategy's `selected_features`, `lstm_model`, `backtest_report` and
`production_model`.

Under `SIGNALS_STRATEGY=portfolio` (the default) these replace the barrier strategy's assets of
the same names (`assets/modeling.py`): the candidate is an LSTM scoring every market at the
decision timeframe against the forward risk-adjusted return, its scores become one portfolio
of target weights (`pipeline.portfolio`), validation's first half chooses its operating point
and its second half, which chose nothing, judges it in money beside every baseline through the
same layer, costs and funding. The gate promotes on those figures only.
"""

import warnings
from dataclasses import replace

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.features import SelectionRunConfig, select_on, stored_candles
from assets.modeling import (
    GAP_CHECK,
    GATE_CHECK,
    MAJORITY_CHECK,
    _figures,
    _stored_model,
    _training_curves,
    _window,
    gate_outcome,
)
from pipeline.backtest.portfolio import PortfolioCosts
from pipeline.backtest.portfolio_report import write_portfolio_report
from pipeline.data.timeframes import candles_in
from pipeline.evaluation.portfolio_candidate import (
    PortfolioCandidateConfig,
    fit_portfolio_candidate,
    judge_rows,
    judged_beside_baselines,
    model_judged,
    stored_portfolio,
)
from pipeline.evaluation.portfolio_choice import COVERAGES, PortfolioChoice
from pipeline.evaluation.portfolio_gate import PortfolioGateConfig, check_portfolio_gate
from pipeline.evaluation.portfolio_replay import Replayer, headline
from pipeline.evaluation.portfolio_scorers import SCORER_PORTFOLIO
from pipeline.features.candidates import candidate_features
from pipeline.features.labels import FORWARD_DAYS, LabelRule, attach_labels
from pipeline.features.registry import feature_names
from pipeline.features.selection import SelectionConfig
from pipeline.location import SETTINGS
from pipeline.model.config import TrainConfig
from pipeline.model.scorer import load_scorer
from pipeline.model.trees import TreeEnsemble
from pipeline.partitions import (
    DECISION_FEATURE_PARTITIONS,
    DECISION_TIMEFRAME,
    SYMBOLS_BY_MARKET_ID,
    TIMEFRAMES,
)
from pipeline.portfolio.model import MODEL_NAME
from pipeline.reporting.plots import png_markdown
from pipeline.reporting.text import rounded_json, significant, utc_text
from pipeline.store import funding as funding_store
from pipeline.store import models as model_store
from pipeline.tables import markdown_table
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.project import ProjectResource

warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)

HOURLY = "1h"


class PortfolioModelConfig(dg.Config):
    """Training, target and portfolio settings a run may override (the launchpad, tests on
    small data). The operating point is chosen on validation's first half among `coverages`
    (the share of scores held: 1.0 every score, 0.35 the top 35 % by conviction)."""

    train_start: str = "2020-01-01"
    # None: the project's (SIGNALS_TRAIN_END, SIGNALS_VALIDATION_END, SIGNALS_MAX_EPOCHS).
    train_end: str | None = None
    validation_end: str | None = None
    window: int = 8
    max_epochs: int | None = None
    patience: int = 4
    gap_bound: float = 0.15
    seed: int = 0
    horizon_days: float = FORWARD_DAYS
    cross_sectional: bool = False
    target_vol: float = SCORER_PORTFOLIO.target_vol
    band: float = SCORER_PORTFOLIO.band
    min_hold: int = SCORER_PORTFOLIO.min_hold
    coverages: list[float] = Field(default_factory=lambda: list(COVERAGES))
    fee: float = PortfolioCosts.fee
    slippage_bps: float = PortfolioCosts.slippage_bps
    funding_rate: float = PortfolioCosts.funding_rate
    # What the candidate ships: the default is what the walk-forward's rule chose
    # (SIGNALS_SCORER): gradient boosting or the brief's LSTM, on the same windows.
    scorer: str = SETTINGS.scorer

    def candidate(self, project: ProjectResource) -> PortfolioCandidateConfig:
        return PortfolioCandidateConfig(
            train_start=self.train_start,
            train_end=self.train_end or project.train_end,
            val_end=self.validation_end or project.validation_end,
            markets=tuple(SYMBOLS_BY_MARKET_ID.values()),
            timeframe=DECISION_TIMEFRAME,
            horizon_days=self.horizon_days,
            cross_sectional=self.cross_sectional,
            portfolio=replace(
                SCORER_PORTFOLIO,
                target_vol=self.target_vol,
                band=self.band,
                min_hold=self.min_hold,
            ),
            choice=PortfolioChoice(coverages=tuple(self.coverages)),
            train=TrainConfig(
                window=self.window,
                max_epochs=self.max_epochs if self.max_epochs is not None else project.max_epochs,
                patience=self.patience,
                gap_bound=self.gap_bound,
                seed=self.seed,
            ),
            costs=self.costs(),
            scorer=self.scorer,
        )

    def costs(self) -> PortfolioCosts:
        return PortfolioCosts(
            fee=self.fee, slippage_bps=self.slippage_bps, funding_rate=self.funding_rate
        )


def replayer(
    database: PostgresResource, candle_source: CandleSourceResource, costs: PortfolioCosts
) -> Replayer:
    """Every market's decision candles as one panel, with the 1h candles that price the
    funding settlements inside them and the recorded funding (`funding_rates`), if any."""
    markets = dict(SYMBOLS_BY_MARKET_ID)
    candles = {
        s: stored_candles(database, candle_source, m, DECISION_TIMEFRAME)
        for m, s in markets.items()
    }
    hourly = (
        {s: stored_candles(database, candle_source, m, HOURLY) for m, s in markets.items()}
        if HOURLY in TIMEFRAMES and DECISION_TIMEFRAME != HOURLY
        else {}
    )
    with database.database().connection() as conn:
        funding = {
            s: rows
            for s in markets.values()
            if (rows := funding_store.load_funding(conn, candle_source.exchange, s))
        }
    return Replayer(candles, hourly, funding, DECISION_TIMEFRAME, list(markets.values()), costs)


def _labelled(features: pd.DataFrame, replay: Replayer, rule: LabelRule) -> pd.DataFrame:
    candles = {
        m: pd.DataFrame(
            {
                "timestamp": replay.panel.timestamps,
                **{p: getattr(replay.panel, p)[:, j] for p in ("open", "high", "low", "close")},
            }
        )
        for j, m in enumerate(replay.markets)
    }
    return attach_labels(features, candles, DECISION_TIMEFRAME, rule)


def _judged_table(figures: dict[str, dict]) -> str:
    rows = []
    for name, f in figures.items():
        if "sharpe_median" in f:  # the random null
            continue
        rows.append(
            [
                name,
                _pct(f.get("total_return")),
                _num(f.get("sharpe")),
                _pct(f.get("max_drawdown"), signed=False),
                _num(f.get("turnover_per_year"), 1),
                _num(f.get("avg_gross_exposure")),
                f.get("trades"),
            ]
        )
    return markdown_table(
        ["strategy", "net %", "Sharpe", "max DD %", "turnover / yr", "gross exp.", "fills"],
        rows,
        align="lrrrrrr",
    )


def _pct(value, signed: bool = True) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{100 * float(value):{'+' if signed else ''}.1f}"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{float(value):.{digits}f}"


class PortfolioSelectionConfig(SelectionRunConfig):
    """The selection's settings, and the forward target's horizon it labels with."""

    horizon_days: float = FORWARD_DAYS


@dg.asset(
    name="selected_features",
    group_name="features",
    deps=[dg.AssetDep("ohlcv", partition_mapping=DECISION_FEATURE_PARTITIONS)],
    ins={"features": dg.AssetIn(partition_mapping=DECISION_FEATURE_PARTITIONS)},
    io_manager_key="parquet_io_manager",
    kinds={"sklearn", "parquet"},
)
def portfolio_selected_features(
    context: dg.AssetExecutionContext,
    config: PortfolioSelectionConfig,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
) -> pd.DataFrame:
    """The 50 strongest candidates at the decision timeframe (those whose warm-up leaves
    history to train on), chosen on the training window only against the forward
    risk-adjusted return the portfolio's lstm_model trains on."""
    overrides = config.model_dump()
    overrides["train_end"] = config.train_end or project.train_end
    overrides["validation_end"] = config.validation_end or project.validation_end
    overrides["horizon"] = candles_in(overrides.pop("horizon_days"), DECISION_TIMEFRAME)
    cfg = SelectionConfig(timeframe=DECISION_TIMEFRAME, **overrides)
    rule = LabelRule.forward(cfg.horizon)
    names = candidate_features(DECISION_TIMEFRAME)
    return select_on(context, cfg, database, candle_source, features, rule, names)


@dg.asset(
    name="lstm_model",
    group_name="modeling",
    ins={
        "features": dg.AssetIn(partition_mapping=DECISION_FEATURE_PARTITIONS),
        "selected_features": dg.AssetIn(),
    },
    check_specs=[
        dg.AssetCheckSpec(
            GAP_CHECK,
            asset="lstm_model",
            description="Train − validation accuracy stayed within the bound: the LSTM's "
            "training control (an ERROR); gradient boosting's gap is reported (a WARN).",
        ),
        dg.AssetCheckSpec(
            MAJORITY_CHECK,
            asset="lstm_model",
            description="Validation accuracy above the majority class's: reported (a WARN), "
            "not a veto: a portfolio's edge lives in its confident scores.",
        ),
    ],
    io_manager_key="json_io_manager",
    dagster_type=int,
    kinds={"pytorch", "postgres"},
)
def portfolio_lstm_model(
    context: dg.AssetExecutionContext,
    config: PortfolioModelConfig,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    selected_features: pd.DataFrame,
) -> dg.MaterializeResult:
    """A candidate portfolio model: its scorer (`scorer`: gradient boosting by default, what
    the walk-forward's rule chose, or the brief's LSTM) scores every market at the decision
    timeframe against the forward risk-adjusted return; validation's first half chooses its
    operating point, its second half judges it (net Sharpe, drawdown, turnover, beside the
    baselines in `backtest_report`). Its value is the model id; it becomes production only
    through `production_model`'s gate."""
    selected = selected_features.loc[selected_features["selected"], "feature"].tolist()
    cfg = config.candidate(project)
    replay = replayer(database, candle_source, cfg.costs)
    data = _labelled(features, replay, cfg.rule)
    candidate = fit_portfolio_candidate(data, selected, cfg, replay, log=context.log.info)
    record = candidate.record()
    fitted, metrics = candidate.fitted, record.metrics
    gap = float(metrics["gap"])
    gap_ok = gap <= cfg.train.gap_bound
    # The bound is the LSTM's training control (it stops training, rule 7): an ERROR there.
    # Boosting's fixed configuration has no epochs to stop: its gap is reported as a WARN.
    gap_severity = "ERROR" if cfg.scorer == "lstm" else "WARN"
    beats_majority = metrics["val_accuracy"] > metrics["val_majority_accuracy"]
    metrics["checks"] = {
        GAP_CHECK: {"passed": gap_ok, "severity": gap_severity},
        MAJORITY_CHECK: {"passed": beats_majority, "severity": "WARN"},
    }
    with database.database().connection() as conn:
        model_id = model_store.save_model(conn, record)
    judged = metrics["judged"]
    result = fitted.lstm.result
    context.log.info(
        f"candidate {model_id} ({cfg.scorer}): coverage {record.config['coverage']:g}, "
        f"judged half Sharpe {_num(judged['sharpe'])}"
    )
    if cfg.scorer == "lstm":
        size = {"parameters": result.n_parameters, "stopped": result.stopped}
    else:
        trees = TreeEnsemble.from_bytes(record.checkpoint)
        size = {"trees": len(trees.offsets) - 1, "tree_nodes": len(trees.feature)}
    return dg.MaterializeResult(
        value=model_id,
        metadata={
            "model_id": model_id,
            "kind": "portfolio",
            "scorer": cfg.scorer,
            "decision_timeframe": DECISION_TIMEFRAME,
            **size,
            # The LSTM is fitted on the same windows whichever scorer ships: its curves.
            "lstm_epochs": len(result.epochs),
            "lstm_best_epoch": result.best_epoch,
            **_figures(
                {
                    "gap": gap,
                    "val_accuracy": metrics["val_accuracy"],
                    "val_majority_accuracy": metrics["val_majority_accuracy"],
                    "coverage": record.config["coverage"],
                    "threshold": candidate.chosen.threshold,
                    "judged_sharpe": judged["sharpe"],
                    "judged_net_return": judged["total_return"],
                    "judged_max_drawdown": judged["max_drawdown"],
                    "judged_turnover_per_year": judged["turnover_per_year"],
                }
            ),
            "judged_fills": int(judged["trades"] or 0),
            "lstm_training_curves": dg.MetadataValue.md(
                _training_curves(result, cfg.train.gap_bound)
            ),
            "train_window": _window(fitted.splits, "train"),
            "validation_window": _window(fitted.splits, "validation"),
            "validation_halves": dg.MetadataValue.json(fitted.halves),
            "target": dg.MetadataValue.json(rounded_json(cfg.rule.to_json())),
            "portfolio": dg.MetadataValue.json(rounded_json(candidate.chosen.to_json())),
            "operating_options": dg.MetadataValue.md(_options(record.config["operating_options"])),
            "seed": result.seed,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GAP_CHECK,
                passed=gap_ok,
                severity=dg.AssetCheckSeverity[gap_severity],
                metadata={"gap": significant(gap), "bound": cfg.train.gap_bound},
            ),
            dg.AssetCheckResult(
                check_name=MAJORITY_CHECK,
                passed=beats_majority,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=_figures(
                    {k: metrics[k] for k in ("val_accuracy", "val_majority_accuracy")}
                ),
            ),
        ],
    )


def _options(options: list[dict]) -> str:
    return (
        markdown_table(
            ["coverage", "threshold", "net %", "Sharpe", "max DD %", "fills", "chosen"],
            (
                [
                    f"{o['coverage']:g}",
                    f"{o['threshold']:.3f}",
                    _pct(o.get("total_return")),
                    _num(o.get("sharpe")),
                    _pct(o.get("max_drawdown"), signed=False),
                    o.get("trades"),
                    "✓" if o.get("chosen") else "",
                ]
                for o in options
            ),
            align="rrrrrrl",
        )
        + "\n\nEach option replayed on validation's first half (the choosing half)."
    )


def judge_model(
    record: model_store.ModelRecord,
    features: pd.DataFrame,
    replay: Replayer,
    rows,
):
    """A stored portfolio model's replay over `rows` (its windows scored one at a time)."""
    loaded = load_scorer(record, feature_names())
    data = _labelled(features, replay, LabelRule.from_json(record.config["label"]))
    return model_judged(loaded, record, data, replay, rows)


@dg.asset(
    name="backtest_report",
    group_name="evaluation",
    ins={
        "features": dg.AssetIn(partition_mapping=DECISION_FEATURE_PARTITIONS),
        "lstm_model": dg.AssetIn(),
    },
    kinds={"matplotlib"},
)
def portfolio_backtest_report(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    lstm_model: int,
) -> dg.MaterializeResult:
    """The candidate `lstm_model` produced, replayed as one portfolio over validation's judging
    half (the half that chose nothing), beside the daily trend rule, cross-sectional momentum,
    equal-weight buy-and-hold and random scores through its own operating point: the shared
    equity, the gross exposure and turnover, each market's share of the P&L."""
    record = _stored_model(database, lstm_model)
    portfolio = stored_portfolio(record).config
    costs = PortfolioCosts(**record.config["costs"])
    replay = replayer(database, candle_source, costs)
    rows = judge_rows(record, replay)
    candidate = judge_model(record, features, replay, rows)
    judged = judged_beside_baselines(candidate, replay, rows, portfolio, seed=record.seed)
    first, last = (utc_text(int(replay.ms[r])) for r in (rows[0], rows[-1]))
    out_dir = project.report_dir(record.id, "portfolio")
    report = write_portfolio_report(
        judged["results"],
        out_dir,
        f"model {record.id}: {DECISION_TIMEFRAME} portfolio on validation's judging half "
        f"{first} … {last}",
        lead="candidate",
    )
    figures = judged["figures"]
    lstm = figures["candidate"]
    return dg.MaterializeResult(
        metadata={
            "model_id": record.id,
            "judging_half": f"{first} … {last}",
            "report": dg.MetadataValue.path(str(report.markdown_path)),
            "table": dg.MetadataValue.md(report.table),
            "attribution": dg.MetadataValue.md(report.attribution),
            "equity": dg.MetadataValue.md(
                png_markdown(report.png_path.read_bytes(), "equity and exposure")
            ),
            "random_scores": dg.MetadataValue.json(rounded_json(figures["random"])),
            "scorer": record.config.get("scorer", "lstm"),
            **_figures({f"candidate_{k}": v for k, v in lstm.items() if k != "liquidated"}),
            **_figures({"trend_sharpe": figures["trend"]["sharpe"]}),
        }
    )


class PortfolioGateRunConfig(dg.Config):
    """The gate's bounds, overridable per run; defaults are PortfolioGateConfig's."""

    min_sharpe: float = PortfolioGateConfig.min_sharpe
    beat_trend: bool = PortfolioGateConfig.beat_trend
    max_drawdown: float = PortfolioGateConfig.max_drawdown
    min_trades: int = PortfolioGateConfig.min_trades
    max_gap: float = PortfolioGateConfig.max_gap


@dg.asset(
    name="production_model",
    group_name="evaluation",
    deps=["backtest_report"],
    ins={
        "features": dg.AssetIn(partition_mapping=DECISION_FEATURE_PARTITIONS),
        "lstm_model": dg.AssetIn(),
    },
    kinds={"postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="production_model",
            description="The candidate passed the gate and was promoted. A refusal FAILS this "
            "check (ERROR, red), with the reasons; the materialisation's outcome says refused.",
        )
    ],
)
def portfolio_production_model(
    context: dg.AssetExecutionContext,
    config: PortfolioGateRunConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
    features: pd.DataFrame,
    lstm_model: int,
) -> dg.MaterializeResult:
    """Promote the candidate only if, on validation's judging half, its portfolio makes money
    after costs: net Sharpe above the floor and above the trend rule's, drawdown and fills
    within bounds, no worse than the production model on the same candles."""
    candidate = _stored_model(database, lstm_model)
    portfolio = stored_portfolio(candidate).config
    costs = PortfolioCosts(**candidate.config["costs"])
    replay = replayer(database, candle_source, costs)
    rows = judge_rows(candidate, replay)
    result = judge_model(candidate, features, replay, rows)
    judged = judged_beside_baselines(result, replay, rows, portfolio, draws=0)["figures"]
    with database.database().connection() as conn:
        current = model_store.production_model(conn, MODEL_NAME, DECISION_TIMEFRAME)
    production = (
        headline(judge_model(current, features, replay, rows).metrics)
        if current is not None and current.config.get("kind") == "portfolio"
        else None
    )
    verdict = check_portfolio_gate(
        judged, production, PortfolioGateConfig(**config.model_dump()), fit=candidate.metrics
    )
    verdict.candidate["trend_sharpe"] = judged["trend"]["sharpe"]
    extra = {"judged": dg.MetadataValue.md(_judged_table(judged)), "verdict": verdict.to_json()}
    return gate_outcome(context, database, candidate, current, verdict, extra)
