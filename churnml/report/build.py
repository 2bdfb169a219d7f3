"""Build the HTML report from the files of an output folder, and log it to MLflow."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from churnml import __version__
from churnml.config import Config
from churnml.io import atomic_write
from churnml.paths import portable
from churnml.report.html import Section, notice, page
from churnml.report.inputs import COHORTS, N_DAY, ReportInputs, kpi_file
from churnml.report.sections import SECTIONS, TOP_CUSTOMERS, TOP_FEATURES, Context

REPORT_FILE = "report.html"
REPORT_ARTIFACT_DIR = "report"  # MLflow artifact folder of the logged report
KPI_GLOB = "kpis_*.csv"


def _kpi_period(out_dir: Path, period: str) -> str:
    """The configured period when its KPI file exists, else the first KPI file found."""
    if (out_dir / kpi_file(period).name).is_file():
        return period
    found = sorted(out_dir.glob(KPI_GLOB))
    return found[0].stem.removeprefix("kpis_") if found else period


def build_report(
    out_dir: str | Path,
    cfg: Config,
    out: str | Path | None = None,
    *,
    top_customers: int = TOP_CUSTOMERS,
    top_features: int = TOP_FEATURES,
    data: Any = None,
) -> Path:
    """Render ``out`` (default ``out_dir/report.html``) from the job's files in ``out_dir``.

    One self-contained HTML file (charts embedded as PNG, inline CSS, no script or external
    URL) with the sections of :data:`churnml.report.sections.SECTIONS`. The metric tables
    (KPIs, cohorts, N-day retention) absent from ``out_dir`` are computed from ``data`` (a
    :class:`~churnml.data.customer_data.CustomerData`, or a function returning it, called
    only then) when given; any other absent input shows which command writes it. Written
    atomically; returns the path.
    """
    out_dir = Path(out_dir)
    out = Path(out) if out is not None else out_dir / REPORT_FILE
    period = _kpi_period(out_dir, cfg.metrics.period)
    inputs = ReportInputs(out_dir)
    if data is not None:
        _compute_absent_metrics(inputs, cfg, period, data)
    ctx = Context(
        inputs=inputs, kpis=kpi_file(period), period=period,
        currency=cfg.data.currency, horizon_days=cfg.churn.horizon_days,
        target_action=cfg.churn.target_action, top_customers=top_customers,
        top_features=top_features, psi_warn=cfg.monitoring.psi_warn,
        psi_alarm=cfg.monitoring.psi_alarm,
    )
    sections = []
    for spec in SECTIONS:
        absent = [f for f in spec.needs(ctx) if ctx.inputs.get(f) is None]
        if absent:
            body = "".join(notice(f"{f.name} not found in {portable(out_dir)}", f.produced_by)
                           for f in absent)
        else:
            body = spec.render(ctx)
        sections.append(Section(spec.id, spec.title, body))
    source = cfg.data.dataset or portable(cfg.data.dir or "")
    subtitle = (f"data: {source} · churn = no {cfg.churn.target_action} within "
                f"{cfg.churn.horizon_days} days · money in {cfg.data.currency}")
    footer = (f"churnml {__version__} · generated {datetime.now():%Y-%m-%d %H:%M} from "
              f"{portable(out_dir)}")
    document = page(f"{cfg.name}: retention and churn report", subtitle, sections, footer)
    return atomic_write(out, lambda p: p.write_text(document, encoding="utf-8"))


def _compute_absent_metrics(inputs: ReportInputs, cfg: Config, period: str, data: Any) -> None:
    """Provide the metric tables absent from the output folder, computed from ``data``."""
    from churnml.metrics.tables import metric_tables

    specs = [s for s in (kpi_file(period), N_DAY, COHORTS) if inputs.absent(s)]
    if not specs:
        return
    customer_data = data() if callable(data) else data
    cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"period": period})})
    tables = metric_tables(customer_data, cfg, [s.name for s in specs])
    for spec in specs:
        inputs.provide(spec, tables[spec.name])


def log_report(path: str | Path, run_id: str | None = None) -> str:
    """Log the report file to MLflow under ``report/``: to run ``run_id`` when given, else to
    the active run. Returns the artifact path. Raises ValueError without a run."""
    import mlflow

    path = Path(path)
    if run_id is not None:
        mlflow.MlflowClient().log_artifact(run_id, str(path), REPORT_ARTIFACT_DIR)
    elif mlflow.active_run() is not None:
        mlflow.log_artifact(str(path), REPORT_ARTIFACT_DIR)
    else:
        raise ValueError("log_report: no active MLflow run; start one or pass run_id")
    return f"{REPORT_ARTIFACT_DIR}/{path.name}"
