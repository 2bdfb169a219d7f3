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
   <metric>``, step = fold), tables, figures, the config, the data fingerprint, the lineage
   (:mod:`churnml.training.lineage`) and both models, registered with alias ``challenger``;
   :func:`promote` moves ``champion`` to the new pair only if each model beats the
   champion's backtest mean of the configured metric and holds up against its naive baseline
   (fold by fold under ``tracking.promotion_rule: paired``; :mod:`churnml.training.champion`),
   both models or neither.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
from churnml.labels import build_panel, label_window_days, labelled_cutoffs
from churnml.models.btyd import BTYDChurnModel, BTYDValueModel
from churnml.paths import portable
from churnml.training.backtest import (
    CLASSIFICATION,
    CUTOFF,
    IF_RETAINED,
    REGRESSION,
    VALUE_AT_RISK,
    BacktestResult,
    FittedModels,
    backtest,
    fit_models,
)

FILES = {
    "backtest_metrics": "backtest_metrics.csv",
    "backtest_predictions": "backtest_predictions.parquet",
    "feature_importance": "feature_importance.csv",
}
CHURN_SUMMARY = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift")
LTV_SUMMARY = ("normalized_gini", "top_10_capture", "top_20_capture", "spearman",
               "total_ratio")
VAR_SUMMARY = ("var_normalized_gini", "var_coverage_top_10", "var_coverage_top_20")
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
    message: str = ""  # the champion rule's verdict, with the numbers


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
    survival: Any = None  # SurvivalTraining when survival.enabled (.survival_stage)
    survival_logged: Any = None  # its registered version (LoggedEstimator)
    # parts of the logging step (log_run); "background": prepare_tracking during the fit
    logging_seconds: dict[str, float] = field(default_factory=dict)
    logging_cpu_seconds: float | None = None  # the logging step's CPU time (cpu_seconds)

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
    first = _timestamp(t.first_cutoff, "first_cutoff")
    cuts = labelled_cutoffs(data, cfg.churn, freq=t.cutoff_frequency, start=first)
    window = label_window_days(cfg.churn)
    span = f"the data run from {data.start} to {data.end}"
    if len(cuts) == 0 and first is not None and first >= pd.Timestamp(data.end):
        raise ConfigError(
            f"training.first_cutoff {first} is after all the data ({span}): no cutoff to "
            f"train on; set it at least {window} days (the label window) before "
            f"{pd.Timestamp(data.end).date()}, or remove it to start at the first data")
    if len(cuts) == 0 and first is not None:
        raise ConfigError(
            f"training.first_cutoff {first} leaves less than the {window}-day label window "
            f"before the end of the data ({span}): no cutoff can be labelled; set it on or "
            f"before {(pd.Timestamp(data.end) - pd.Timedelta(days=window)).date()}")
    if len(cuts) > 0 and t.last_cutoff is not None:
        last = _timestamp(t.last_cutoff, "last_cutoff")
        if not (cuts <= last).any():
            raise ConfigError(f"training.last_cutoff {last} is before the first labelled "
                              f"cutoff ({cuts[0]}): no cutoff to train on")
        cuts = cuts[cuts <= last]
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


def _equal_share(names: Any) -> pd.Series:
    names = list(names)
    return pd.Series(1.0 / len(names), index=names)


def feature_importance(models: FittedModels) -> pd.DataFrame:
    """``feature, importance, model``: each feature's share of the total split gain of the
    churn booster, and of the LTV boosters (hurdle: mean of the purchase and spend boosters'
    shares); each model's importances sum to 1. A BTYD model (no split gain) shares its
    importance equally among the purchase-history columns it reads."""
    ltv = models.ltv
    if isinstance(ltv, BTYDValueModel):
        ltv_share = _equal_share(ltv.feature_names_in_)
    else:
        parts = ([ltv.value_model_] if ltv.kind == "tweedie"
                 else [ltv.purchase_model_, ltv.spend_model_])
        ltv_share = pd.concat([_gain_share(p.booster_, ltv.feature_names_in_) for p in parts],
                              axis=1).mean(axis=1)
    churn = models.churn
    shares = {
        "churn": (_equal_share(churn.feature_names_in_) if isinstance(churn, BTYDChurnModel)
                  else _gain_share(churn.booster_, churn.feature_names_in_)),
        "ltv": ltv_share,
    }
    return pd.concat(
        [s.sort_values(ascending=False, kind="stable").rename_axis("feature")
         .rename("importance").reset_index().assign(model=m) for m, s in shares.items()],
        ignore_index=True,
    )


def summary_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Backtest means as wide tables, models in backtest order: ``churn`` (models x
    :data:`CHURN_SUMMARY`), ``ltv`` (models x :data:`LTV_SUMMARY`, regression metrics),
    ``if_retained`` (predictors of the revenue of customers who did not churn x
    :data:`LTV_SUMMARY`) and ``value_at_risk`` (rankings of the revenue lost x
    :data:`VAR_SUMMARY`)."""
    out = {}
    sets = summary["metric_set"]
    for task, metrics, keep in (
        ("churn", CHURN_SUMMARY, sets == CLASSIFICATION),
        ("ltv", LTV_SUMMARY, sets == REGRESSION),
        (IF_RETAINED, LTV_SUMMARY, sets == IF_RETAINED),
        (VALUE_AT_RISK, VAR_SUMMARY, sets == VALUE_AT_RISK),
    ):
        rows = summary[keep & summary["metric"].isin(metrics)]
        if rows.empty:
            continue
        wide = rows.pivot(index="model", columns="metric", values="mean")
        order = list(dict.fromkeys(rows["model"]))
        out[task] = wide.loc[order, [m for m in metrics if m in wide]].reset_index()
    return out


def candidate_costs(selection: pd.DataFrame) -> pd.DataFrame:
    """What each candidate of the nested selection cost and won: ``task, params, chosen,
    selections, seconds`` (the inner fits of every backtest fold and of the final models;
    e.g. a BTYD candidate that is never chosen and costs minutes). Empty without a choice."""
    if selection.empty or "seconds" not in selection:
        return pd.DataFrame(columns=["task", "params", "chosen", "selections", "seconds"])
    return (selection.groupby(["task", "params"], sort=False)
            .agg(chosen=("selected", "sum"), selections=("selected", "size"),
                 seconds=("seconds", "sum"))
            .reset_index())


def write_outputs(result: TrainResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the backtest metrics, predictions and feature importance (atomically)."""
    out = Path(out_dir)
    tables = {
        "backtest_metrics": result.backtest.metrics,
        "backtest_predictions": result.backtest.predictions,
        "feature_importance": result.importance,
    }
    return {key: write_table(tables[key], out / name) for key, name in FILES.items()}


def log_run(
    result: TrainResult, cfg: Config, data: CustomerData | Any, train_rows: pd.DataFrame,
    rendered: list[Path] | None = None,
) -> dict[str, Any]:
    """Log the run to MLflow (module docstring) and register both models with alias
    ``challenger``; ``train_rows`` are the final models' training rows (their count is
    logged as ``window.rows``), ``rendered`` the backtest figures already rendered
    (:func:`~churnml.training.figures.render`; None: rendered here). Returns
    ``{task: LoggedEstimator}`` and sets ``result.run_id``."""
    parts = result.logging_seconds
    with _timed(parts, "import"):
        from churnml.training import figures
        from churnml.training import tracking as tr
        from churnml.training.lineage import lineage_tags

    t, bt, models = cfg.tracking, result.backtest, result.models
    summary = bt.summary
    tags = {"churnml.config": cfg.name, "churnml.dataset": data.name,
            "churnml.backtest": cfg.training.backtest, **lineage_tags(cfg)}
    with _timed(parts, "store"):
        tr.ensure_store(t.uri)
    with tr.start_run(t.experiment or cfg.name, run_name=cfg.name, tracking_uri=t.uri,
                      tags=tags) as run:
        # models first: MLflow copies every metric already in the run to each logged model,
        # one query per metric (seconds with the per-fold metrics)
        with _timed(parts, "models"):
            logged = {
                task: tr.log_model(est, output=output, registered_model_name=name,
                                   alias=tr.CHALLENGER)
                for task, est, output, name in (
                    ("churn", models.churn, tr.CHURN_OUTPUT, t.churn_model_name),
                    ("ltv", models.ltv, tr.LTV_OUTPUT, t.ltv_model_name),
                )
            }
        # params, metrics, tags, tables and figures collected, then logged in one batch and
        # one artifact upload (a store transaction per call was most of this step)
        with tr.batched() as batch:
            with _timed(parts, "params and metrics"):
                tr.config_record(cfg, batch)
                tr.fingerprint_record(data.fingerprint(), batch)
                cuts = result.train_cutoffs
                tr.log_training_window(batch, start=cuts[0], end=cuts[-1], cutoffs=len(cuts),
                                       horizon_days=cfg.churn.horizon_days,
                                       label_window_days=label_window_days(cfg.churn),
                                       rows=len(train_rows))
                for task, est in (("churn", models.churn), ("ltv", models.ltv),
                                  ("logistic", models.logistic)):
                    batch.params(est.get_params(), prefix=f"final.{task}.")
                batch.metrics({f"{r.model}.{r.metric}": r.mean for r in summary.itertuples()},
                              prefix=BACKTEST_PREFIX)
                metric_names = list(dict.fromkeys(summary["metric"]))
                per_fold = bt.metrics.melt(id_vars=["model", "fold"], value_vars=metric_names,
                                           var_name="metric").dropna(subset=["value"])
                for fold, rows in per_fold.groupby("fold"):
                    batch.metrics({f"{r.model}.{r.metric}": r.value for r in rows.itertuples()},
                                  prefix=FOLD_PREFIX, step=int(fold))
            with _timed(parts, "tables"):
                tables = {"backtest_metrics": bt.metrics, "backtest_summary": summary,
                          "folds": bt.fold_table, "lift": bt.lift,
                          "calibration": bt.calibration, "ltv_deciles": bt.ltv_deciles,
                          "selection": bt.selection, "feature_importance": result.importance}
                for name, table in tables.items():
                    batch.table(table, name)
            with _timed(parts, "figures"):
                if rendered is None:
                    for name, make in figures.FIGURES.items():
                        batch.figure(make(bt.predictions), name)
                else:
                    batch.files(rendered, "figures")
                batch.figure(figures.importance_figure(result.importance), "feature_importance")
            start = time.perf_counter()
        parts["log batch and artifacts"] = time.perf_counter() - start
        if result.survival is not None:
            from churnml.training.survival_stage import log_survival

            result.survival_logged = log_survival(result.survival, cfg)
        result.run_id = run.info.run_id
    return logged


def promote(cfg: Config, logged: dict[str, Any], summary: pd.DataFrame,
            run_id: str | None = None, folds: pd.DataFrame | None = None,
            ) -> dict[str, Registration]:
    """Promote the newly registered churn/LTV pair to ``champion`` if both models beat the
    champions and their naive baselines on the configured backtest metrics by more than
    ``tracking.min_improvement`` (:mod:`churnml.training.champion`); otherwise both stay
    ``challenger``. ``summary`` is the run's backtest summary (``task, model, metric,
    mean``) and ``folds`` its per-fold metrics (for ``tracking.promotion_rule: paired``);
    the verdicts are printed by ``churnml train`` and logged as tags."""
    from churnml.training import champion
    from churnml.training import tracking as tr

    t = cfg.tracking
    metrics = {"churn": t.churn_champion_metric, "ltv": t.ltv_champion_metric}
    candidates = {task: (entry.name, str(entry.version)) for task, entry in logged.items()}
    run_id = run_id or next(iter(logged.values())).run_id
    from churnml.training.lineage import lineage

    decision = champion.promote_pair(summary, metrics, candidates, t.uri, run_id=run_id,
                                     min_delta=t.min_improvement, rule=t.promotion_rule,
                                     folds=folds, tolerance_sd=t.promotion_tolerance_sd,
                                     lineage=lineage(cfg), across_configs=t.promote_across_configs)
    out = {}
    with tr.tracking(t.uri) as client:
        for task, (name, version) in candidates.items():
            mv = client.get_model_version(name, version)
            current = client.get_registered_model(name).aliases.get(tr.CHAMPION)
            out[task] = Registration(
                name, version, sorted(mv.aliases),
                None if current is None else str(current), decision.promote,
                f"{BACKTEST_PREFIX}{task}.{metrics[task]}", decision.verdicts[task].text
                + (f"; not promoted: {decision.blocked}" if decision.blocked else ""))
    return out


def promote_survival_model(cfg: Config, result: TrainResult) -> Registration:
    """Promote the survival version logged by :func:`log_run` when it qualifies
    (:func:`~churnml.training.survival_stage.promote_survival`)."""
    from churnml.training import tracking as tr
    from churnml.training.survival_stage import TASK, promote_survival

    logged = result.survival_logged
    pair = all(r.promoted for r in result.registrations.values())
    promoted, verdict = promote_survival(cfg, logged, result.survival, pair, result.run_id)
    with tr.tracking(cfg.tracking.uri) as client:
        mv = client.get_model_version(logged.name, logged.version)
        current = client.get_registered_model(logged.name).aliases.get(tr.CHAMPION)
    return Registration(logged.name, str(logged.version), sorted(mv.aliases),
                        None if current is None else str(current), promoted,
                        f"{BACKTEST_PREFIX}{TASK}.{cfg.survival.champion_metric}", verdict)


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished child processes."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


@contextmanager
def _timed(seconds: dict[str, float], label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[label] = time.perf_counter() - start


@contextmanager
def _stage(console: Console, label: str, seconds: dict[str, float]) -> Iterator[Any]:
    start = time.perf_counter()
    with console.status(f"{label} …", spinner="dots") as status:
        yield status
    seconds[label] = time.perf_counter() - start
    console.print(f"[green]✓[/green] {label} ({seconds[label]:.1f} s)")


BACKGROUND = "background"  # key of TrainResult.logging_seconds: prepare_tracking's time


def _render(pred: pd.DataFrame, folder: Path) -> list[Path]:
    from churnml.training import figures

    return figures.render(pred, folder)


def prepare_tracking(uri: str) -> float:
    """Import MLflow and matplotlib and create (or migrate) the store: the slow, fixed part
    of the logging step (tens of seconds on a fresh clone of a busy machine), which
    :func:`train` runs in a background thread while the models are fitted. Returns its
    seconds."""
    start = time.perf_counter()
    from churnml.training import figures, tracking  # noqa: F401 - the imports are the work

    tracking.ensure_store(uri)
    return time.perf_counter() - start


def train(cfg: Config, data: CustomerData | Any, console: Console | None = None
          ) -> TrainResult:
    """Build the panel (on Spark for :class:`~churnml.data.spark_loader.SparkData`),
    backtest, fit the final models, write the output files, log the
    run to MLflow, register both models and promote them if they beat the champions.
    MLflow is imported and the store created (:func:`prepare_tracking`) in a background
    thread during the fit, and the backtest figures rendered during the final fit; an error
    there surfaces in the logging step."""
    console = console or Console(stderr=True)
    if cfg.survival.enabled and isinstance(data, CustomerData):
        from churnml.data.survival_grid import check_survival_grid

        check_survival_grid(cfg.survival, data)  # before the store or any output exists
    seconds: dict[str, float] = {}
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="churnml-mlflow")
    try:
        with tempfile.TemporaryDirectory(prefix="churnml-figures-") as folder:
            prepared = pool.submit(prepare_tracking, cfg.tracking.uri)
            return _train(cfg, data, console, seconds, pool, prepared, Path(folder))
    finally:  # a failed fit reports at once; the threads finish on their own
        pool.shutdown(wait=False)


def _train(cfg: Config, data: CustomerData | Any, console: Console,
           seconds: dict[str, float], pool: ThreadPoolExecutor, prepared: Future,
           folder: Path) -> TrainResult:
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
        # the backtest figures are rendered in the background while the final models fit
        rendered = pool.submit(_render, bt.predictions, folder)
        with _stage(console, f"final models ({len(final):,} rows)", seconds):
            models = fit_models(final, cfg.training, cfg.churn)
        survival = None
        if cfg.survival.enabled:
            from churnml.training.survival_stage import train_survival

            with _stage(console, "survival model (backtest, final fit)", seconds) as status:
                survival = train_survival(
                    data, cfg, pd.DatetimeIndex(panel[CUTOFF].unique()).sort_values(),
                    progress=lambda msg: status.update(f"{msg} …"))
    result = TrainResult(
        backtest=bt, models=models, importance=feature_importance(models),
        train_cutoffs=list(pd.DatetimeIndex(final[CUTOFF].unique()).sort_values()),
        tracking_uri=cfg.tracking.uri, seconds=seconds, survival=survival,
    )
    with _stage(console, f"writing outputs to {portable(cfg.output_dir)}", seconds):
        result.files = write_outputs(result, cfg.output_dir)
        if result.survival is not None:
            from churnml.training.survival_stage import write_survival_outputs

            result.files.update(write_survival_outputs(result.survival, cfg.output_dir))
    with _stage(console, f"MLflow run and registry ({portable(cfg.tracking.uri)})", seconds):
        # MLflow imported and the store ready (or its error raised)
        cpu = cpu_seconds()
        result.logging_seconds[BACKGROUND] = prepared.result()
        logged = log_run(result, cfg, data, final[models.features], rendered.result())
        result.registrations = promote(cfg, logged, bt.summary, result.run_id, bt.metrics)
        if result.survival_logged is not None:
            result.registrations["survival"] = promote_survival_model(cfg, result)
        result.logging_cpu_seconds = cpu_seconds() - cpu
    return result
