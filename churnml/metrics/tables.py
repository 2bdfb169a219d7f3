"""The metric tables of the main job, by output file name: what ``churnml demo`` writes and
what ``churnml report`` computes from the data when those files are absent."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from churnml.config import Config
from churnml.data.customer_data import CustomerData

WINDOWS = ("calendar", "24h")
MODES = ("on", "on_or_after")
N_DAY_FILE = "n_day_retention.csv"
COHORTS_FILE = "cohorts.csv"


def kpi_file_name(period: str) -> str:
    return f"kpis_{period}.csv"


def metric_file_names(cfg: Config) -> list[str]:
    """File names of the job's metric tables for ``cfg``."""
    return [kpi_file_name(cfg.metrics.period), N_DAY_FILE, COHORTS_FILE]


def metric_tables(
    data: CustomerData, cfg: Config, names: Iterable[str] | None = None
) -> dict[str, pd.DataFrame]:
    """File name -> table of the job's metrics (``names``: only these; default all):
    KPIs per ``cfg.metrics.period``, N-day retention (calendar and 24 h windows, "on" and
    "on or after" day N; columns ``window`` and ``mode`` say which) and the cohort table."""
    from churnml.metrics import cohort_table, kpi_table, n_day_retention

    period = cfg.metrics.period
    wanted = set(metric_file_names(cfg) if names is None else names)
    out: dict[str, pd.DataFrame] = {}
    if kpi_file_name(period) in wanted:
        out[kpi_file_name(period)] = kpi_table(data, period=period, by=None, churn=cfg.churn,
                                               voice=cfg.voice)
    if N_DAY_FILE in wanted:
        curves = [
            n_day_retention(data, days=cfg.metrics.retention_days, window=window, mode=mode,
                            churn=cfg.churn).assign(window=window, mode=mode)
            for window in WINDOWS for mode in MODES
        ]
        out[N_DAY_FILE] = pd.concat(curves, ignore_index=True)
    if COHORTS_FILE in wanted:
        out[COHORTS_FILE] = cohort_table(data, period=period, churn=cfg.churn).reset_index()
    return out
