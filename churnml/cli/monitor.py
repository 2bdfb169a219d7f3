"""`churnml monitor`: realized vs estimated performance and drift of the scored cutoffs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

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

OK_EXIT_CODE = 0  # healthy: no alarm
ALARM_EXIT_CODE = 1  # a verdict to act on (data, performance, value, population), usable in a
# scheduler; signal.json says which
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
        bool, typer.Option("--retrain", help="run `churnml train` when the verdict is to "
                           "retrain (refused while a data break stands)")
    ] = False,
    acknowledge_data: Annotated[
        list[str] | None, typer.Option(
            "--acknowledge-data", help="a data check known to be an intended change (pattern "
            "on '<table>.<column>' or '<table>.<column>:<check>', e.g. surveys.score.nps; "
            "repeatable; added to monitoring.acknowledged)")
    ] = None,
) -> None:
    """Check the input data, join every scored cutoff whose horizon has passed with its
    labels (realized ROC AUC, Brier, lift, lost-revenue capture, vs the naive baselines),
    estimate the others from the calibrated probabilities, measure drift against the
    champion's training reference, and give a verdict: data break (fix the data), performance
    decay (retrain), value drift, population shift, or healthy.
    Exit codes (for a scheduler): 0 healthy, 1 a verdict to act on (signal.json says which),
    2 the monitor could not run (an error; never 1)."""
    try:
        result, cfg, customer_data, files = _run(config, dataset, data, tracking_uri,
                                                 acknowledge_data or [])
    except (typer.Exit, typer.BadParameter):  # usage errors exit with 2 already
        raise
    except Exception as exc:  # noqa: BLE001 - exit code 1 means "act", so no failure
        fail_monitor(exc)  # may leave with Python's default 1: each is an error (2)
    from churnml.monitoring.monitor import summarise

    emit(summarise(result), OutFormat.table, None, "Monitoring: estimated vs realized")
    for note in result.notes:
        err.print(f"  note: {note}", markup=False)
    err.print(f"  wrote {portable(files['performance'].parent)}")
    verdict = print_verdict(result, cfg.monitoring.psi_alarm)
    if verdict.cause == "healthy":
        return
    if retrain and verdict.blocks_retraining:
        err.print("[bold red]refusing to retrain[/bold red]: the verdict is a data break; a "
                  "model trained on it would learn the break. Fix the data, or acknowledge "
                  "a known change with --acknowledge-data <column> (monitoring.acknowledged).")
        raise typer.Exit(code=ALARM_EXIT_CODE)
    if retrain and not verdict.retrain:
        err.print(f"not retraining: the verdict is a {verdict.headline}, not a performance "
                  "or value decay", markup=False)
    elif retrain:
        from churnml.training.train import train

        try:
            with step("retraining (churnml train)"):
                train(cfg, customer_data, console=err)
        except Exception as exc:  # noqa: BLE001 - as above: a failed retrain is an error
            fail_monitor(exc)
    raise typer.Exit(code=ALARM_EXIT_CODE)


def print_verdict(result: Any, psi_alarm: float) -> Any:
    """Print the alarms grouped by cause and the verdict paragraph of a
    :class:`~churnml.monitoring.MonitorResult`; returns its verdict (also used by
    ``churnml demo --monitor``)."""
    verdict = result.verdict
    if verdict.cause == "healthy":
        err.print(f"[green]no alarm[/green]: data checks passed, performance within margins, "
                  f"no drift past PSI {psi_alarm} (age features exempt)")
    for line in verdict.grouped():
        err.print(("[bold red]alarm[/bold red] " if not line.startswith(" ") else "")
                  + escape(line))
    err.print(escape(verdict.paragraph()), soft_wrap=True)
    return verdict


def _run(config, dataset, data, tracking_uri, acknowledge):  # noqa: ANN001, ANN202 - CLI values
    from churnml.pipeline import monitor_data

    cfg = resolve_config(config, dataset, data)
    if acknowledge:
        cfg = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={
            "acknowledged": [*cfg.monitoring.acknowledged, *acknowledge]})})
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
