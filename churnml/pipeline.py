"""The main job, end to end: each stage is a plain function; :func:`run_demo` chains them.

metrics → train (backtest, MLflow log, register) → score (value at risk, reasons, segments)
→ HTML report. Every stage writes its files under the output folder (the file contract the
report reads) and records them in :class:`DemoResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from churnml.config import Config
from churnml.data.customer_data import CustomerData
from churnml.io import write_table

DAY = pd.Timedelta(days=1)


@dataclass
class DemoResult:
    """Where the demo wrote what, and the main tables it computed."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    kpis: pd.DataFrame | None = None
    train: Any = None  # churnml.training.train.TrainResult
    scores: Any = None  # churnml.scoring.ScoreResult
    seconds: dict[str, float] = field(default_factory=dict)


def metrics_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """KPIs per period, N-day retention (calendar and 24 h, on and on-or-after), cohort table."""
    from churnml.metrics import cohort_table, kpi_table, n_day_retention

    period = cfg.metrics.period
    kpis = kpi_table(data, period=period, by=None, churn=cfg.churn, voice=cfg.voice)
    result.kpis = kpis
    result.files["kpis"] = write_table(kpis, out_dir / f"kpis_{period}.csv")
    curves = []
    for window in ("calendar", "24h"):
        for mode in ("on", "on_or_after"):
            r = n_day_retention(data, days=cfg.metrics.retention_days, window=window, mode=mode,
                                churn=cfg.churn)
            curves.append(r.assign(window=window, mode=mode))
    result.files["retention"] = write_table(pd.concat(curves, ignore_index=True),
                                            out_dir / "n_day_retention.csv")
    cohorts = cohort_table(data, period=period, churn=cfg.churn)
    result.files["cohorts"] = write_table(cohorts.reset_index(), out_dir / "cohorts.csv")


def train_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult,
                console: Console) -> None:
    """Backtest, fit, log to MLflow and register both models (:func:`~churnml.training.train`)."""
    from churnml.training.train import train

    cfg = cfg.model_copy(update={"output_dir": str(out_dir)})
    result.train = train(cfg, data, console=console)
    result.files.update(result.train.files)


def load_scoring_models(cfg: Config, models_dir: str | Path | None = None,
                        tracking_uri: str | None = None) -> Any:
    """The models to score with: an exported folder (``models_dir`` or
    ``scoring.models_dir``) or the registry aliases ``scoring.model_alias`` of the config's
    model names in the tracking store."""
    from churnml.scoring import load_exported_models, load_registered
    from churnml.scoring.loading import ALIAS_SEP, MODELS_PREFIX

    names, sc = cfg.tracking, cfg.scoring
    folder = models_dir or sc.models_dir
    if folder is not None:
        return load_exported_models(folder, names.churn_model_name, names.ltv_model_name)
    return load_registered(
        f"{MODELS_PREFIX}{names.churn_model_name}{ALIAS_SEP}{sc.model_alias}",
        f"{MODELS_PREFIX}{names.ltv_model_name}{ALIAS_SEP}{sc.model_alias}",
        tracking_uri or names.uri,
    )


def default_cutoff(data: CustomerData | Any) -> pd.Timestamp:
    """Scoring instant for a historical dataset: the day after its last recorded day."""
    return data.end.normalize() + DAY


def score_customers(data: CustomerData, cfg: Config, models: Any, *, cutoff: Any = None,
                    scored_at: Any = None, progress: Callable[[str, int, int], None] | None = None,
                    ) -> Any:
    """Score every customer at ``cutoff`` (default: now) with the features ``churnml train``
    fitted the models on; returns :class:`churnml.scoring.ScoreResult`."""
    from churnml.scoring import score
    from churnml.training.train import feature_spec

    return score(data, models, cfg.scoring, cutoff=cutoff, churn=cfg.churn,
                 spec=feature_spec(cfg), scored_at=scored_at, threads=cfg.features.threads,
                 memory_limit=cfg.features.memory_limit, progress=progress)


def write_score_outputs(result: Any, out_dir: Path, scores_path: Path | None = None,
                        segments_dir: Path | None = None) -> dict[str, Path]:
    """Write scores, the segment summary and one CSV per segment (atomic writes)."""
    from churnml.scoring import write_scores
    from churnml.scoring.export import SCORES_FILE, SEGMENTS_DIR, SUMMARY_FILE

    files = {
        "scores": scores_path or out_dir / SCORES_FILE,
        "segment_summary": out_dir / SUMMARY_FILE,
        "segments": segments_dir or out_dir / SEGMENTS_DIR,
    }
    write_scores(result.scores, files["scores"], result.summary, files["segment_summary"],
                 files["segments"])
    return files


def score_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """Score the whole base as of the day after the data ends with the champion models."""
    models = load_scoring_models(cfg)
    cutoff = default_cutoff(data)
    result.scores = score_customers(data, cfg, models, cutoff=cutoff)
    result.files.update(write_score_outputs(result.scores, out_dir))


def report_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """The HTML report over the files above, also logged to the training run in MLflow."""
    from churnml.report import build_report, log_report
    from churnml.training.tracking import tracking

    path = build_report(out_dir, cfg)
    result.files["report"] = path
    run_id = getattr(result.train, "run_id", None)
    if run_id is not None:
        with tracking(cfg.tracking.uri):
            log_report(path, run_id=run_id)


def run_demo(data: CustomerData, cfg: Config, out_dir: str | Path,
             console: Console | None = None, *, model_stages: bool = True) -> DemoResult:
    """Run every stage of the main job on ``data`` and write the outputs under ``out_dir``;
    ``model_stages=False`` stops after the metrics (no training, scoring or models)."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    result = DemoResult(out_dir=out_dir)
    stages: list[tuple[str, Callable[..., None], bool]] = [
        ("retention metrics", metrics_stage, False),
    ]
    if model_stages:
        stages += [
            ("training (backtest, MLflow, registry)", train_stage, True),
            ("scoring and segments", score_stage, False),
        ]
    stages.append(("HTML report", report_stage, False))
    for label, stage, verbose in stages:
        start = time.perf_counter()
        if verbose:  # the stage shows its own progress
            console.rule(label)
            stage(data, cfg, out_dir, result, console)
        else:
            with console.status(f"{label} …", spinner="dots"):
                stage(data, cfg, out_dir, result)
        result.seconds[label] = time.perf_counter() - start
        console.print(f"[green]✓[/green] {label} ({result.seconds[label]:.1f} s)")
    return result


# --------------------------------------------------------------------------- Spark route


@contextmanager
def spark_job(cfg: Config) -> Iterator[tuple[Any, Any]]:
    """``(session, data)`` for a command on Spark: the active SparkSession, or one started
    on ``features.spark_master`` sized by ``features.spark_driver_memory`` / ``spark_conf``
    (stopped at the end); the config's tables read, mapped and validated by Spark
    (:func:`~churnml.data.spark_loader.load_spark_data`). JVM failures inside the block end
    it with :class:`~churnml.engine.spark_session.SparkJobError` and a hint."""
    from churnml.data.spark_loader import load_spark_data, stage_folder
    from churnml.engine.spark_session import spark_errors, start_session, stop_session

    f = cfg.features
    session, created = start_session(f.spark_master, f.spark_driver_memory, f.spark_conf)
    local = session.sparkContext.master.startswith("local")
    staging = stage_folder() if local and cfg.data.dataset is not None else None
    try:
        with spark_errors(session):
            data = load_spark_data(cfg, session, staging.name if staging else None)
            yield session, data
    finally:
        if created:
            stop_session(session)
        if staging is not None:
            staging.cleanup()


def spark_features_job(cfg: Config, data: Any, cutoffs: Any, spec: Any, labels: bool,
                       target: Path) -> dict[str, int]:
    """Features (and labels) of Spark ``data`` at ``cutoffs`` written by Spark to
    ``target`` (.parquet folder or .csv); returns ``rows, customers, cutoffs`` counted on
    the written table."""
    from pyspark.sql import functions as F

    from churnml.features import build_features
    from churnml.io import SPARK_CSV_OPTIONS, write_spark_table
    from churnml.labels import build_panel

    if labels:
        table = build_panel(data, cutoffs, spec, cfg.churn, engine="spark")
    else:
        table = build_features(data, cutoffs, spec, engine="spark")
    path = write_spark_table(table, target)
    spark = table.sparkSession
    written = (spark.read.parquet(path) if str(target).lower().endswith(".parquet")
               else spark.read.options(**SPARK_CSV_OPTIONS).csv(path))
    row = written.agg(F.count(F.lit(1)).alias("rows"),
                      F.countDistinct("customer_id").alias("customers"),
                      F.countDistinct("cutoff").alias("cutoffs")).first()
    return {"rows": int(row["rows"]), "customers": int(row["customers"]),
            "cutoffs": int(row["cutoffs"]), "columns": len(written.columns)}


def score_customers_spark(data: Any, cfg: Config, models: Any, out_dir: Path, *,
                          cutoff: Any = None, scored_at: Any = None,
                          scores_path: Path | None = None,
                          segments_dir: Path | None = None) -> Any:
    """:func:`score_customers` on Spark, writing the outputs from the executors
    (:func:`churnml.scoring.spark.score_spark_data`); returns its ``SparkScoreResult``."""
    from churnml.scoring.score import default_cutoff as now
    from churnml.scoring.spark import score_spark_data
    from churnml.training.train import feature_spec

    return score_spark_data(
        data, models, cfg.scoring, cutoff=now() if cutoff is None else cutoff,
        churn=cfg.churn, spec=feature_spec(cfg), scored_at=scored_at, out_dir=out_dir,
        scores_path=scores_path, segments_dir=segments_dir)
