"""Feature selection 79 → 50, fitted on the training window only, with its claimed uplift measured.

1. Prune near-duplicates (|Spearman ρ| > 0.95 on training rows), keeping the more relevant
   feature of each pair (|rank correlation| with the forward return, training rows only).
2. Walk-forward folds inside the training window (expanding, embargoed): a gradient-boosting
   model per fold, permutation importance (log-loss) on the fold's validation block.
3. Rank survivors by mean importance; keep the top 50; record fold-to-fold stability.
4. Uplift: the same model trained on the whole training window with all features versus the
   selected ones, scored on the validation window (after train end + embargo), whichever way
   it goes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.labels import DEFAULT_HORIZON
from pipeline.stats import day_block_bootstrap


@dataclass(frozen=True)
class SelectionConfig:
    """Everything the selection depends on; recorded beside its result."""

    train_end: str  # last candle open time whose label may be used (ISO date, UTC)
    validation_end: str | None = None  # end of the uplift window; None: no uplift figures
    timeframe: str = "1h"
    horizon: int = DEFAULT_HORIZON
    n_select: int = 50
    max_abs_corr: float = 0.95
    folds: int = 4
    embargo: int | None = None  # candles between train and validation; default: horizon
    repeats: int = 3
    max_iter: int = 150
    max_rows: int = 60_000  # training rows used per fit (evenly spaced, deterministic)
    seed: int = 0

    @property
    def embargo_candles(self) -> int:
        return max(self.embargo if self.embargo is not None else self.horizon, self.horizon)


@dataclass
class SelectionResult:
    selected: list[str]
    table: pd.DataFrame  # one row per candidate feature
    uplift: dict[str, object]
    fold_rank_agreement: float  # mean Spearman ρ of importance ranks between folds
    config: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "selected": self.selected,
            "features": self.table.replace({np.nan: None}).to_dict("records"),
            "uplift": self.uplift,
            "fold_rank_agreement": self.fold_rank_agreement,
            "config": self.config,
        }


def _model(cfg: SelectionConfig):
    # scikit-learn and scipy load here, not at import: live run processes never select.
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=200,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=cfg.seed,
    )


def _thin(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Evenly spaced rows: deterministic, and spread over the whole period."""
    if len(frame) <= limit:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, limit).astype(int)]


def _spearman(matrix: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ranks = np.apply_along_axis(rankdata, 0, matrix)
    # A constant column (the hour of day on daily candles) correlates with nothing: 0, not NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.corrcoef(ranks, rowvar=False), nan=0.0)


def split_windows(data: pd.DataFrame, cfg: SelectionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (labels resolved by train_end) and validation rows (after the embargo)."""
    step = pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
    train_end = pd.Timestamp(cfg.train_end, tz="UTC")
    train = data[data["timestamp"] + cfg.horizon * step <= train_end]
    if cfg.validation_end is None:
        return train, data.iloc[0:0]
    start = train_end + cfg.embargo_candles * step
    end = pd.Timestamp(cfg.validation_end, tz="UTC")
    validation = data[(data["timestamp"] >= start) & (data["timestamp"] <= end)]
    return train, validation


def walk_forward_folds(
    timestamps: pd.Series, folds: int, embargo: pd.Timedelta
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over time: train on blocks 0..k, validate on block k+1.

    Training rows within `embargo` of the validation block are dropped, so no training label
    overlaps a validation candle.
    """
    times = np.sort(timestamps.unique())
    edges = np.linspace(0, len(times), folds + 2).astype(int)
    ts = timestamps.to_numpy()
    out = []
    for k in range(folds):
        val_start, val_end = times[edges[k + 1]], times[edges[k + 2] - 1]
        train_idx = np.flatnonzero(ts < val_start - embargo.to_timedelta64())
        val_idx = np.flatnonzero((ts >= val_start) & (ts <= val_end))
        if len(train_idx) and len(val_idx):
            out.append((train_idx, val_idx))
    return out


def prune_correlated(
    train: pd.DataFrame, features: list[str], cfg: SelectionConfig
) -> tuple[list[str], dict[str, str], pd.Series]:
    """Greedy pruning by relevance: (kept, {dropped: why}, relevance per feature)."""
    sample = _thin(train, cfg.max_rows)
    matrix = sample[features].to_numpy()
    target = sample["forward_return"].to_numpy()
    both = _spearman(np.column_stack([matrix, target]))
    corr, relevance = both[:-1, :-1], np.abs(both[:-1, -1])
    order = np.argsort(-relevance, kind="stable")
    kept: list[int] = []
    dropped: dict[str, str] = {}
    for i in order:
        clash = [j for j in kept if abs(corr[i, j]) > cfg.max_abs_corr]
        if clash:
            j = max(clash, key=lambda c: abs(corr[i, c]))
            dropped[features[i]] = (
                f"|ρ| = {abs(corr[i, j]):.3f} > {cfg.max_abs_corr} with {features[j]} "
                "(kept: more relevant)"
            )
        else:
            kept.append(i)
    kept_names = [features[i] for i in sorted(kept)]
    return kept_names, dropped, pd.Series(relevance, index=features)


def fold_importances(
    train: pd.DataFrame, features: list[str], cfg: SelectionConfig
) -> pd.DataFrame:
    """Permutation importance (drop in log-loss) per feature (rows) and fold (columns)."""
    from sklearn.inspection import permutation_importance

    step = pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
    folds = walk_forward_folds(train["timestamp"], cfg.folds, cfg.embargo_candles * step)
    if not folds:
        raise ValueError("the training window is too short for walk-forward folds")
    columns = {}
    for k, (fit_idx, val_idx) in enumerate(folds):
        fit = _thin(train.iloc[fit_idx], cfg.max_rows)
        val = _thin(train.iloc[val_idx], cfg.max_rows // 2)
        model = _model(cfg).fit(fit[features].to_numpy(), fit["label"].to_numpy())
        result = permutation_importance(
            model,
            val[features].to_numpy(),
            val["label"].to_numpy(),
            scoring="neg_log_loss",
            n_repeats=cfg.repeats,
            random_state=cfg.seed + k,
            n_jobs=1,
        )
        columns[f"fold_{k + 1}"] = result.importances_mean
    return pd.DataFrame(columns, index=features)


def _score(model, frame: pd.DataFrame, features: list[str]) -> tuple[dict[str, float], np.ndarray]:
    from sklearn.metrics import accuracy_score, log_loss

    proba = model.predict_proba(frame[features].to_numpy())[:, 1]
    y = frame["label"].to_numpy()
    scores = {
        "accuracy": float(accuracy_score(y, proba >= 0.5)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }
    return scores, (proba >= 0.5) == y


def measure_uplift(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    all_features: list[str],
    selected: list[str],
    cfg: SelectionConfig,
) -> dict[str, object]:
    """The quick model with every candidate versus the selection, on unseen validation rows."""
    if validation.empty:
        return {"validation_rows": 0}
    fit = _thin(train, cfg.max_rows)
    scores, correct = {}, {}
    for name, columns in (("all", all_features), ("selected", selected)):
        model = _model(cfg).fit(fit[columns].to_numpy(), fit["label"].to_numpy())
        scores[name], correct[name] = _score(model, validation, columns)
    majority = float(train["label"].mean() >= 0.5)
    y = validation["label"].to_numpy()
    gain = correct["selected"].astype(float) - correct["all"].astype(float)
    low, high = day_block_bootstrap(validation["timestamp"], gain, seed=cfg.seed)
    return {
        "validation_rows": len(validation),
        "validation_start": validation["timestamp"].min().isoformat(),
        "validation_end": validation["timestamp"].max().isoformat(),
        f"all_{len(all_features)}": scores["all"],
        f"selected_{len(selected)}": scores["selected"],
        "majority_class_accuracy": float(np.mean(y == majority)),
        "accuracy_uplift": scores["selected"]["accuracy"] - scores["all"]["accuracy"],
        "accuracy_uplift_95ci": [low, high],
        "log_loss_uplift": scores["all"]["log_loss"] - scores["selected"]["log_loss"],
    }


def select_features(
    data: pd.DataFrame, features: list[str], cfg: SelectionConfig
) -> SelectionResult:
    """Select `cfg.n_select` features using training rows only; measure uplift on validation.

    `data` has columns market, timestamp (UTC), label (0/1 or NaN), forward_return, and the
    features. Rows with any NaN feature (warm-up, gaps) or no label are left out.
    """
    usable = data.dropna(subset=[*features, "label"]).sort_values(["timestamp", "market"])
    train, validation = split_windows(usable, cfg)
    if len(train) < 1_000:
        raise ValueError(
            f"only {len(train)} labelled training rows before {cfg.train_end}: too few to select"
        )
    survivors, dropped, relevance = prune_correlated(train, features, cfg)
    importance = fold_importances(train, survivors, cfg)
    mean = importance.mean(axis=1).sort_values(ascending=False, kind="stable")
    ranked = list(mean.index)
    selected = ranked[: cfg.n_select]
    readmitted: list[str] = []
    if len(selected) < cfg.n_select:  # pruning left too few: take back the most relevant
        spare = sorted(dropped, key=lambda f: -relevance[f])
        readmitted = spare[: cfg.n_select - len(selected)]
        selected = selected + readmitted
    in_top = importance.rank(ascending=False, method="first") <= cfg.n_select
    fold_ranks = importance.rank(ascending=False)
    agreement = fold_ranks.corr(method="spearman").to_numpy()
    off_diagonal = agreement[~np.eye(len(agreement), dtype=bool)]
    rows = []
    for name in features:
        row: dict[str, object] = {"feature": name, "relevance": float(relevance[name])}
        if name in importance.index:
            row.update(
                importance_mean=float(mean[name]),
                importance_std=float(importance.loc[name].std(ddof=0)),
                rank=ranked.index(name) + 1,
                stability=float(in_top.loc[name].mean()),
                **{k: float(v) for k, v in importance.loc[name].items()},
            )
        row["selected"] = name in selected
        if name in dropped:
            row["reason"] = dropped[name] + (
                "; re-admitted to reach n_select" if name in readmitted else ""
            )
        elif name not in selected:
            row["reason"] = f"rank {ranked.index(name) + 1} > {cfg.n_select} by importance"
        else:
            row["reason"] = ""
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["selected", "importance_mean"], ascending=False)
    return SelectionResult(
        selected=selected,
        table=table.reset_index(drop=True),
        uplift=measure_uplift(train, validation, features, selected, cfg),
        fold_rank_agreement=float(off_diagonal.mean()) if off_diagonal.size else float("nan"),
        config={**asdict(cfg), "training_rows": len(train)},
    )
