"""`churnml demo`: the main job end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churnml.cli._common import (
    ConfigOpt,
    DatasetOpt,
    OutFormat,
    _label_periods,
    app,
    emit,
    err,
    fail,
    load,
    resolve_config,
)
from churnml.errors import ChurnmlError
from churnml.paths import portable, relative

DEMO_COLUMNS = [
    "period", "customers_start", "new_customers", "customers_end", "retention_rate",
    "churn_rate", "active_customers", "revenue", "arpu", "repeat_purchase_rate", "nps",
]


CONFIG_DIR = Path("configs")  # a dataset's own config, when run from the project root


@app.command()
def demo(
    dataset: DatasetOpt = None,
    config: ConfigOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="where outputs go")] = None,
    metrics_only: Annotated[bool, typer.Option("--metrics-only",
                                               help="stop after the metrics and the report")]
    = False,
    monitor: Annotated[bool, typer.Option("--monitor", help="also score the last months' "
                                          "cutoffs and monitor them (score history, drift)")]
    = False,
) -> None:
    """Run the main job end to end — metrics, backtest and training with MLflow, registry,
    scoring, segment export, HTML report — and say where everything went."""
    from churnml.pipeline import run_demo

    if config is None and dataset is not None and (CONFIG_DIR / f"{dataset}.yaml").exists():
        config, dataset = CONFIG_DIR / f"{dataset}.yaml", None
        err.print(f"  using {config}")
    try:
        cfg = resolve_config(config, dataset, None)
        if out_dir is not None:
            cfg.output_dir = str(out_dir)
        customer_data = load(cfg)
        result = run_demo(customer_data, cfg, Path(cfg.output_dir), console=err,
                          model_stages=not metrics_only, monitor=monitor)
    except (ChurnmlError, ValueError, FileNotFoundError, LookupError) as exc:
        fail(exc)
    kpis = result.kpis[[c for c in DEMO_COLUMNS if c in result.kpis]]
    emit(_label_periods(kpis, cfg.metrics.period), OutFormat.table, None,
         f"{customer_data.name}: KPIs per {cfg.metrics.period}")
    if result.scores is not None:
        emit(result.scores.summary, OutFormat.table, None,
             f"Risk segments (value at risk in {cfg.data.currency} over "
             f"{cfg.churn.horizon_days} days)")
    err.rule("where everything went")
    for what, path in result.files.items():
        err.print(f"  {what:<24} {portable(path)}", soft_wrap=True)
    if result.train is not None:
        for reg in result.train.registrations.values():
            err.print(f"  registered {reg.name} v{reg.version} aliases={reg.aliases}",
                      soft_wrap=True)
            err.print(f"    {reg.message}", soft_wrap=True, markup=False)
        err.print(f"  MLflow run {result.train.run_id}: mlflow ui --backend-store-uri "
                  f"{relative(cfg.tracking.uri)}", soft_wrap=True)
    err.print(f"  total {sum(result.seconds.values()):.0f} s", soft_wrap=True)
    if result.monitor is not None:  # --monitor: end with the monitor's verdict
        from churnml.cli.monitor import print_verdict

        err.rule("monitoring verdict")
        print_verdict(result.monitor, cfg.monitoring.psi_alarm)
