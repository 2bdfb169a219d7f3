"""`churnml monitor`: realized vs estimated performance and drift of the scored cutoffs."""

from __future__ import annotations

from typing import Annotated

import typer

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
from churnml.paths import portable

ALARM_EXIT_CODE = 1  # a threshold was crossed: retrain (usable in a scheduler)


@app.command()
def monitor(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow store (default: tracking.uri)")
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="run `churnml train` when the monitor says so")
    ] = False,
) -> None:
    """Join every scored cutoff whose horizon has passed with its labels (realized ROC AUC,
    Brier, lift, lost-revenue capture, vs the naive baselines), estimate the others from the
    calibrated probabilities, and measure drift against the champion's training reference.
    Exits with 1 when a threshold is crossed (the retrain signal), 0 otherwise."""
    from churnml.pipeline import monitor_data

    try:
        cfg = resolve_config(config, dataset, data)
        customer_data = load(cfg)
        with step("monitoring the score history"):
            result, files = monitor_data(customer_data, cfg, tracking_uri=tracking_uri)
    except (ChurnmlError, ValueError, FileNotFoundError, LookupError) as exc:
        fail(exc)
    from churnml.monitoring.monitor import summarise

    emit(summarise(result), OutFormat.table, None, "Monitoring: estimated vs realized")
    for note in result.notes:
        err.print(f"  note: {note}")
    err.print(f"  wrote {portable(files['performance'].parent)}")
    if not result.retrain:
        err.print("[green]no alarm[/green]: performance within margins, no drift past "
                  f"PSI {cfg.monitoring.psi_alarm}")
        return
    for alarm in result.alarms:
        err.print(f"[bold red]alarm:[/bold red] {alarm}")
    err.print("retrain signal: the champion should be retrained (`churnml train --config …`)")
    if retrain:
        from churnml.training.train import train

        with step("retraining (churnml train)"):
            train(cfg, customer_data, console=err)
    raise typer.Exit(code=ALARM_EXIT_CODE)
