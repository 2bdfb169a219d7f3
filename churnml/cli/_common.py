"""Shared CLI pieces: the typer app, common options, config resolution, output."""

from __future__ import annotations

import json
import os
import sys
import warnings
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from pydantic import ValidationError
from rich.console import Console

from churnml.config import Config, DataConfig, config_error, default_config, load_config
from churnml.data.timestamps import parse_iso_timestamp  # noqa: F401 (re-export)
from churnml.paths import portable

app = typer.Typer(
    help="churnml: retention metrics, churn/LTV models and scoring.", no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
# Library messages a churnml user cannot act on, silenced in routine runs unless the user
# sets these variables: MLflow's INFO/WARNING log lines (store migrations, input-example
# validation, its notice on pickled pyfunc models) and artifact download progress bars.
QUIET_ENVIRONMENT = {
    "MLFLOW_LOGGING_LEVEL": "ERROR", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def quiet_libraries() -> None:
    """Apply :data:`QUIET_ENVIRONMENT` (before MLflow is imported; user settings win)."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


class OutFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class Window(StrEnum):
    calendar = "calendar"
    h24 = "24h"


class Mode(StrEnum):
    on = "on"
    on_or_after = "on-or-after"


DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="built-in dataset: cdnow | simulated")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data", help="folder of CSV/Parquet tables (see README)")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (configs/*.yaml)")]
FormatOpt = Annotated[OutFormat, typer.Option("--format", help="table | csv | json")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="also write the result to this file")]


@contextmanager
def step(message: str):
    """Show a spinner on stderr while a long step runs."""
    with err.status(message, spinner="dots"):
        yield
    err.print(f"[green]✓[/green] {message}")


def resolve_config(config: Path | None, dataset: str | None, data: Path | None) -> Config:
    """Config from --config, overridden by --dataset / --data; default: simulated data."""
    if dataset is not None and data is not None:
        raise typer.BadParameter("give --dataset or --data, not both")
    cfg = load_config(config) if config else default_config("simulated")
    if dataset is not None:
        try:
            cfg.data = DataConfig(dataset=dataset, seed=cfg.data.seed,
                                  simulated_customers=cfg.data.simulated_customers)
        except ValidationError as exc:
            raise config_error(exc, names={"dataset": "--dataset"}) from None
    elif data is not None:
        cfg.data = DataConfig(dir=str(data), timezone=cfg.data.timezone,
                              currency=cfg.data.currency, tables=cfg.data.tables,
                              end=cfg.data.end, allowed_roots=cfg.data.allowed_roots)
    return cfg


def load(cfg: Config):
    """Load the config's data; data warnings are printed as ``warning: ...`` lines."""
    from churnml.data.loaders import load_data
    from churnml.data.spark_loader import spark_only
    from churnml.errors import DataWarning
    from churnml.paths import portable

    label = cfg.data.dataset or portable(cfg.data.dir or "") or "Spark tables"
    with printed_warnings(DataWarning), step(f"loading data ({label})"):
        if spark_only(cfg.data):  # the lakehouse config: Spark reads, DuckDB computes
            from churnml.pipeline import load_through_spark

            return load_through_spark(cfg)
        return load_data(cfg)


@contextmanager
def printed_warnings(*categories: type[Warning]):
    """Print warnings of ``categories`` (default: churnml's data and output warnings) raised
    in the block as ``warning: ...`` lines; others pass through unchanged."""
    from churnml.errors import DataWarning, OutputWarning

    categories = categories or (DataWarning, OutputWarning)
    with warnings.catch_warnings(record=True) as caught:
        for category in categories:
            warnings.simplefilter("always", category)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, categories):
                    err.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def period_label(ts: pd.Timestamp, period: str) -> str:
    """Human period label: 2024-05 (month), 2024-Q2, 2024, or the ISO date."""
    if pd.isna(ts):
        return ""
    if period == "month":
        return ts.strftime("%Y-%m")
    if period == "quarter":
        return f"{ts.year}-Q{ts.quarter}"
    if period == "year":
        return str(ts.year)
    return ts.strftime("%Y-%m-%d")


def _records(df: pd.DataFrame) -> list[dict]:
    out = df.astype(object).where(df.notna(), None)
    recs = out.to_dict(orient="records")
    for r in recs:
        for k, v in r.items():
            if isinstance(v, np.generic):
                r[k] = v.item()
            elif isinstance(v, pd.Timestamp):
                r[k] = v.isoformat()
            if isinstance(r[k], float) and not np.isfinite(r[k]):
                r[k] = None
    return recs


def emit(df: pd.DataFrame, fmt: OutFormat, out: Path | None, title: str,
         escape: bool = True) -> None:
    """Print ``df`` as a rich table, CSV or JSON on stdout; optionally write ``out`` too
    (a CSV ``out`` with text cells escaped against spreadsheet formulas unless ``escape`` is
    false)."""
    from churnml.io import write_table

    if fmt == OutFormat.json:
        sys.stdout.write(json.dumps(_records(df), indent=1) + "\n")
    elif fmt == OutFormat.csv:
        df.to_csv(sys.stdout, index=False)
    else:  # split into column groups that fit the terminal (or $COLUMNS when piped)
        from churnml.cli._tables import print_table

        print_table(df, title, _cell)
    if out is not None:
        if out.suffix.lower() == ".json":
            from churnml.io import atomic_write

            atomic_write(out, lambda p: p.write_text(json.dumps(_records(df), indent=1)))
        else:
            write_table(df, out, escape=escape)
        err.print(f"[green]✓[/green] wrote {portable(out)}")


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    return str(v)


def _label_periods(df: pd.DataFrame, period: str) -> pd.DataFrame:
    df = df.copy()
    if "period" in df:
        df["period"] = df["period"].map(lambda t: period_label(t, period))
    return df


def check_output_file(path: Path | None) -> None:
    """Before any work: an output file named by a flag (``--out``, ``--log``) can be
    written, and a folder there (e.g. of the user's own files) is an error naming it, left
    as it is (:meth:`churnml.outputs.OutputSet.check`)."""
    if path is not None:
        from churnml.outputs import OutputSet

        OutputSet({"out": path}).check()


def warn_trust_pickle(path: str | Path) -> None:
    """The warning printed whenever trusted pickles may be loaded (``--trust-pickle``,
    ``scoring.trust_pickle``): loading a pickle runs the code it holds."""
    err.print("[yellow]warning:[/yellow] --trust-pickle: pickled models in "
              f"{portable(path)} will be loaded, and loading a pickle runs the code it holds")


def fail(exc: Exception) -> None:
    """Print ``error: <exc>`` (its text verbatim: ``[name]`` is not rich markup) and exit 2."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
    raise typer.Exit(code=2)
