"""The output files the report reads (the main job's output-file contract) and their loader.

Every file is optional: :class:`ReportInputs` returns ``None`` for an absent file, so a
section can say what to run instead of failing. A file that exists but lacks a contract
column raises :class:`~churnml.errors.DataValidationError` naming the file and the column.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from churnml.errors import DataValidationError


@dataclass(frozen=True)
class OutputFile:
    """One file of the contract: name under the output folder, required columns, producer."""

    name: str
    columns: tuple[str, ...]
    produced_by: str  # the command that writes it, shown when the file is absent


N_DAY = OutputFile("n_day_retention.csv", ("day", "retention", "window", "mode"), "churnml demo")
COHORTS = OutputFile("cohorts.csv", ("cohort", "cohort_size"), "churnml demo")
BACKTEST_METRICS = OutputFile("backtest_metrics.csv", (), "churnml train")
PREDICTIONS = OutputFile(
    "backtest_predictions.parquet",
    ("customer_id", "churned", "churn_probability", "baseline_probability", "ltv_actual",
     "ltv_predicted", "value_if_retained", "baseline_ltv"),
    "churnml train",
)
IMPORTANCE = OutputFile("feature_importance.csv", ("feature", "importance", "model"),
                        "churnml train")
SCORES = OutputFile(
    "scores.parquet",
    ("customer_id", "churn_probability", "expected_value", "value_if_retained",
     "value_at_risk", "rank",
     "risk_segment", "reasons", "suggested_action"),
    "churnml score",
)
SEGMENTS = OutputFile(
    "segment_summary.csv",
    ("risk_segment", "customers", "value_at_risk", "mean_churn_probability",
     "suggested_action"),
    "churnml score",
)
MONITOR_PERFORMANCE = OutputFile(
    "monitoring/performance.csv",
    ("cutoff", "matured", "est_roc_auc", "est_roc_auc_low", "est_roc_auc_high", "est_brier",
     "est_brier_low", "est_brier_high"),
    "churnml monitor",
)
MONITOR_DRIFT = OutputFile("monitoring/drift.csv", ("cutoff", "kind", "column", "psi", "level"),
                           "churnml monitor")
MONITOR_QUALITY = OutputFile(
    "monitoring/quality.csv", ("cutoff", "table", "column", "check", "level", "text"),
    "churnml monitor")
MONITOR_SIGNAL = "monitoring/signal.json"  # the verdict (read as JSON, optional)
KPI_COLUMNS = ("period",)  # KPI columns absent from the file (e.g. no surveys) show "no data"


def kpi_file(period: str) -> OutputFile:
    """``kpis_<period>.csv`` written by :func:`churnml.metrics.kpi_table`."""
    return OutputFile(f"kpis_{period}.csv", KPI_COLUMNS, "churnml demo")


def read_csv_text(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def read_output(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet output file."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


@dataclass
class ReportInputs:
    """Lazy, cached access to the files under ``out_dir``."""

    out_dir: Path
    _cache: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    def path(self, spec: OutputFile) -> Path:
        return self.out_dir / spec.name

    def absent(self, spec: OutputFile) -> bool:
        return spec.name not in self._cache and not self.path(spec).is_file()

    def provide(self, spec: OutputFile, frame: pd.DataFrame) -> None:
        """Use ``frame`` as the (absent) file ``spec``: typed as if written and read back."""
        self._cache[spec.name] = read_csv_text(frame.to_csv(index=False)) if spec.name.endswith(
            ".csv") else frame

    def get(self, spec: OutputFile) -> pd.DataFrame | None:
        """The file as a DataFrame, ``None`` when absent; contract columns are checked."""
        if spec.name not in self._cache:
            path = self.path(spec)
            frame = read_output(path) if path.is_file() else None
            if frame is not None:
                missing = [c for c in spec.columns if c not in frame.columns]
                if missing:
                    raise DataValidationError(
                        str(path), ", ".join(missing),
                        f"missing column(s); the report needs {list(spec.columns)}",
                    )
            self._cache[spec.name] = frame
        return self._cache[spec.name]
