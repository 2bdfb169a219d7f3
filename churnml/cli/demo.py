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

DEMO_COLUMNS = [
    "period", "customers_start", "new_customers", "customers_end", "retention_rate",
    "churn_rate", "active_customers", "revenue", "arpu", "repeat_purchase_rate", "nps",
]


@app.command()
def demo(
    dataset: DatasetOpt = None,
    config: ConfigOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="where outputs go")] = None,
) -> None:
    """Run the main job end to end on an embedded dataset and say where everything went."""
    from churnml.pipeline import run_demo

    try:
        cfg = resolve_config(config, dataset, None)
        target = out_dir or Path(cfg.output_dir)
        customer_data = load(cfg)
        result = run_demo(customer_data, cfg, target, console=err)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    kpis = result.kpis[[c for c in DEMO_COLUMNS if c in result.kpis]]
    emit(_label_periods(kpis, cfg.metrics.period), OutFormat.table, None,
         f"{customer_data.name}: KPIs per {cfg.metrics.period}")
    for what, path in result.files.items():
        err.print(f"  {what:<12} {path}")
