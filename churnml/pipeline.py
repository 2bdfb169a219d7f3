"""The main job, end to end: each stage is a plain function; ``run_demo`` chains them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from churnml.config import Config
from churnml.data.customer_data import CustomerData
from churnml.io import write_table


@dataclass
class DemoResult:
    """Where the demo wrote what, and the main tables it computed."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    kpis: pd.DataFrame | None = None


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


def run_demo(data: CustomerData, cfg: Config, out_dir: str | Path,
             console: Console | None = None) -> DemoResult:
    """Run every stage of the main job on ``data`` and write the outputs under ``out_dir``."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    result = DemoResult(out_dir=out_dir)
    stages = [("retention metrics", metrics_stage)]
    for label, stage in stages:
        with console.status(f"{label} …", spinner="dots"):
            stage(data, cfg, out_dir, result)
        console.print(f"[green]✓[/green] {label}")
    return result
