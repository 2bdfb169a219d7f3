"""`train`: panel -> backtest -> final models -> output files -> MLflow run and registry.

Stages (each a plain function, usable alone):

1. :func:`build_training_panel`: features and labels at the configured cutoffs
   (:func:`training_cutoffs`): every labelled cutoff at ``training.cutoff_frequency`` for a
   rolling-origin backtest, or one cutoff for grouped k-fold.
2. :func:`~churnml.training.backtest.backtest` on the panel.
3. :func:`~churnml.training.backtest.fit_models` on all labelled cutoffs (the latest
   ``training.max_train_cutoffs`` of them, if set), with the same nested selection.
4. ``backtest_metrics.csv``, ``backtest_predictions.parquet`` and ``feature_importance.csv``
   under ``cfg.output_dir``.
5. :func:`log_run`: one MLflow run in the experiment named by the config, holding params,
   backtest means (``backtest.<model>.<metric>``) and per-fold values (``fold.<model>.
   <metric>``, step = fold), tables, figures, the config, the data fingerprint and both
   models, registered with alias ``challenger``; :func:`promote` moves ``champion`` to a
   new version only if its backtest mean of the configured metric strictly beats the
   champion's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.tseries.frequencies import to_offset
from rich.console import Console
from threadpoolctl import threadpool_limits

from churnml.config import Config
from churnml.data.customer_data import CustomerData
from churnml.errors import ConfigError
from churnml.features import FeatureSpec, spec_from_config
from churnml.io import write_table
from churnml.labels import build_panel, labelled_cutoffs
from churnml.training.backtest import (
    CUTOFF,
    BacktestResult,
    FittedModels,
    backtest,
    fit_models,
    higher_is_better,
)

FILES = {
    "backtest_metrics": "backtest_metrics.csv",
    "backtest_predictions": "backtest_predictions.parquet",
    "feature_importance": "feature_importance.csv",
}
CHURN_SUMMARY = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift")
LTV_SUMMARY = ("normalized_gini", "top_10_capture", "top_20_capture", "spearman",
               "total_ratio")
BACKTEST_PREFIX, FOLD_PREFIX = "backtest.", "fold."
# DuckDB threads for the training panel: parallel float sums (e.g. net_revenue_total) differ
# in the last bits from run to run, which can flip LightGBM splits; one thread is exact.
PANEL_THREADS = 1


@dataclass
class Registration:
    """The registry state of a model after a run."""

    name: str
    version: str
    aliases: list[str]
    champion_version: str | None
    promoted: bool
    metric: str


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    backtest: BacktestResult
    models: FittedModels
    train_cutoffs: list[pd.Timestamp]
    importance: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    tracking_uri: str | None = None
    registrations: dict[str, Registration] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """Backtest means and standard deviations per model and metric."""
        return self.backtest.summary


def feature_spec(cfg: Config) -> FeatureSpec:
    """The config's feature spec (``features.spec``; a relative path is read from the
    current directory) with the label horizon added to the frequency and monetary windows
    (the last-value baseline reads ``spend_<horizon>d``)."""
    spec = spec_from_config(cfg.features, cfg.voice)
    windows = sorted({*spec.windows_days, cfg.churn.horizon_days})
    return spec.model_copy(update={"windows_days": windows})


def _timestamp(value: str | None, key: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except ValueError as exc:
        raise ConfigError(f"training.{key}: not a timestamp: {value!r}") from exc


def training_cutoffs(data: CustomerData | Any, cfg: Config) -> pd.DatetimeIndex:
    """Cutoffs of the panel: the labelled cutoffs at ``training.cutoff_frequency`` (from
    ``training.first_cutoff``) for a rolling origin; ``training.kfold_cutoff`` (default: the
    latest labelled cutoff) alone for grouped k-fold."""
    t = cfg.training
    if t.backtest == "grouped_kfold" and t.kfold_cutoff is not None:
        return pd.DatetimeIndex([_timestamp(t.kfold_cutoff, "kfold_cutoff")]).astype(
            "datetime64[us]")
    try:
        to_offset(t.cutoff_frequency)
    except ValueError as exc:
        raise ConfigError(f"training.cutoff_frequency {t.cutoff_frequency!r}: {exc}") from exc
    cuts = labelled_cutoffs(data, cfg.churn, freq=t.cutoff_frequency,
                            start=_timestamp(t.first_cutoff, "first_cutoff"))
    if len(cuts) == 0:
        raise ConfigError(
            f"no labelled cutoff: the data ({data.start} .. {data.end}) are shorter than "
            f"the {cfg.churn.horizon_days}-day horizon after the first cutoff"
        )
    return cuts[-1:] if t.backtest == "grouped_kfold" else cuts


def build_training_panel(data: CustomerData | Any, cfg: Config) -> pd.DataFrame:
    """Features (:func:`feature_spec`) and labels of the customers at risk at each of
    :func:`training_cutoffs`, built by DuckDB on one thread (:data:`PANEL_THREADS`,
    whatever ``features.threads`` says) within ``features.memory_limit``; or, for Spark
    tables (:class:`~churnml.data.spark_loader.SparkData`), built on Spark and collected
    (sampled above ``training.spark_max_panel_rows``, see :mod:`.spark_panel`)."""
    if not isinstance(data, CustomerData):
        from churnml.training.spark_panel import spark_training_panel

        t = cfg.training
        return spark_training_panel(data.tables(), training_cutoffs(data, cfg),
                                    feature_spec(cfg), cfg.churn, t.spark_max_panel_rows, t.seed)
    return build_panel(data, training_cutoffs(data, cfg), feature_spec(cfg), cfg.churn,
                       threads=PANEL_THREADS, memory_limit=cfg.features.memory_limit)


def final_panel(panel: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Rows the final models train on: every cutoff, or the latest
    ``training.max_train_cutoffs`` of them."""
    keep = cfg.training.max_train_cutoffs
    if keep is None:
        return panel
    cuts = panel[CUTOFF].drop_duplicates().sort_values()
    return panel[panel[CUTOFF].isin(cuts.iloc[-keep:])]


def _gain_share(booster: Any, names: Any) -> pd.Series:
    gain = booster.feature_importance(importance_type="gain")
    total = gain.sum()
    return pd.Series(gain / total if total > 0 else gain, index=list(names))


def feature_importance(models: FittedModels) -> pd.DataFrame:
    """``feature, importance, model``: each feature's share of the total split gain of the
    churn booster, and of the LTV boosters (hurdle: mean of the purchase and spend boosters'
    shares); each model's importances sum to 1."""
    ltv = models.ltv
    parts = ([ltv.value_model_] if ltv.kind == "tweedie"
             else [ltv.purchase_model_, ltv.spend_model_])
    shares = {
        "churn": _gain_share(models.churn.booster_, models.churn.feature_names_in_),
        "ltv": pd.concat([_gain_share(p.booster_, ltv.feature_names_in_) for p in parts],
                         axis=1).mean(axis=1),
    }
    return pd.concat(
        [s.sort_values(ascending=False, kind="stable").rename_axis("feature")
         .rename("importance").reset_index().assign(model=m) for m, s in shares.items()],
        ignore_index=True,
    )


def summary_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Backtest means as two wide tables, ``churn`` (models x :data:`CHURN_SUMMARY`) and
    ``ltv`` (models x :data:`LTV_SUMMARY`), models in backtest order."""
    out = {}
    for task, metrics in (("churn", CHURN_SUMMARY), ("ltv", LTV_SUMMARY)):
        rows = summary[(summary["task"] == task) & summary["metric"].isin(metrics)]
        wide = rows.pivot(index="model", columns="metric", values="mean")
        order = list(dict.fromkeys(rows["model"]))
        out[task] = wide.loc[order, [m for m in metrics if m in wide]].reset_index()
    return out


def write_outputs(result: TrainResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the backtest metrics, predictions and feature importance (atomically)."""
    out = Path(out_dir)
    tables = {
        "backtest_metrics": result.backtest.metrics,
        "backtest_predictions": result.backtest.predictions,
        "feature_importance": result.importance,
    }
    return {key: write_table(tables[key], out / name) for key, name in FILES.items()}


def _champion_key(cfg: Config, task: str) -> str:
    metric = (cfg.tracking.churn_champion_metric if task == "churn"
              else cfg.tracking.ltv_champion_metric)
    return f"{BACKTEST_PREFIX}{task}.{metric}"


def log_run(
    result: TrainResult, cfg: Config, data: CustomerData | Any, example: pd.DataFrame
) -> dict[str, Any]:
    """Log the run to MLflow (module docstring) and register both models with alias
    ``challenger``; ``example`` holds feature rows for the input example. Returns
    ``{task: LoggedEstimator}`` and sets ``result.run_id``."""
    from churnml.training import figures
    from churnml.training import tracking as tr

    t, bt, models = cfg.tracking, result.backtest, result.models
    summary = bt.summary
    tags = {"churnml.config": cfg.name, "churnml.dataset": data.name,
            "churnml.backtest": cfg.training.backtest}
    with tr.start_run(t.experiment or cfg.name, run_name=cfg.name, tracking_uri=t.uri,
                      tags=tags) as run:
        tr.log_config(cfg)
        tr.log_fingerprint(data.fingerprint())
        cuts = result.train_cutoffs
        tr.log_training_window(start=cuts[0], end=cuts[-1], cutoffs=len(cuts),
                               horizon_days=cfg.churn.horizon_days, rows=len(example))
        for task, est in (("churn", models.churn), ("ltv", models.ltv),
                          ("logistic", models.logistic)):
            tr.log_params(est.get_params(), prefix=f"final.{task}.")
        tr.log_metrics({f"{r.model}.{r.metric}": r.mean for r in summary.itertuples()},
                       prefix=BACKTEST_PREFIX)
        metric_names = list(dict.fromkeys(summary["metric"]))
        per_fold = bt.metrics.melt(id_vars=["model", "fold"], value_vars=metric_names,
                                   var_name="metric").dropna(subset=["value"])
        for fold, rows in per_fold.groupby("fold"):
            tr.log_metrics({f"{r.model}.{r.metric}": r.value for r in rows.itertuples()},
                           prefix=FOLD_PREFIX, step=int(fold))
        tables = {"backtest_metrics": bt.metrics, "backtest_summary": summary,
                  "folds": bt.fold_table, "lift": bt.lift, "calibration": bt.calibration,
                  "ltv_deciles": bt.ltv_deciles, "selection": bt.selection,
                  "feature_importance": result.importance}
        for name, table in tables.items():
            tr.log_table(table, name)
        for name, make in figures.FIGURES.items():
            tr.log_figure(make(bt.predictions), name)
        tr.log_figure(figures.importance_figure(result.importance), "feature_importance")
        logged = {
            task: tr.log_model(est, example, output=output, registered_model_name=name,
                               alias=tr.CHALLENGER)
            for task, est, output, name in (
                ("churn", models.churn, tr.CHURN_OUTPUT, t.churn_model_name),
                ("ltv", models.ltv, tr.LTV_OUTPUT, t.ltv_model_name),
            )
        }
        result.run_id = run.info.run_id
    return logged


def promote(cfg: Config, logged: dict[str, Any]) -> dict[str, Registration]:
    """Give each newly registered version ``champion`` if its run's backtest mean of the
    configured champion metric beats the current champion's by more than
    ``tracking.min_improvement`` (or there is no champion)."""
    from churnml.training import tracking as tr

    out = {}
    for task, entry in logged.items():
        key = _champion_key(cfg, task)
        metric = key.rsplit(".", 1)[-1]
        promoted = tr.promote_if_better(entry.name, entry.version, key,
                                        higher_is_better=higher_is_better(metric),
                                        tracking_uri=cfg.tracking.uri,
                                        min_delta=cfg.tracking.min_improvement)
        with tr.tracking(cfg.tracking.uri) as client:
            version = client.get_model_version(entry.name, entry.version)
            champion = client.get_registered_model(entry.name).aliases.get(tr.CHAMPION)
        out[task] = Registration(entry.name, str(entry.version), sorted(version.aliases),
                                 None if champion is None else str(champion), promoted, key)
    return out


@contextmanager
def _stage(console: Console, label: str, seconds: dict[str, float]) -> Iterator[Any]:
    start = time.perf_counter()
    with console.status(f"{label} …", spinner="dots") as status:
        yield status
    seconds[label] = time.perf_counter() - start
    console.print(f"[green]✓[/green] {label} ({seconds[label]:.1f} s)")


def train(cfg: Config, data: CustomerData | Any, console: Console | None = None
          ) -> TrainResult:
    """Build the panel (on Spark for :class:`~churnml.data.spark_loader.SparkData`),
    backtest, fit the final models, write the output files, log the
    run to MLflow, register both models and promote them if they beat the champions."""
    console = console or Console(stderr=True)
    seconds: dict[str, float] = {}
    with threadpool_limits(cfg.training.n_jobs):
        with _stage(console, "building the panel", seconds):
            panel = build_training_panel(data, cfg)
        n_cuts = panel[CUTOFF].nunique()
        console.print(f"  {len(panel):,} rows ({n_cuts} cutoff(s)) x "
                      f"{panel.shape[1] - 4} features")
        if "sampled_from" in panel.attrs:
            console.print(f"  sampled from {panel.attrs['sampled_from']:,} rows "
                          f"(training.spark_max_panel_rows)")
        with _stage(console, f"backtest ({cfg.training.backtest})", seconds) as status:
            bt = backtest(panel, cfg.training, cfg.churn,
                          progress=lambda msg: status.update(f"backtest: {msg} …"))
        final = final_panel(panel, cfg)
        with _stage(console, f"final models ({len(final):,} rows)", seconds):
            models = fit_models(final, cfg.training, cfg.churn)
    result = TrainResult(
        backtest=bt, models=models, importance=feature_importance(models),
        train_cutoffs=list(pd.DatetimeIndex(final[CUTOFF].unique()).sort_values()),
        tracking_uri=cfg.tracking.uri, seconds=seconds,
    )
    with _stage(console, f"writing outputs to {cfg.output_dir}", seconds):
        result.files = write_outputs(result, cfg.output_dir)
    with _stage(console, f"MLflow run and registry ({cfg.tracking.uri})", seconds):
        logged = log_run(result, cfg, data, final[models.features])
        result.registrations = promote(cfg, logged)
    return result
