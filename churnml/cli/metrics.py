"""`churnml metrics` and `churnml retention`."""

from __future__ import annotations

from typing import Annotated

import typer

from churnml.cli._common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    FormatOpt,
    Mode,
    OutFormat,
    OutOpt,
    Window,
    _label_periods,
    app,
    check_output_file,
    emit,
    fail,
    load,
    resolve_config,
    step,
)
from churnml.errors import ChurnmlError


@app.command()
def metrics(
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    config: ConfigOpt = None,
    period: Annotated[str | None, typer.Option(help="day|week|month|quarter|year")] = None,
    by: Annotated[str | None, typer.Option(help="segment column (customers table) or cohort")]
    = None,
    fmt: FormatOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """Retention KPIs per period: retention/churn rate, active customers, revenue, ARPU,
    repeat purchase rate, LTV, NPS/CSAT/CES, MAU, engagement and referral rate."""
    from churnml.metrics import kpi_table

    try:
        cfg = resolve_config(config, dataset, data)
        check_output_file(out)
        period = period or cfg.metrics.period
        by = by or cfg.metrics.by
        customer_data = load(cfg)
        with step(f"computing KPIs per {period}"):
            kpis = kpi_table(customer_data, period=period, by=by, churn=cfg.churn,
                             voice=cfg.voice)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    emit(_label_periods(kpis, period), fmt, out, f"{customer_data.name}: KPIs per {period}",
         escape=cfg.csv_escape_formulas)


@app.command()
def retention(
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    config: ConfigOpt = None,
    days: Annotated[str, typer.Option(help="comma-separated days, e.g. 1,7,30")] = "1,7,30",
    window: Annotated[Window, typer.Option(help="calendar days or 24-hour windows")]
    = Window.calendar,
    mode: Annotated[Mode, typer.Option(help="'on' day N or 'on-or-after' (rolling)")] = Mode.on,
    source: Annotated[str, typer.Option(help="target | transactions | events | any")]
    = "target",
    period: Annotated[str | None, typer.Option(help="split cohorts by this period")] = None,
    by: Annotated[str | None, typer.Option(help="segment column")] = None,
    fmt: FormatOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """N-day retention of first-action cohorts (on day N, or rolling: on day N or later)."""
    from churnml.metrics import n_day_retention

    try:
        day_list = [int(d) for d in days.split(",") if d.strip()]
    except ValueError:
        fail(ValueError(f"--days must be comma-separated integers, got {days!r}"))
    try:
        cfg = resolve_config(config, dataset, data)
        check_output_file(out)
        customer_data = load(cfg)
        with step("computing N-day retention"):
            res = n_day_retention(
                customer_data, days=day_list, window=window.value,
                mode=mode.value.replace("-", "_"), source=source, period=period, by=by,
                churn=cfg.churn,
            )
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    if period:
        res = _label_periods(res, period)
    emit(res, fmt, out, f"{customer_data.name}: {mode.value} day-N retention ({window.value})",
         escape=cfg.csv_escape_formulas)
