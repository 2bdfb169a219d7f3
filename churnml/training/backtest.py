"""Backtests of the churn and LTV models on a panel of cutoffs.

The panel has one row per ``(customer_id, cutoff)``: feature columns plus the labels
``churned`` (0/1) and ``ltv`` (net revenue over the horizon, input currency), as
:func:`churnml.labels.build_panel` returns it. Two designs:

* **Rolling origin** (Tashman 2000, "Out-of-sample tests of forecasting accuracy: an
  analysis and review", Int. J. Forecasting 16(4)). The test cutoffs ("origins") are the
  latest ``n_origins`` cutoffs, ``origin_step`` cutoffs apart. For test cutoff ``t`` the
  models train on the cutoffs ``c`` whose label window ``[c, c + W)`` ended by ``t``:
  ``c + W <= t``, with ``W`` the label window in days (the horizon, plus the re-subscribe
  grace for contractual churn). No training feature or label reads data at or after ``t``.
* **Customer-grouped k-fold** for a single cutoff (or any panel): scikit-learn's
  :class:`~sklearn.model_selection.StratifiedGroupKFold` on ``customer_id``, stratified on
  ``churned``; a customer's rows are all in one fold.

In every fold the same routine (:func:`fit_models`) fits the calibrated LightGBM churn
classifier, the logistic baseline, the recency baseline, the LTV model and the last-value
baseline. Hyper-parameter candidates (``training.churn_candidates`` /
``training.ltv_candidates``, e.g. the hurdle vs Tweedie LTV model) are chosen by nested
validation inside the fold's training rows only (:func:`inner_split`), so the fold's test
rows never influence a choice (Varma & Simon 2006, "Bias in error estimation when using
cross-validation for model selection", BMC Bioinformatics 7).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from churnml.config import BTYD, BTYD_KINDS, ChurnConfig, TrainingConfig
from churnml.errors import ConfigError, DataValidationError
from churnml.labels import label_window_days
from churnml.models import (
    ChurnClassifier,
    LastValueBaseline,
    LogisticChurnBaseline,
    LTVModel,
    RecencyBaseline,
)
from churnml.models._lgbm import holdout_split
from churnml.models.baselines import RECENCY_COLUMN
from churnml.models.btyd import BTYDChurnModel, BTYDValueModel
from churnml.training.evaluation import (
    calibration_table,
    classification_metrics,
    lift_table,
    regression_metrics,
    value_at_risk_coverage,
)

ID, CUTOFF, CHURNED, LTV = "customer_id", "cutoff", "churned", "ltv"
KEY_COLUMNS = (ID, CUTOFF)
LABEL_COLUMNS = (CHURNED, LTV)
PANEL_TABLE = "panel"  # table name in error messages

# model name -> prediction column of backtest_predictions.parquet
CHURN_SCORES = {
    "churn": "churn_probability",
    "logistic": "logistic_probability",
    "recency": "baseline_probability",
}
LTV_SCORES = {"ltv": "ltv_predicted", "last_value": "baseline_ltv"}
VIR_COLUMN = "value_if_retained"  # E[horizon revenue | not churned] of the LTV model
PREDICTION_COLUMNS = [
    ID, CUTOFF, "fold", CHURNED, "churn_probability", "baseline_probability", "ltv_actual",
    "ltv_predicted", VIR_COLUMN, "baseline_ltv", "logistic_probability",
]
# Rankings of the revenue lost to churn, name -> (factors multiplied; one factor: itself).
# "churn" is value at risk = churn probability x value if retained (what scoring ranks by);
# the others are the alternatives it must beat: churn probability x expected value (which
# already discounts leaving, so it counts the risk twice), x trailing-horizon revenue, the
# recency baseline alone and the naive pair recency x trailing revenue.
VAR_SCORES = {
    "churn": ("churn_probability", VIR_COLUMN),
    "churn_x_expected_value": ("churn_probability", "ltv_predicted"),
    "churn_x_trailing_value": ("churn_probability", "baseline_ltv"),
    "recency": ("baseline_probability",),
    "recency_x_trailing_value": ("baseline_probability", "baseline_ltv"),
}
VAR_LABELS = {  # the rankings in words (report)
    "churn": "value at risk (churn probability x value if retained)",
    "churn_x_expected_value": "churn probability x expected value",
    "churn_x_trailing_value": "churn probability x trailing revenue",
    "recency": "recency (days since last purchase)",
    "recency_x_trailing_value": "recency baseline x trailing revenue",
}
# Predictors of a retained customer's horizon revenue, scored on the rows with churned == 0
# (metric set "if_retained"): model name -> prediction column.
VIR_SCORES = {"value_if_retained": VIR_COLUMN, "expected_value": "ltv_predicted",
              "trailing_value": "baseline_ltv"}
CLASSIFICATION, REGRESSION, VALUE_AT_RISK = "classification", "regression", "value_at_risk"
IF_RETAINED = "if_retained"
LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece", "decile_mape", "mae", "rmse"})
SPEND_COLUMN = "spend_{days}d"  # built-in feature: purchase spend in the last `days` days
MIN_INNER_FIT_RATIO = 1.0  # temporal inner split needs >= this x validation rows to fit on

Task = Literal["churn", "ltv"]
Progress = Callable[[str], None]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of an evaluation metric is better (False for losses)."""
    return metric not in LOWER_IS_BETTER


def last_value_column(horizon_days: int) -> str:
    """Feature read by the last-value LTV baseline: spend in the last horizon-long window."""
    return SPEND_COLUMN.format(days=horizon_days)


def feature_columns(panel: pd.DataFrame) -> list[str]:
    """Every panel column except the keys and the labels."""
    return [c for c in panel.columns if c not in (*KEY_COLUMNS, *LABEL_COLUMNS)]


def check_panel(panel: pd.DataFrame, horizon_days: int) -> None:
    """The panel has keys, labels and the columns the naive baselines read."""
    needed = [*KEY_COLUMNS, *LABEL_COLUMNS, RECENCY_COLUMN, last_value_column(horizon_days)]
    missing = [c for c in needed if c not in panel.columns]
    if missing:
        raise DataValidationError(
            PANEL_TABLE, missing[0],
            f"missing column(s) {missing}; the baselines need days_since_last_purchase and "
            f"the spend over the {horizon_days}-day horizon (add {horizon_days} to the "
            "feature windows_days)",
        )
    if panel.empty:
        raise DataValidationError(PANEL_TABLE, None, "no rows (no customer at risk)")


# ------------------------------------------------------------------------------ folds


@dataclass(frozen=True)
class Fold:
    """One backtest split: row positions of the panel (after ``reset_index``)."""

    fold: int
    train: np.ndarray
    test: np.ndarray


def rolling_origin_folds(
    cutoffs: Any,
    window_days: int,
    n_origins: int,
    origin_step: int = 1,
    max_train_cutoffs: int | None = None,
) -> list[Fold]:
    """Rolling-origin folds from the per-row ``cutoffs`` of a panel (module docstring).

    Origins are the latest ``n_origins`` distinct cutoffs, every ``origin_step``-th from the
    last, oldest first; each trains on the cutoffs with ``c + window_days <= origin`` (the
    latest ``max_train_cutoffs`` of them, if set).
    """
    cut = pd.DatetimeIndex(cutoffs)
    distinct = cut.unique().sort_values()
    origins = distinct[::-1][::origin_step][:n_origins][::-1]
    window = pd.Timedelta(days=window_days)
    folds = []
    for i, origin in enumerate(origins):
        train_cuts = distinct[distinct + window <= origin]
        if max_train_cutoffs is not None:
            train_cuts = train_cuts[-max_train_cutoffs:]
        if len(train_cuts) == 0:
            raise ConfigError(
                f"rolling_origin: test cutoff {origin.date()} has no earlier cutoff whose "
                f"{window_days}-day label window ended by it; lower training.n_origins, use "
                "more history, or set training.backtest: grouped_kfold"
            )
        folds.append(Fold(i, np.flatnonzero(cut.isin(train_cuts)), np.flatnonzero(cut == origin)))
    return folds


def grouped_kfold_folds(groups: Any, y: Any, n_folds: int, seed: int) -> list[Fold]:
    """Customer-grouped k-fold, stratified on ``y`` (:class:`StratifiedGroupKFold`,
    shuffled with ``seed``): no group has rows on both sides of any fold."""
    groups = np.asarray(groups)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    splits = splitter.split(np.zeros(len(groups)), np.asarray(y), groups)
    return [Fold(i, train, test) for i, (train, test) in enumerate(splits)]


def make_folds(panel: pd.DataFrame, training: TrainingConfig, churn: ChurnConfig) -> list[Fold]:
    """Folds of the design named by ``training.backtest``."""
    if training.backtest == "rolling_origin":
        return rolling_origin_folds(
            panel[CUTOFF], label_window_days(churn), training.n_origins, training.origin_step,
            training.max_train_cutoffs,
        )
    return grouped_kfold_folds(panel[ID], panel[CHURNED], training.n_folds, training.seed)


def fold_table(panel: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
    """Which cutoffs each fold trains and tests on: ``fold, role (train|test), cutoff,
    rows, customers``."""
    parts = [
        panel.iloc[idx][[ID, CUTOFF]].assign(fold=f.fold, role=role)
        for f in folds for role, idx in (("train", f.train), ("test", f.test))
    ]
    return (
        pd.concat(parts, ignore_index=True)
        .groupby(["fold", "role", CUTOFF], sort=True)
        .agg(rows=(ID, "size"), customers=(ID, "nunique"))
        .reset_index()
    )


def inner_split(
    panel: pd.DataFrame, window_days: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(fit, validation)`` for nested selection inside a training panel.

    Temporal when the panel allows it: validation = its latest cutoff ``v``, fit = its
    cutoffs with ``c + window_days <= v`` (at least as many rows as the validation part).
    Otherwise a customer-grouped hold-out of ``fraction`` of the customers.
    """
    cut = pd.DatetimeIndex(panel[CUTOFF])
    latest = cut.max()
    val = np.flatnonzero(cut == latest)
    fit = np.flatnonzero(cut + pd.Timedelta(days=window_days) <= latest)
    if fit.size >= MIN_INNER_FIT_RATIO * val.size:
        return fit, val
    return holdout_split(len(panel), fraction, seed, groups=panel[ID].to_numpy())


# ------------------------------------------------------------------------------ models


def _estimator(cls: type, section: str, params: dict[str, Any]) -> Any:
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"training.{section}: {exc}") from exc


def make_estimator(task: Task, training: TrainingConfig, overrides: dict[str, Any],
                   horizon_days: int = ChurnConfig().horizon_days) -> Any:
    """Unfitted churn classifier or LTV model: ``seed`` and ``n_jobs``, then the configured
    params, then the candidate ``overrides``. A BTYD candidate (``{model: btyd, kind}`` for
    churn, ``{kind: btyd, btyd_model}`` for LTV; validated by the config) is a
    :class:`~churnml.models.btyd.BTYDChurnModel` / :class:`~churnml.models.btyd.BTYDValueModel`
    over ``horizon_days`` and ignores the LightGBM params."""
    if task == "churn" and overrides.get("model") == BTYD:
        return BTYDChurnModel(kind=overrides.get("kind", BTYD_KINDS[0]),
                              horizon_days=horizon_days)
    if task == "ltv" and overrides.get("kind") == BTYD:
        return BTYDValueModel(kind=overrides.get("btyd_model", BTYD_KINDS[0]),
                              horizon_days=horizon_days)
    overrides = {k: v for k, v in overrides.items() if not (task == "churn" and k == "model")}
    cls, section, params = (
        (ChurnClassifier, "churn_params", training.churn_params)
        if task == "churn" else (LTVModel, "ltv_params", training.ltv_params)
    )
    fixed = {"seed": training.seed, "n_jobs": training.n_jobs}
    return _estimator(cls, section, {**fixed, **params, **overrides})


def _fit(task: Task, estimator: Any, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray,
         retained: np.ndarray | None) -> Any:
    """Fit one estimator; the LTV model also learns its value-if-retained part on the
    ``retained`` (not churned) rows (None: the LTV model's default, rows with a value)."""
    if isinstance(estimator, BTYDChurnModel | BTYDValueModel):
        return estimator.fit(X)  # fitted to the purchase histories; labels unused
    if task == "ltv":
        return estimator.fit(X, y, groups=groups, retained=retained)
    return estimator.fit(X, y, groups=groups)


def _score(task: Task, estimator: Any, X: pd.DataFrame) -> np.ndarray:
    return estimator.predict_proba(X)[:, 1] if task == "churn" else estimator.predict(X)


def _metrics(task: Task, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return classification_metrics(y, score) if task == "churn" else regression_metrics(y, score)


def select_candidate(
    task: Task,
    training: TrainingConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    retained: np.ndarray | None = None,
    horizon_days: int = ChurnConfig().horizon_days,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Best of the configured candidates on the inner validation part of ``split``
    (``retained``: rows that did not churn, for the LTV model's value-if-retained part;
    ``horizon_days``: of BTYD candidates).

    Returns the winning overrides and a table ``task, candidate, params, metric, value,
    selected, seconds`` (wall time of the candidate's inner fit and scoring). With fewer
    than two candidates nothing is fitted.
    """
    candidates = training.churn_candidates if task == "churn" else training.ltv_candidates
    if len(candidates) < 2:
        return (dict(candidates[0]) if candidates else {}), pd.DataFrame()
    metric = (training.churn_selection_metric if task == "churn"
              else training.ltv_selection_metric)
    fit, val = split
    values, seconds = [], []
    for overrides in candidates:
        start = time.perf_counter()
        est = make_estimator(task, training, overrides, horizon_days)
        _fit(task, est, X.iloc[fit], y[fit], groups[fit],
             None if retained is None else np.asarray(retained)[fit])
        values.append(_metrics(task, y[val], _score(task, est, X.iloc[val]))[metric])
        seconds.append(time.perf_counter() - start)
    signed = np.asarray(values) * (1.0 if higher_is_better(metric) else -1.0)
    best = int(np.nanargmax(signed))
    table = pd.DataFrame({
        "task": task, "candidate": range(len(candidates)),
        "params": [str(c) for c in candidates], "metric": metric, "value": values,
        "selected": np.arange(len(candidates)) == best, "seconds": seconds,
    })
    return dict(candidates[best]), table


@dataclass
class FittedModels:
    """The five models of one fit, the features they read and the nested choices."""

    features: list[str]
    churn: ChurnClassifier | BTYDChurnModel
    logistic: LogisticChurnBaseline
    recency: RecencyBaseline
    ltv: LTVModel | BTYDValueModel
    last_value: LastValueBaseline
    selected: dict[str, dict[str, Any]] = field(default_factory=dict)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)


def fit_models(
    panel: pd.DataFrame,
    training: TrainingConfig,
    churn: ChurnConfig,
    features: Sequence[str] | None = None,
) -> FittedModels:
    """Select candidates by nested validation, then fit every model on all of ``panel``.

    LightGBM models get ``groups=customer_id``, so their internal early-stopping and
    calibration hold-out never splits a customer's cutoffs.
    """
    features = list(features or feature_columns(panel))
    X = panel[features]
    groups = panel[ID].to_numpy()
    y = {"churn": panel[CHURNED].to_numpy(), "ltv": panel[LTV].to_numpy()}
    retained = y["churn"] == 0
    has_choice = len(training.churn_candidates) > 1 or len(training.ltv_candidates) > 1
    split = (
        inner_split(panel, label_window_days(churn), training.inner_validation_fraction,
                    training.seed)
        if has_choice else (np.array([], dtype=int), np.array([], dtype=int))
    )
    selected, tables, fitted = {}, [], {}
    for task in ("churn", "ltv"):
        selected[task], table = select_candidate(task, training, X, y[task], groups, split,
                                                 retained, churn.horizon_days)
        tables.append(table)
        est = make_estimator(task, training, selected[task], churn.horizon_days)
        fitted[task] = _fit(task, est, X, y[task], groups, retained)
    logistic = _estimator(LogisticChurnBaseline, "logistic_params", training.logistic_params)
    return FittedModels(
        features=features,
        churn=fitted["churn"],
        logistic=logistic.fit(X, y["churn"]),
        recency=RecencyBaseline().fit(X, y["churn"]),
        ltv=fitted["ltv"],
        last_value=LastValueBaseline(column=last_value_column(churn.horizon_days)).fit(X),
        selected=selected,
        selection=pd.concat([t for t in tables if not t.empty] or [pd.DataFrame()],
                            ignore_index=True),
    )


def predict_frame(models: FittedModels, panel: pd.DataFrame, fold: int = -1) -> pd.DataFrame:
    """Predictions of every model for the ``panel`` rows, in the
    ``backtest_predictions.parquet`` layout (:data:`PREDICTION_COLUMNS`)."""
    X = panel[models.features]
    out = pd.DataFrame({
        ID: panel[ID].to_numpy(),
        CUTOFF: panel[CUTOFF].to_numpy(),
        "fold": fold,
        CHURNED: panel[CHURNED].to_numpy(),
        "churn_probability": models.churn.predict_proba(X)[:, 1],
        "baseline_probability": models.recency.predict_proba(X)[:, 1],
        "ltv_actual": panel[LTV].to_numpy(),
        "ltv_predicted": models.ltv.predict(X),
        VIR_COLUMN: models.ltv.predict_if_retained(X),
        "baseline_ltv": models.last_value.predict(X),
        "logistic_probability": models.logistic.predict_proba(X)[:, 1],
    })
    return out[PREDICTION_COLUMNS]


# ------------------------------------------------------------------------------ evaluation


def var_score(pred: pd.DataFrame, name: str) -> np.ndarray:
    """The ranking ``name`` of :data:`VAR_SCORES`: the product of its columns."""
    return np.prod([pred[c].to_numpy(float) for c in VAR_SCORES[name]], axis=0)


def evaluate(pred: pd.DataFrame) -> pd.DataFrame:
    """Metric rows of one set of predictions: ``model, task, metric_set`` and the metrics of
    :func:`classification_metrics` (churn models), :func:`regression_metrics` (LTV models;
    and, metric set ``if_retained``, the :data:`VIR_SCORES` predictors on the rows that did
    not churn) and :func:`value_at_risk_coverage` (each :data:`VAR_SCORES` ranking against
    the revenue lost by churners, :func:`~churnml.training.evaluation.revenue_lost`)."""
    y, actual, prior = pred[CHURNED], pred["ltv_actual"], pred["baseline_ltv"]
    stayed = (y == 0).to_numpy()
    rows = [
        {"model": m, "task": "churn", "metric_set": CLASSIFICATION,
         **classification_metrics(y, pred[col])}
        for m, col in CHURN_SCORES.items()
    ]
    rows += [
        {"model": m, "task": "ltv", "metric_set": REGRESSION,
         **regression_metrics(actual, pred[col])}
        for m, col in LTV_SCORES.items()
    ]
    if stayed.sum() > 1:
        rows += [
            {"model": m, "task": "ltv", "metric_set": IF_RETAINED,
             **regression_metrics(actual[stayed], pred.loc[stayed, col])}
            for m, col in VIR_SCORES.items()
        ]
    rows += [
        {"model": m, "task": "churn", "metric_set": VALUE_AT_RISK,
         **value_at_risk_coverage(y, prior, var_score(pred, m))}
        for m in VAR_SCORES
    ]
    return pd.DataFrame(rows)


def curve_tables(pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-model tables of one set of predictions: ``lift`` (:func:`lift_table` of churn),
    ``calibration`` (:func:`calibration_table`) and ``ltv_deciles`` (actual and predicted
    value summed per predicted-value decile, bin 1 = highest)."""
    y = pred[CHURNED]
    lift = [lift_table(y, pred[c]).assign(model=m) for m, c in CHURN_SCORES.items()]
    calib = [calibration_table(y, pred[c]).assign(model=m) for m, c in CHURN_SCORES.items()]
    deciles = []
    for m, c in LTV_SCORES.items():
        table = lift_table(pred["ltv_actual"], pred[c])[["bin", "n", "value"]]
        predicted = lift_table(pred[c], pred[c])["value"].to_numpy()
        deciles.append(table.rename(columns={"value": "actual"}).assign(predicted=predicted,
                                                                        model=m))
    return {name: pd.concat(parts, ignore_index=True)
            for name, parts in (("lift", lift), ("calibration", calib), ("ltv_deciles", deciles))}


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of every metric: one row per ``model,
    metric_set, metric`` with ``mean, std, folds``."""
    meta = {"model", "task", "metric_set", "fold", CUTOFF, "train_first_cutoff",
            "train_last_cutoff", "n_train"}
    values = [c for c in metrics.columns if c not in meta]
    long = metrics.melt(id_vars=["model", "task", "metric_set", "fold"], value_vars=values,
                        var_name="metric").dropna(subset=["value"])
    return (
        long.groupby(["task", "model", "metric_set", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", folds="count")
        .reset_index()
    )


@dataclass
class BacktestResult:
    """Everything a backtest produced (all tables carry ``fold``)."""

    folds: list[Fold]
    fold_table: pd.DataFrame
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    lift: pd.DataFrame
    calibration: pd.DataFrame
    ltv_deciles: pd.DataFrame
    selection: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        """:func:`summarize` of :attr:`metrics`."""
        return summarize(self.metrics)


def backtest(
    panel: pd.DataFrame,
    training: TrainingConfig,
    churn: ChurnConfig,
    features: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Run the backtest design of ``training.backtest`` on ``panel``.

    Returns out-of-fold predictions (:data:`PREDICTION_COLUMNS`), per-fold metrics (one row
    per model x fold x metric set, with the fold's test ``cutoff`` (the latest, for k-fold),
    ``train_first_cutoff``, ``train_last_cutoff`` and ``n_train``), lift, calibration and
    LTV-decile tables and the nested selections. BLAS and OpenMP pools are limited to
    ``training.n_jobs`` threads while it runs.
    """
    with threadpool_limits(training.n_jobs):
        return _backtest(panel, training, churn, features, progress)


def _backtest(
    panel: pd.DataFrame,
    training: TrainingConfig,
    churn: ChurnConfig,
    features: Sequence[str] | None,
    progress: Progress | None,
) -> BacktestResult:
    check_panel(panel, churn.horizon_days)
    panel = panel.reset_index(drop=True)
    features = list(features or feature_columns(panel))
    folds = make_folds(panel, training, churn)
    preds, metrics, selections = [], [], []
    curves: dict[str, list[pd.DataFrame]] = {}
    for f in folds:
        train, test = panel.iloc[f.train], panel.iloc[f.test]
        if progress:
            progress(f"fold {f.fold + 1}/{len(folds)}: {len(train):,} training rows, "
                     f"{len(test):,} test rows")
        models = fit_models(train, training, churn, features)
        pred = predict_frame(models, test, f.fold)
        preds.append(pred)
        metrics.append(evaluate(pred).assign(
            fold=f.fold, cutoff=test[CUTOFF].max(), train_first_cutoff=train[CUTOFF].min(),
            train_last_cutoff=train[CUTOFF].max(), n_train=len(train),
        ))
        for name, table in curve_tables(pred).items():
            curves.setdefault(name, []).append(table.assign(fold=f.fold))
        selections.append(models.selection.assign(fold=f.fold))
    metrics_df = pd.concat(metrics, ignore_index=True)
    front = ["model", "task", "metric_set", "fold", CUTOFF, "train_first_cutoff",
             "train_last_cutoff", "n_train"]
    return BacktestResult(
        folds=folds,
        fold_table=fold_table(panel, folds),
        predictions=pd.concat(preds, ignore_index=True),
        metrics=metrics_df[front + [c for c in metrics_df.columns if c not in front]],
        lift=pd.concat(curves["lift"], ignore_index=True),
        calibration=pd.concat(curves["calibration"], ignore_index=True),
        ltv_deciles=pd.concat(curves["ltv_deciles"], ignore_index=True),
        selection=pd.concat(selections, ignore_index=True),
    )
