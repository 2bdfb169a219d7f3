"""The main job, end to end: each stage is a plain function; :func:`run_demo` chains them.

metrics → train (backtest, MLflow log, register) → score (value at risk, reasons, segments)
→ HTML report. Every stage writes its files under the output folder (the file contract the
report reads) and records them in :class:`DemoResult`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
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
                                    trust_pickle=trust, expected=expected)
    return load_registered_pair(names.churn_model_name, names.ltv_model_name, sc.model_alias,
                                tracking_uri or names.uri, expected=expected)


def default_cutoff(data: CustomerData) -> pd.Timestamp:
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
    """Score the whole base as of the day after the data ends with the champion models (the
    pair just trained, with a warning, when no pair has become champion yet)."""
    from churnml.errors import ModelSourceError
    from churnml.training.tracking import CHALLENGER

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
