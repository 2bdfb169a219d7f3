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

OK_EXIT_CODE = 0  # no alarm
ALARM_EXIT_CODE = 1  # a threshold was crossed: retrain (usable in a scheduler)
ERROR_EXIT_CODE = 2  # the monitor could not run (bad config, data, store or history)


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
    Exit codes (for a scheduler): 0 no alarm, 1 a threshold was crossed (the retrain
    signal), 2 the monitor could not run (an error; never 1)."""
    try:
        result, cfg, customer_data, files = _run(config, dataset, data, tracking_uri)
    except (typer.Exit, typer.BadParameter):  # usage errors exit with 2 already
        raise
    except Exception as exc:  # noqa: BLE001 - exit code 1 means "retrain", so no failure
        fail_monitor(exc)  # may leave with Python's default 1: each is an error (2)
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

        try:
            with step("retraining (churnml train)"):
                train(cfg, customer_data, console=err)
        except Exception as exc:  # noqa: BLE001 - as above: a failed retrain is an error
            fail_monitor(exc)
    raise typer.Exit(code=ALARM_EXIT_CODE)


def _run(config, dataset, data, tracking_uri):  # noqa: ANN001, ANN202 - the CLI's values
    from churnml.pipeline import monitor_data

    cfg = resolve_config(config, dataset, data)
    customer_data = load(cfg)
    with step("monitoring the score history"):
        result, files = monitor_data(customer_data, cfg, tracking_uri=tracking_uri)
    return result, cfg, customer_data, files


def fail_monitor(exc: Exception) -> None:
    """Print the error and exit with :data:`ERROR_EXIT_CODE`: churnml's own errors and
    the store's as they are, anything else with its type (a bug, not a retrain signal)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, ChurnmlError | ValueError | OSError | LookupError | MlflowException):
        exc = RuntimeError(f"the monitor failed ({type(exc).__name__}: {exc})")
    fail(exc)
