"""The monitoring jobs behind the CLI: record a scoring run, build the reference, monitor.

* :func:`record_scores` — after ``churnml score``: the run into the score history (and, when
  the models came from an MLflow store, an MLflow run with its summary and feature profile);
* :func:`reference_for` — the champion's reference (its scores of the base as of its last
  training cutoff, and the out-of-sample outcomes of the training run's latest backtest
  origin: the calibration reference of the estimates), cached beside the history per model
  version;
* :func:`run_monitor` — :func:`~churnml.monitoring.monitor.monitor` over the history, its
  tables under ``<output_dir>/monitoring/`` and an MLflow run (metrics with the cutoff as
  step, ``YYYYMMDD``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.config import Config
from churnml.io import read_json
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.monitor import (
    PROBABILITY,
    SCORE_COLUMNS,
    MonitorResult,
    Reference,
    metrics_by_cutoff,
    monitor,
    monitor_outputs,
    reference_outcomes,
    segment_counts,
    write_monitor_outputs,
)
from churnml.outputs import locked

HISTORY_DIR = "score_history"
HISTORY_TARGET = "history"  # the history partition's name in a scoring run's OutputSet
MONITOR_DIR = "monitoring"
REFERENCE_FILE = "reference.json"
BACKTEST_PREDICTIONS = "backtest_predictions.parquet"  # written by `churnml train`
EXPERIMENT_SUFFIX = "-monitoring"


def history_root(cfg: Config) -> Path:
    """``monitoring.history_dir``, else ``<output_dir>/score_history``."""
    return Path(cfg.monitoring.history_dir or Path(cfg.output_dir) / HISTORY_DIR)


def _step(cutoff: pd.Timestamp) -> int:
    return int(f"{cutoff:%Y%m%d}")


def history_run(result: Any, cfg: Config, models: Any) -> dict[str, Any] | None:
    """The ``run.json`` record of a scoring run (None if nothing was scored)."""
    scores = result.scores
    if scores.empty:
        return None
    return score_run(cfg, models, scores["cutoff"].iloc[0], scores["scored_at"].iloc[0],
                     segment_counts(scores))


def stage_history(result: Any, cfg: Config, models: Any, outputs: Any
                  ) -> Callable[[Path], None] | None:
    """Add the scoring run's score-history partition to ``outputs`` (the run's
    :class:`~churnml.outputs.OutputSet`, so the history and the published scores are
    committed as one unit) and return the function that writes it into its staging folder
    (None when nothing was scored)."""
    run = history_run(result, cfg, models)
    if run is None:
        return None
    history = ScoreHistory(history_root(cfg))
    outputs.add_folder(HISTORY_TARGET, history.partition(run["cutoff"]))

    def write(folder: Path) -> None:  # called holding the locks of the outputs' folders
        history.clean(keep=folder)  # staging folders of killed runs
        ScoreHistory.write_run(folder, result.scores, run, result.profile)

    return write


def log_scoring_run(result: Any, cfg: Config, models: Any) -> None:
    """The scoring run as an MLflow run (when the models came from an MLflow store)."""
    run = history_run(result, cfg, models)
    if run is not None and models.tracking_uri is not None:
        scores = result.scores
        summary = {"customers": len(scores),
                   "mean_churn_probability": scores[PROBABILITY].mean(),
                   "value_at_risk_total": scores["value_at_risk"].sum()
                   if "value_at_risk" in scores else None}
        _log_scoring_run(summary, run, result.profile, cfg, models.tracking_uri)


def record_scores(result: Any, cfg: Config, models: Any, *, log_to_mlflow: bool = True
                  ) -> Path | None:
    """Append a scoring run (:class:`~churnml.scoring.ScoreResult`) to the score history,
    replacing an earlier run of the same cutoff; returns its folder (None if nothing scored).
    """
    run = history_run(result, cfg, models)
    if run is None:
        return None
    folder = ScoreHistory(history_root(cfg)).write(result.scores, run, result.profile)
    if log_to_mlflow:
        log_scoring_run(result, cfg, models)
    return folder


def score_run(cfg: Config, models: Any, cutoff: Any, scored_at: Any,
              segments: dict[str, int]) -> dict[str, Any]:
    """The ``run.json`` of a scoring run (whichever engine scored it)."""
    return {
        "cutoff": pd.Timestamp(cutoff), "horizon_days": cfg.churn.horizon_days,
        "config": cfg.name, "model_version": models.version, "churn_model": models.churn_uri,
        "ltv_model": models.ltv_uri,
        "alias": None if models.churn_uri is None else cfg.scoring.model_alias,
        "scored_at": str(scored_at), "segments": segments,
    }


def stage_spark_history(cfg: Config, models: Any, outputs: Any, cutoff: Any
                        ) -> Callable[[Path, Any, Any], None]:
    """:func:`stage_history` of a Spark scoring run: add the cutoff's score-history
    partition to ``outputs`` (the run's :class:`~churnml.outputs.OutputSet`, committed with
    the scores as one unit) and return ``write(folder, scores, result)`` for
    :func:`churnml.scoring.spark.score_spark_data`: the partition's ``scores.parquet``
    written by Spark from the staged scores (one file, rank order; the history folder must
    be reachable from the executors, e.g. a local or shared path), its ``run.json`` and
    ``profile.json`` from the run's summary and feature profiles; nothing per customer
    reaches the driver. A run that scored nobody leaves the partition as it was."""
    from churnml.io import write_spark_file
    from churnml.monitoring.history import COLUMNS

    history = ScoreHistory(history_root(cfg))
    outputs.add_folder(HISTORY_TARGET, history.partition(cutoff))

    def write(folder: Path, scores: Any, result: Any) -> None:  # holding the outputs' locks
        if result.n_scored == 0:
            shutil.rmtree(folder)  # nothing staged: nothing committed
            return
        history.clean(keep=folder)  # staging folders of killed runs
        kept = scores.select(*[c for c in COLUMNS if c in scores.columns]).orderBy("rank")
        segments = {str(r.risk_segment): int(r.customers) for r in result.summary.itertuples()
                    if int(r.customers) > 0}
        run = score_run(cfg, models, result.cutoff, result.scored_at, segments)

        def write_scores(path: Path) -> int:
            write_spark_file(kept, path)
            return result.n_scored

        ScoreHistory.write_run_with(folder, write_scores, run, result.profile)

    return write


def log_spark_scoring_run(result: Any, cfg: Config, models: Any) -> None:
    """:func:`log_scoring_run` of a Spark scoring run (its summary computed by Spark from
    the published scores; nothing per customer reaches the driver)."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    if result.n_scored == 0 or models.tracking_uri is None:
        return
    scores = SparkSession.getActiveSession().read.parquet(result.files["scores"])
    row = scores.agg(F.count(F.lit(1)).alias("n"), F.avg(PROBABILITY).alias("p"),
                     F.sum("value_at_risk").alias("var")).first()
    summary = {"customers": row["n"], "mean_churn_probability": row["p"],
               "value_at_risk_total": row["var"]}
    segments = {str(r.risk_segment): int(r.customers) for r in result.summary.itertuples()
                if int(r.customers) > 0}
    run = score_run(cfg, models, result.cutoff, result.scored_at, segments)
    _log_scoring_run(summary, run, result.profile, cfg, models.tracking_uri)


def _log_scoring_run(summary: dict[str, Any], run: dict[str, Any], profile: dict[str, Any],
                     cfg: Config, tracking_uri: str) -> None:
    import mlflow

    from churnml.training.tracking import key_part, start_run

    cutoff = pd.Timestamp(run["cutoff"])
    with start_run((cfg.tracking.experiment or cfg.name) + EXPERIMENT_SUFFIX,
                   run_name=f"score {cutoff:%Y-%m-%d}", tracking_uri=tracking_uri,
                   tags={"churnml.stage": "score", "churnml.config": cfg.name}):
        mlflow.log_params({"cutoff": cutoff.isoformat(), "model_version": run["model_version"],
                           "horizon_days": run["horizon_days"]})
        step = _step(cutoff)
        metrics = {f"score.{k}": float(v) for k, v in summary.items() if v is not None}
        metrics.update({f"score.segment.{key_part(k)}": float(v)
                        for k, v in run["segments"].items()})
        mlflow.log_metrics(metrics, step=step)
        mlflow.log_dict(profile, "feature_profile.json")


def _registry_card(cfg: Config, tracking_uri: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    from churnml.errors import ChurnmlError
    from churnml.training.tracking import model_card

    if not _store_exists(tracking_uri):
        return None
    try:
        return model_card(cfg.tracking.churn_model_name, cfg.scoring.model_alias, tracking_uri)
    except (LookupError, ChurnmlError, MlflowException):  # no model or alias: no reference
        return None


def _exported_card(folder: str | Path, name: str) -> dict[str, Any] | None:
    path = Path(folder) / f"{name}.json"
    if not path.exists():
        return None
    return read_json(path, "model card")


def reference_for(data: Any, cfg: Config, models: Any,
                  score: Callable[..., Any], tracking_uri: str | None = None
                  ) -> Reference | None:
    """The reference of ``models``: cached in ``<history>/reference.json`` when it was made
    for the same model version, else computed by ``score(cutoff)`` (a function returning a
    ScoreResult for a cutoff) at the end of the models' training window. Its calibration
    reference comes from :func:`backtest_outcomes` (a cached reference made without one
    gains it when the predictions are there)."""
    root = history_root(cfg)
    cached = root / REFERENCE_FILE
    folder = cfg.scoring.models_dir
    card = (_exported_card(folder, cfg.tracking.churn_model_name) if folder
            else _registry_card(cfg, tracking_uri or cfg.tracking.uri))
    window = (card or {}).get("training_window", {})
    if cached.exists():
        ref = Reference.from_file(cached)
        if ref.model_version == models.version:
            if ref.calibration is None and "end" in window:
                ref.calibration, ref.value = backtest_outcomes(cfg, pd.Timestamp(window["end"]))
            return ref
    if "end" not in window:
        return None
    cutoff = pd.Timestamp(window["end"])
    metrics = card.get("metrics", {})
    backtest = {m: float(metrics[f"backtest.churn.{m}"]) for m in ("roc_auc", "brier")
                if f"backtest.churn.{m}" in metrics}
    from churnml.features.profile import profile_frame
    from churnml.monitoring.quality import reference_data_profile

    result = score(cutoff)
    scores = result.scores
    calibration, value = backtest_outcomes(cfg, cutoff)
    ref = Reference(cutoff, models.version, result.profile,
                    profile_frame(scores, [c for c in SCORE_COLUMNS if c in scores]),
                    segment_counts(scores), backtest,
                    reference_data_profile(data, cutoff, cfg.monitoring),
                    calibration=calibration, value=value)
    root.mkdir(parents=True, exist_ok=True)
    from churnml.io import atomic_write

    atomic_write(cached, lambda p: p.write_text(ref.to_json()))
    return ref


def backtest_outcomes(cfg: Config, last_cutoff: pd.Timestamp) -> tuple[Any, dict[str, float]]:
    """The calibration reference and value metrics (:func:`~churnml.monitoring.monitor.
    reference_outcomes`) of the training run's rolling-origin backtest: the out-of-fold
    predictions at ``<output_dir>/backtest_predictions.parquet``, one window per origin
    (each predicted by a model trained the same way on the cutoffs whose labels were known
    before it: out of time). ``(None, {})`` when the file is missing, unreadable or from
    another training (its latest origin is not ``last_cutoff``, the models' last training
    cutoff), or the backtest was a grouped k-fold (not out of time)."""
    path = Path(cfg.output_dir) / BACKTEST_PREDICTIONS
    if not path.is_file():
        return None, {}
    try:
        pred = pd.read_parquet(path, columns=["cutoff", "fold", "churned", PROBABILITY,
                                              "ltv_actual", "ltv_predicted",
                                              "value_if_retained"])
    except (OSError, ValueError, KeyError):
        return None, {}
    if cfg.training.backtest != "rolling_origin" or pred.empty:
        return None, {}
    if pd.to_datetime(pred["cutoff"]).max() != pd.Timestamp(last_cutoff):
        return None, {}
    return reference_outcomes(pred.rename(columns={"ltv_actual": "ltv",
                                                   "ltv_predicted": "expected_value"}))


def run_monitor(data: Any, cfg: Config, reference: Reference | None, spec: Any = None,
                *, tracking_uri: str | None = None, log_to_mlflow: bool = True
                ) -> tuple[MonitorResult, dict[str, Path]]:
    """Monitor the score history of ``cfg``; write the tables and log them to MLflow."""
    history = ScoreHistory(history_root(cfg))
    outputs = monitor_outputs(Path(cfg.output_dir) / MONITOR_DIR)
    outputs.prepare()  # before the work: paths checked, a killed run's commit finished
    if history.root.is_dir():
        with locked(history.root):
            history.clean()  # staging folders of killed scoring runs
    if not history.cutoffs():
        raise LookupError(f"the score history {history.root} is empty: run `churnml score` "
                          "first (each run is recorded there)")
    result = monitor(data, history, reference, cfg.churn, cfg.monitoring, spec,
                     data_end=getattr(cfg.data, "end", None))
    files = write_monitor_outputs(result, Path(cfg.output_dir) / MONITOR_DIR, outputs)
    uri = tracking_uri or cfg.tracking.uri
    if log_to_mlflow and _store_exists(uri):
        _log_monitor_run(result, cfg, uri, files)
    return result, files


def _store_exists(uri: str) -> bool:
    """A server store exists; a local one only when its file or folder does (monitoring
    never creates a store that training has not)."""
    from churnml.training.tracking import local_store

    path = local_store(uri)
    return path is None or path.exists()


def _log_monitor_run(result: MonitorResult, cfg: Config, uri: str,
                     files: dict[str, Path]) -> None:
    import mlflow

    from churnml.training.tracking import start_run

    with start_run((cfg.tracking.experiment or cfg.name) + EXPERIMENT_SUFFIX,
                   run_name="monitor", tracking_uri=uri,
                   tags={"churnml.stage": "monitor", "churnml.config": cfg.name,
                         "churnml.retrain": str(result.retrain).lower(),
                         "churnml.verdict": result.verdict.cause}):
        for cutoff, metrics in sorted(metrics_by_cutoff(result).items()):
            mlflow.log_metrics({k.replace(" ", "_"): v for k, v in metrics.items()},
                               step=_step(pd.Timestamp(cutoff)))
        for path in files.values():
            mlflow.log_artifact(str(path))
