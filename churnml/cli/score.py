"""`churnml score`: rank every customer by value at risk, explain, segment and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from churnml.cli._common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    OutFormat,
    app,
    emit,
    err,
    fail,
    load,
    resolve_config,
    step,
)
from churnml.errors import ChurnmlError

STAGES = {"predict": "scoring", "explain": "reasons"}


@app.command()
def score(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    cutoff: Annotated[
        str | None, typer.Option(help="score as of this instant (default: now)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="scores .parquet or .csv (default: <output_dir>/scores.parquet)"),
    ] = None,
    segments_dir: Annotated[
        Path | None,
        typer.Option("--segments-dir",
                     help="one CSV per segment here (default: <output_dir>/segments)"),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="exported models (churnml export) instead of the "
                     "MLflow registry"),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow store (default: tracking.uri)")
    ] = None,
    scored_at: Annotated[
        str | None,
        typer.Option("--scored-at", help="timestamp recorded as scored_at (default: now, UTC); "
                     "pin it for byte-identical re-runs"),
    ] = None,
) -> None:
    """Score every customer: churn probability x predicted value = value at risk, ranked,
    with the top churn drivers in words, a segment and a suggested action. Writes the
    scores, segment_summary.csv and one CSV per segment; prints the segment summary."""
    from churnml.scoring import load_exported_models, load_registered, score, write_scores
    from churnml.scoring.export import SCORES_FILE, SEGMENTS_DIR, SUMMARY_FILE
    from churnml.scoring.loading import MODELS_PREFIX
    from churnml.training.train import feature_spec

    try:
        cfg = resolve_config(config, dataset, data)
        sc, names = cfg.scoring, cfg.tracking
        uri = tracking_uri or names.uri
        folder = models_dir or (Path(sc.models_dir) if sc.models_dir else None)
        with step("loading models " + (f"from {folder}" if folder else f"from {uri}")):
            if folder is not None:
                models = load_exported_models(folder, names.churn_model_name,
                                              names.ltv_model_name)
            else:
                models = load_registered(
                    f"{MODELS_PREFIX}{names.churn_model_name}@{sc.model_alias}",
                    f"{MODELS_PREFIX}{names.ltv_model_name}@{sc.model_alias}", uri)
        customer_data = load(cfg)
        spec = feature_spec(cfg)  # the spec `churnml train` fitted the models on
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = score(customer_data, models, sc, cutoff=cutoff, churn=cfg.churn,
                           spec=spec, scored_at=scored_at, threads=cfg.features.threads,
                           memory_limit=cfg.features.memory_limit, progress=progress)
        out_dir = Path(cfg.output_dir)
        target = out or out_dir / SCORES_FILE
        with step(f"writing {target}"):
            write_scores(result.scores, target, result.summary, out_dir / SUMMARY_FILE,
                         segments_dir or out_dir / SEGMENTS_DIR)
    except (ChurnmlError, ValueError, FileNotFoundError, LookupError) as exc:
        fail(exc)
    for note in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {note}")
    scores = result.scores
    err.print(f"{len(scores):,} customers scored with {models.version}; reasons for "
              f"{result.n_reasons:,}; wrote {target}")
    emit(result.summary, OutFormat.table, None, "Segments (value at risk in the input currency "
         f"over {cfg.churn.horizon_days} days)")
