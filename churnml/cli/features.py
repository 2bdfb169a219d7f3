"""`churnml features`: point-in-time features (and labels) written to a table file."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from churnml.cli._common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    app,
    err,
    fail,
    load,
    parse_iso_timestamp,
    resolve_config,
    step,
)
from churnml.config import Config
from churnml.errors import ChurnmlError

FEATURES_FILE = "features.parquet"  # default output (under output_dir) without labels
PANEL_FILE = "panel.parquet"  # default output with --labels
RANGE_FREQ = "MS"  # step of a START:END range without one: month starts
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


def parse_cutoffs(text: str) -> pd.DatetimeIndex:
    """Cutoffs from ``--cutoffs``: a comma list of ISO 8601 timestamps, or a range of ISO
    dates ``START:END[:FREQ]`` (both ends included when on the grid; ``FREQ`` a pandas offset
    alias, default month starts), e.g. ``2024-01-01:2024-06-01:MS``."""
    text = text.strip()
    parts = text.split(":")
    if "," not in text and len(parts) in (2, 3) and all(DATE.match(p) for p in parts[:2]):
        freq = parts[2] if len(parts) == 3 else RANGE_FREQ
        try:
            cuts = pd.date_range(parts[0], parts[1], freq=freq)
        except ValueError as exc:
            raise ValueError(f"--cutoffs {text!r}: {exc}") from exc
        if len(cuts) == 0:
            raise ValueError(f"--cutoffs {text!r}: the range holds no cutoff")
        return cuts
    try:
        return pd.DatetimeIndex([parse_iso_timestamp(p, "--cutoffs")
                                 for p in text.split(",") if p.strip()])
    except ValueError as exc:
        raise ValueError(
            f"--cutoffs {text!r}: give timestamps separated by commas or a range "
            f"START:END[:FREQ] of dates ({exc})"
        ) from exc


def _cutoffs(cutoff: str | None, cutoffs: str | None) -> pd.DatetimeIndex:
    if (cutoff is None) == (cutoffs is None):
        raise typer.BadParameter("give exactly one of --cutoff or --cutoffs")
    if cutoff is not None:
        return pd.DatetimeIndex([parse_iso_timestamp(cutoff, "--cutoff")])
    return parse_cutoffs(cutoffs or "")


@app.command()
def features(
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    config: ConfigOpt = None,
    cutoff: Annotated[str | None, typer.Option(help="one cutoff, e.g. 2024-06-01")] = None,
    cutoffs: Annotated[
        str | None,
        typer.Option(help="several cutoffs: 2024-03-01,2024-06-01 or a range of dates "
                     "START:END[:FREQ], e.g. 2024-01-01:2024-06-01:MS (monthly)"),
    ] = None,
    labels: Annotated[
        bool, typer.Option("--labels", help="add churned/ltv; only customers at risk")
    ] = False,
    engine: Annotated[
        Engine | None, typer.Option(help="duckdb | spark (default: features.engine)")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="FeatureSpec YAML (default: features.spec)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help=f"output .parquet/.csv/.json (default: <output_dir>/{FEATURES_FILE}, "
                     f"or {PANEL_FILE} with --labels)"),
    ] = None,
) -> None:
    """Features of every customer as known at each cutoff (rows before it only), one row per
    (customer, cutoff); with --labels, joined to the churn and LTV labels of the horizon."""
    from churnml.features import build_features, spec_from_config
    from churnml.io import write_table
    from churnml.labels import build_panel

    try:
        cfg = resolve_config(config, dataset, data)
        if spec is not None:
            cfg.features.spec = str(spec.resolve())
        if engine is not None:
            cfg.features.engine = engine.value
        cuts = _cutoffs(cutoff, cutoffs)
        feature_spec = spec_from_config(cfg.features, cfg.voice,
                                        config.parent if config else None)
        target = out or Path(cfg.output_dir) / (PANEL_FILE if labels else FEATURES_FILE)
        what = "features and labels" if labels else "features"
        _check_target(target, cfg.features.engine == "spark")
        if cfg.features.engine == "spark":
            _spark_features(cfg, cuts, feature_spec, labels, target, what)
            return
        customer_data = load(cfg)
        options: dict[str, Any] = {"threads": cfg.features.threads,
                                   "memory_limit": cfg.features.memory_limit}
        with step(f"building {what} at {len(cuts)} cutoff(s) on {cfg.features.engine}"):
            if labels:
                table = build_panel(customer_data, cuts, feature_spec, cfg.churn, **options)
            else:
                table = build_features(customer_data, cuts, feature_spec, **options)
        with step(f"writing {target}"):
            write_table(table, target)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    _report(len(table), table["customer_id"].nunique(), table["cutoff"].nunique(),
            table.shape[1], labels)


def _check_target(target: Path, spark: bool) -> None:
    """Before any work: ``--out`` can be written, and replaces nothing churnml did not write
    (a folder there is an error, unless it is a Parquet folder an earlier Spark run wrote)."""
    from churnml.io import check_spark_target
    from churnml.outputs import OutputSet

    if spark:
        check_spark_target(target)
    else:
        OutputSet({"features": target}).check()


def _report(rows: int, customers: int, n_cutoffs: int, columns: int, labels: bool) -> None:
    n_features = columns - 2 - (2 if labels else 0)
    err.print(
        f"{rows:,} rows: {customers:,} customers x {n_cutoffs} cutoff(s), {n_features} features"
        + (", labels churned and ltv" if labels else "")
    )


def _spark_features(cfg: Config, cuts: pd.DatetimeIndex, feature_spec: Any, labels: bool,
                    target: Path, what: str) -> None:
    from churnml.pipeline import spark_features_job, spark_job

    with spark_job(cfg) as (_, spark_data), step(
            f"building {what} at {len(cuts)} cutoff(s) on spark, writing {target}"):
        counts = spark_features_job(cfg, spark_data, cuts, feature_spec, labels, target)
    _report(counts["rows"], counts["customers"], counts["cutoffs"], counts["columns"], labels)
