"""`churnml score`: rank every customer by value at risk, explain, segment and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    parse_iso_timestamp,
    printed_warnings,
    resolve_config,
    step,
    warn_trust_pickle,
)
from churnml.config import Config
from churnml.errors import ChurnmlError
from churnml.paths import portable

STAGES = {"predict": "scoring", "explain": "reasons"}


@app.command()
def score(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    cutoff: Annotated[
        str | None, typer.Option(help="score as of this instant, ISO 8601 (default: the end "
                                "of the data: data.end, else the day after its last record)")
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
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="registry alias to score with, e.g. challenger: the pair "
                     "trained last that did not become champion (default: "
                     "scoring.model_alias, champion)"),
    ] = None,
    escape_formulas: Annotated[
        bool | None,
        typer.Option("--escape-formulas/--no-escape-formulas",
                     help="prefix CSV text cells starting with = + - @ tab CR with ' so "
                     "spreadsheets do not run them (default: csv_escape_formulas, on)"),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option("--trust-pickle", help="let --models-dir hold pickled (.joblib) models, "
                     "which run code when loaded: only for files you made yourself"),
    ] = False,
    scored_at: Annotated[
        str | None,
        typer.Option("--scored-at", help="timestamp recorded as scored_at (default: now, UTC); "
                     "pin it for byte-identical re-runs"),
    ] = None,
) -> None:
    """Score every customer: churn probability x predicted value = value at risk, ranked,
    with the top churn drivers in words, a segment and a suggested action. Writes the
    scores, segment_summary.csv and one CSV per segment; prints the segment summary."""
    from mlflow.exceptions import MlflowException

    from churnml.data.customer_data import check_cutoff, cutoff_warnings
    from churnml.pipeline import (
        check_score_config,
        default_cutoff,
        load_scoring_models,
        score_customers,
        score_output_set,
        write_score_outputs,
    )

    try:
        cfg = resolve_config(config, dataset, data)
        if alias is not None:
            cfg.scoring.model_alias = alias
        check_score_config(cfg)  # rules read known names: before any data or model is loaded
        if scored_at is not None:  # ISO 8601 only, like --cutoff (checked before any work)
            parse_iso_timestamp(scored_at, "--scored-at")
        out_dir = Path(cfg.output_dir)
        outputs = score_output_set(out_dir, out, segments_dir,
                                   spark=cfg.features.engine == "spark")
        with printed_warnings():
            outputs.prepare()  # before any work: a bad --out fails in a second, not after scoring
        escape = cfg.csv_escape_formulas if escape_formulas is None else escape_formulas
        uri = tracking_uri or cfg.tracking.uri
        folder = models_dir or cfg.scoring.models_dir
        trust = trust_pickle or cfg.scoring.trust_pickle
        if folder and trust:
            warn_trust_pickle(folder)
        source = portable(folder) if folder else portable(uri)
        with step(f"loading models from {source}"):
            models = load_scoring_models(cfg, folder, uri, trust_pickle=trust)
        if cfg.features.engine == "spark":
            _score_spark(cfg, models, cutoff, scored_at, out, segments_dir, outputs)
            return
        customer_data = load(cfg)
        if cutoff is None:
            cut = default_cutoff(customer_data)
            err.print(f"  scoring as of {cut}, the end of the data ("
                      + ("data.end" if customer_data.end_configured is not None
                         else "the day after its last record") + "; --cutoff to change)",
                      highlight=False)
        else:
            cut = parse_iso_timestamp(cutoff, "--cutoff", cfg.data.timezone)
            check_cutoff(customer_data, cut)
            for note in cutoff_warnings(customer_data, cut):
                err.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
        if (overlap := models.overlap_warning(cut)) is not None:
            err.print(f"[yellow]warning:[/yellow] {overlap}", highlight=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = score_customers(customer_data, cfg, models, cutoff=cut,
                                     scored_at=scored_at, progress=progress)
        with step("writing scores and segment files"):
            files = write_score_outputs(result, out_dir, out, segments_dir, escape=escape,
                                        outputs=outputs, cfg=cfg, models=models)
        target = files["scores"]
        history = files.get("history")  # committed with the scores as one unit
    except (ChurnmlError, ValueError, FileNotFoundError, LookupError, MlflowException) as exc:
        fail(exc)
    for note in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {note}")
    scores = result.scores
    err.print(f"{len(scores):,} customers scored with {models.version}; reasons for "
              f"{result.n_reasons:,}; wrote {portable(target)}")
    if history is not None:
        err.print(f"  kept in the score history: {portable(history)}")
    emit(result.summary, OutFormat.table, None, f"Segments (value at risk in "
         f"{customer_data.currency} over {cfg.churn.horizon_days} days)")


def _score_spark(cfg: Config, models: Any, cutoff: str | None, scored_at: str | None,
                 out: Path | None, segments_dir: Path | None, outputs: Any) -> None:
    """``score`` with features.engine spark: features, predictions (the models' code-free
    state broadcast), segments and reasons on the executors; outputs and the score history
    written by Spark."""
    from churnml.pipeline import score_customers_spark, spark_default_cutoff, spark_job

    with spark_job(cfg) as (_, data):
        if cutoff is None:
            cut = spark_default_cutoff(data, cfg)
            err.print(f"  scoring as of {cut}, the end of the data (--cutoff to change)",
                      highlight=False)
        else:
            cut = parse_iso_timestamp(cutoff, "--cutoff", cfg.data.timezone)
        with step("scoring on spark (features, predictions, segments, reasons, files)"):
            result = score_customers_spark(data, cfg, models, Path(cfg.output_dir),
                                           cutoff=cut, scored_at=scored_at,
                                           scores_path=out, segments_dir=segments_dir,
                                           outputs=outputs)
    for note in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {note}")
    err.print(f"{result.n_scored:,} customers scored with {models.version}; reasons for "
              f"{result.n_reasons:,}; wrote {portable(result.files['scores'])}")
    if result.history is not None:
        err.print(f"  kept in the score history: {portable(result.history)}")
    emit(result.summary, OutFormat.table, None, "Segments (value at risk in the input currency "
         f"over {cfg.churn.horizon_days} days)")
