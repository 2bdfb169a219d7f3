"""`churnml report`: the HTML report over the files of the output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churnml.cli._common import (
    ConfigOpt,
    app,
    check_output_file,
    err,
    fail,
    load,
    resolve_config,
    step,
)
from churnml.errors import ChurnmlError


@app.command()
def report(
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="report file (default: "
                                             "<output_dir>/report.html)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="folder with the job's "
                                                 "outputs (default: output_dir of the config)")]
    = None,
    mlflow_run: Annotated[str | None, typer.Option("--mlflow-run", help="also log the report "
                                                   "to this MLflow run id")] = None,
) -> None:
    """One self-contained HTML report: KPI trends, cohorts, N-day retention, model quality,
    feature importance, segments and the customers most at risk, with reasons."""
    from churnml.paths import portable
    from churnml.report import build_report, log_report

    try:
        cfg = resolve_config(config, None, None)
        check_output_file(out)  # before any work: a folder there is an error, left as it is
        source = out_dir or Path(cfg.output_dir)
        # metric tables absent from the folder (e.g. after train and score) are computed
        path = build_report(source, cfg, out, data=lambda: load(cfg))
        err.print(f"[green]✓[/green] built the report from {portable(source)}")
        if mlflow_run is not None:
            with step(f"logging the report to MLflow run {mlflow_run}"):
                log_report(path, run_id=mlflow_run)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    err.print(f"  report       {portable(path)}  (open it in a browser)")
