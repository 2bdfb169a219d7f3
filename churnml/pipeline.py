"""The main job, end to end: each stage is a plain function; :func:`run_demo` chains them.

metrics → train (backtest, MLflow log, register) → score (value at risk, reasons, segments)
→ HTML report. Every stage writes its files under the output folder (the file contract the
report reads) and records them in :class:`DemoResult`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from churnml.config import Config
from churnml.data.customer_data import CustomerData, data_end
from churnml.data.schema import PURCHASES_UNIT
from churnml.io import write_table

DAY = pd.Timedelta(days=1)
MONITOR_MONTHS = 6  # demo --monitor: past monthly scoring runs


@dataclass
class DemoResult:
    """Where the demo wrote what, and the main tables it computed."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    kpis: pd.DataFrame | None = None
    train: Any = None  # churnml.training.train.TrainResult
    scores: Any = None  # churnml.scoring.ScoreResult
    monitor: Any = None  # churnml.monitoring.MonitorResult
    seconds: dict[str, float] = field(default_factory=dict)


def metrics_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """KPIs per period, N-day retention (calendar and 24 h, on and on-or-after), cohort table
    (:func:`churnml.metrics.tables.metric_tables`)."""
    from churnml.metrics.tables import COHORTS_FILE, N_DAY_FILE, kpi_file_name, metric_tables

    tables = metric_tables(data, cfg)
    names = {"kpis": kpi_file_name(cfg.metrics.period), "retention": N_DAY_FILE,
             "cohorts": COHORTS_FILE}
    for key, name in names.items():
        result.files[key] = write_table(tables[name], out_dir / name)
    result.kpis = tables[names["kpis"]]


def train_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult,
                console: Console) -> None:
    """Backtest, fit, log to MLflow and register both models (:func:`~churnml.training.train`)."""
    from churnml.training.train import train

    cfg = cfg.model_copy(update={"output_dir": str(out_dir)})
    result.train = train(cfg, data, console=console)
    result.files.update(result.train.files)


def load_scoring_models(cfg: Config, models_dir: str | Path | None = None,
                        tracking_uri: str | None = None, trust_pickle: bool | None = None,
                        ) -> Any:
    """The models to score with: an exported folder (``models_dir`` or
    ``scoring.models_dir``; pickles only with ``trust_pickle`` / ``scoring.trust_pickle``) or
    the pair behind ``scoring.model_alias`` of the config's model names in the tracking
    store (opened read-only). Models trained for another config, data source, churn
    definition or feature spec are refused (:mod:`churnml.training.lineage`)."""
    from churnml.scoring import load_exported_models
    from churnml.scoring.loading import load_registered_pair
    from churnml.training.lineage import lineage

    names, sc = cfg.tracking, cfg.scoring
    expected = lineage(cfg)
    folder = models_dir or sc.models_dir
    if folder is not None:
        trust = sc.trust_pickle if trust_pickle is None else trust_pickle
        return load_exported_models(folder, names.churn_model_name, names.ltv_model_name,
                                    trust_pickle=trust, expected=expected,
                                    allow_missing_lineage=sc.allow_missing_lineage)
    models = load_registered_pair(names.churn_model_name, names.ltv_model_name,
                                  sc.model_alias, tracking_uri or names.uri, expected=expected,
                                  allow_missing_lineage=sc.allow_missing_lineage)
    if cfg.survival.enabled:
        from churnml.scoring.loading import with_survival
        from churnml.training.survival_stage import survival_model_name

        models, note = with_survival(models, survival_model_name(cfg), sc.model_alias,
                                     tracking_uri or names.uri)
        if note:
            warnings.warn(note, stacklevel=2)
    return models


def check_score_config(cfg: Config) -> None:
    """Config-only checks of ``score``, before any data or model is loaded: every name a
    segment rule reads is a score column, a named value or a feature of the config's spec
    (:func:`churnml.scoring.score.check_config_rules`; the error names the segment)."""
    from churnml.scoring.score import check_config_rules
    from churnml.training.train import feature_spec

    check_config_rules(cfg.scoring, feature_spec(cfg))


def default_cutoff(data: CustomerData) -> pd.Timestamp:
    """Default scoring instant: the end of the data (``data.end``, else the day after its
    last recorded day; :func:`churnml.data.customer_data.data_end`), never the wall clock."""
    return data_end(data)


def score_customers(data: CustomerData, cfg: Config, models: Any, *, cutoff: Any = None,
                    scored_at: Any = None, progress: Callable[[str, int, int], None] | None = None,
                    ) -> Any:
    """Score every customer at ``cutoff`` (default: the end of the data,
    :func:`default_cutoff`) with the features ``churnml train``
    fitted the models on; returns :class:`churnml.scoring.ScoreResult`. When
    ``churnml campaign train`` saved an uplift model in ``output_dir``, the scores also carry
    its ``uplift``, ``targeting_value`` and do-not-contact flag (:func:`uplift_columns`)."""
    from churnml.data.customer_data import check_cutoff
    from churnml.scoring import score
    from churnml.training.train import feature_spec

    if cutoff is None:
        cutoff = default_cutoff(data)
    check_cutoff(data, cutoff)
    return score(data, models, cfg.scoring, cutoff=cutoff, churn=cfg.churn,
                 spec=feature_spec(cfg), scored_at=scored_at, threads=cfg.features.threads,
                 memory_limit=cfg.features.memory_limit, progress=progress,
                 uplift=uplift_columns(cfg), survival=cfg.survival)


def uplift_columns(cfg: Config) -> Any:
    """:class:`churnml.uplift.fitted.UpliftColumns` of the uplift model in ``output_dir``
    with the config's cost and flag level, or None without one."""
    from churnml.uplift.fitted import UpliftColumns
    from churnml.uplift.workflow import load_uplift

    fit = load_uplift(cfg)
    if fit is None:
        return None
    return UpliftColumns(fit, cfg.uplift.cost_per_contact, cfg.uplift.flag_level)


def score_output_set(out_dir: Path, scores_path: Path | None = None,
                     segments_dir: Path | None = None, *, spark: bool = False) -> Any:
    """The :class:`~churnml.outputs.OutputSet` of ``churnml score``: scores, summary and
    segment folder (``spark``: as the Spark route writes them,
    :func:`churnml.scoring.spark.spark_score_outputs`); call its ``check()`` before any
    work."""
    if spark:
        from churnml.scoring.spark import spark_score_outputs

        return spark_score_outputs(out_dir, scores_path, segments_dir)
    from churnml.scoring.export import SCORES_FILE, SEGMENTS_DIR, SUMMARY_FILE, score_outputs

    return score_outputs(scores_path or out_dir / SCORES_FILE, out_dir / SUMMARY_FILE,
                         segments_dir or out_dir / SEGMENTS_DIR, journal_dir=out_dir)


def write_score_outputs(result: Any, out_dir: Path, scores_path: Path | None = None,
                        segments_dir: Path | None = None, *, escape: bool = True,
                        outputs: Any = None, cfg: Config | None = None,
                        models: Any = None) -> dict[str, Path]:
    """Write scores, the segment summary and one CSV per segment as one unit (the segment
    folder replaced whole); ``escape``: CSV text cells escaped against spreadsheet formulas.
    With ``cfg`` and ``models`` (and ``monitoring.history`` on), the run's score-history
    partition is committed in the same unit (a kill never leaves the history and the
    published scores disagreeing; returned as ``"history"``) and the run logged to MLflow."""
    from churnml.scoring import write_scores

    outputs = outputs or score_output_set(out_dir, scores_path, segments_dir)
    extra = {}
    if cfg is not None and cfg.monitoring.history:
        from churnml.monitoring.jobs import HISTORY_TARGET, stage_history

        writer = stage_history(result, cfg, models, outputs)
        if writer is not None:
            extra[HISTORY_TARGET] = writer
    write_scores(result.scores, outputs.files["scores"], result.summary,
                 outputs.files["summary"], outputs.folders["segments"], escape=escape,
                 outputs=outputs, extra=extra)
    files = {"scores": outputs.files["scores"], "segment_summary": outputs.files["summary"],
             "segments": outputs.folders["segments"]}
    if extra:
        from churnml.monitoring.jobs import HISTORY_TARGET, log_scoring_run

        files["history"] = outputs.folders[HISTORY_TARGET]
        log_scoring_run(result, cfg, models)
    return files


def record_score_run(result: Any, cfg: Config, models: Any) -> Path | None:
    """Keep a scoring run in the score history (``monitoring.history``; see
    :func:`churnml.monitoring.jobs.record_scores`)."""
    if not cfg.monitoring.history:
        return None
    from churnml.monitoring.jobs import record_scores

    return record_scores(result, cfg, models)


def score_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """Score the whole base as of the day after the data ends with the champion models (the
    pair just trained, with a warning, when no pair has become champion yet)."""
    from churnml.errors import ModelSourceError
    from churnml.training.tracking import CHALLENGER

    outputs = score_output_set(out_dir)
    outputs.prepare()
    try:
        models = load_scoring_models(cfg)
    except ModelSourceError as exc:
        if result.train is None or cfg.scoring.model_alias == CHALLENGER:
            raise
        warnings.warn(f"{exc}; no pair has beaten its baselines yet, so the demo scores with "
                      f"the pair just trained (alias {CHALLENGER!r})", stacklevel=2)
        fallback = cfg.model_copy(deep=True)
        fallback.scoring.model_alias = CHALLENGER
        models = load_scoring_models(fallback)
    cutoff = default_cutoff(data)
    result.scores = score_customers(data, cfg, models, cutoff=cutoff)
    result.files.update(write_score_outputs(
        result.scores, out_dir, outputs=outputs, escape=cfg.csv_escape_formulas,
        cfg=cfg.model_copy(update={"output_dir": str(out_dir)}), models=models))


def campaign_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """With a campaign log: evaluate every campaign whose horizon has passed, fit the uplift
    model on them and add targeting values to the scores (:mod:`churnml.uplift.workflow`)."""
    from churnml.scoring.score import UPLIFT_COLUMNS
    from churnml.uplift.campaigns import contact_outcomes
    from churnml.uplift.workflow import TARGETING_FILE, evaluate, target, train_uplift

    if data.campaigns is None:
        return
    cfg = cfg.model_copy(update={"output_dir": str(out_dir)})
    matured = contact_outcomes(data, cfg.churn).groupby("campaign_id")["matured"].all()
    ids = [str(c) for c in matured[matured].index]
    for cid in ids:
        result.files[f"campaign:{cid}"] = evaluate(cfg, data, cid).files["evaluation"]
    if ids:
        fit = train_uplift(cfg, data)
        result.files["uplift_model"] = fit.files["model"]
        if result.scores is not None:
            targeting = target(cfg, data, result.scores.scores, fit)
            result.files["targeting"] = write_table(targeting, out_dir / TARGETING_FILE)
            # one list for marketing: the scores and segment files carry the uplift columns
            scores = result.scores.scores
            for col in UPLIFT_COLUMNS:
                scores[col] = targeting[col].to_numpy()
            at = list(scores.columns).index("model_version")
            order = [c for c in scores.columns if c not in UPLIFT_COLUMNS]
            result.scores.scores = scores[[*order[:at], *UPLIFT_COLUMNS, *order[at:]]]
            outputs = score_output_set(out_dir)
            outputs.prepare()
            result.files.update(write_score_outputs(result.scores, out_dir, outputs=outputs,
                                                    escape=cfg.csv_escape_formulas))


def monitoring_cutoffs(data: CustomerData, months: int = MONITOR_MONTHS) -> pd.DatetimeIndex:
    """Month starts of the last ``months`` months of the data (the demo's past scoring runs)."""
    end = default_cutoff(data)
    first = (end - pd.DateOffset(months=months)).normalize().replace(day=1)
    return pd.date_range(first, end, freq="MS", inclusive="left").astype("datetime64[us]")


def monitor_data(data: CustomerData, cfg: Config, models: Any = None,
                 tracking_uri: str | None = None) -> Any:
    """Run :func:`churnml.monitoring.jobs.run_monitor` over the score history of ``cfg``,
    with the reference of the scoring models (loaded from the config when not given)."""
    from churnml.monitoring.jobs import reference_for, run_monitor
    from churnml.training.train import feature_spec

    models = models or load_scoring_models(cfg, tracking_uri=tracking_uri)
    reference = reference_for(
        data, cfg, models, lambda c: score_customers(data, cfg, models, cutoff=c),
        tracking_uri)
    return run_monitor(data, cfg, reference, feature_spec(cfg), tracking_uri=tracking_uri)


def monitor_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """Score the month starts of the data's last months (the score history a deployment
    would have kept), then monitor them: realized vs estimated performance and drift."""
    cfg = cfg.model_copy(update={"output_dir": str(out_dir)})
    models = load_scoring_models(cfg)
    for cutoff in monitoring_cutoffs(data):
        record_score_run(score_customers(data, cfg, models, cutoff=cutoff), cfg, models)
    result.monitor, files = monitor_data(data, cfg, models)
    result.files.update({f"monitoring_{k}": v for k, v in files.items()})


def report_stage(data: CustomerData, cfg: Config, out_dir: Path, result: DemoResult) -> None:
    """The HTML report over the files above, also logged to the training run in MLflow."""
    from churnml.report import build_report, log_report
    from churnml.training.tracking import tracking

    if data.currency == PURCHASES_UNIT:  # count-only data: values are purchases, not money
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
            update={"currency": data.currency})})
    path = build_report(out_dir, cfg)
    result.files["report"] = path
    run_id = getattr(result.train, "run_id", None)
    if run_id is not None:
        with tracking(cfg.tracking.uri):
            log_report(path, run_id=run_id)


def run_demo(data: CustomerData, cfg: Config, out_dir: str | Path,
             console: Console | None = None, *, model_stages: bool = True,
             monitor: bool = False) -> DemoResult:
    """Run every stage of the main job on ``data`` and write the outputs under ``out_dir``;
    ``model_stages=False`` stops after the metrics (no training, scoring or models);
    ``monitor=True`` trains as of the first of the last :data:`MONITOR_MONTHS` months (only
    on labels known by then), scores each month since and monitors those runs. The survival
    model (time to churn) is on unless the config sets ``survival.enabled``."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    result = DemoResult(out_dir=out_dir)
    if "enabled" not in cfg.survival.model_fields_set:  # the demo shows time to churn
        cfg = cfg.model_copy(deep=True)
        cfg.survival.enabled = True
    if monitor and model_stages:  # deploy as of the first monitored month: train before it
        cfg = cfg.model_copy(deep=True)
        first = monitoring_cutoffs(data)[0]
        cfg.training.last_cutoff = str(first - pd.Timedelta(days=cfg.churn.horizon_days))
    stages: list[tuple[str, Callable[..., None], bool]] = [
        ("retention metrics", metrics_stage, False),
    ]
    if model_stages:
        stages += [
            ("training (backtest, MLflow, registry)", train_stage, True),
            ("scoring and segments", score_stage, False),
        ]
        if data.campaigns is not None:
            stages.append(("campaigns: evaluation, uplift model, targeting", campaign_stage,
                           False))
        if monitor:
            stages.append(("monitoring (past scoring runs, drift)", monitor_stage, False))
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


def spark_default_cutoff(data: Any, cfg: Config) -> pd.Timestamp:
    """:func:`default_cutoff` of Spark data: ``data.end`` when configured, else the day after
    the latest timestamp of its transactions, events and surveys."""
    end = getattr(cfg.data, "end", None)
    return pd.Timestamp(end) if end is not None else data.end.normalize() + DAY


def score_customers_spark(data: Any, cfg: Config, models: Any, out_dir: Path, *,
                          cutoff: Any = None, scored_at: Any = None,
                          scores_path: Path | None = None,
                          segments_dir: Path | None = None, outputs: Any = None) -> Any:
    """:func:`score_customers` on Spark, writing the outputs from the executors
    (:func:`churnml.scoring.spark.score_spark_data`) and, with ``monitoring.history``, the
    run into the score history (:func:`~churnml.monitoring.jobs.stage_spark_history`), all
    committed as one unit (``outputs``: the run's :func:`score_output_set`, checked before
    the work); returns its ``SparkScoreResult``."""
    from churnml.features.build import as_cutoffs
    from churnml.scoring.score import default_cutoff as now
    from churnml.scoring.spark import score_spark_data
    from churnml.training.train import feature_spec

    cut = as_cutoffs(now() if cutoff is None else cutoff)[0]
    outputs = outputs or score_output_set(out_dir, scores_path, segments_dir, spark=True)
    outputs.check()
    extra = {}
    if cfg.monitoring.history:
        from churnml.monitoring.jobs import HISTORY_TARGET, stage_spark_history

        extra[HISTORY_TARGET] = stage_spark_history(cfg, models, outputs, cut)
    result = score_spark_data(
        data, models, cfg.scoring, cutoff=cut, churn=cfg.churn, spec=feature_spec(cfg),
        scored_at=scored_at, out_dir=out_dir, scores_path=scores_path,
        segments_dir=segments_dir, uplift=uplift_columns(cfg), outputs=outputs, extra=extra)
    if extra and result.n_scored:
        from churnml.monitoring.jobs import HISTORY_TARGET, log_spark_scoring_run

        result.history = outputs.folders[HISTORY_TARGET]
        log_spark_scoring_run(result, cfg, models)
    return result


def load_through_spark(cfg: Config) -> CustomerData:
    """The tables of a config only Spark can read (Spark tables, URIs, no ``data.dir``:
    :func:`~churnml.data.spark_loader.spark_only`) read, mapped and validated by Spark, then
    collected to the driver for the commands computed by DuckDB (``metrics``, ``monitor``,
    ``report``)."""
    from churnml.data.spark_loader import collect_spark_data

    with spark_job(cfg) as (_, data):
        return collect_spark_data(data, cfg)
