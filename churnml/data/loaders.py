"""Loaders: a folder of CSV/Parquet files, mapped onto the data contract, validated."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnml.config import Config, DataConfig, TableSource, ValidationConfig, VoiceConfig
from churnml.data.customer_data import CustomerData
from churnml.data.schema import TABLES
from churnml.errors import DataValidationError

SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv")


def _find_file(directory: Path, table: str) -> Path | None:
    for suffix in SUFFIXES:
        p = directory / f"{table}{suffix}"
        if p.exists():
            return p
    return None


def read_raw(path: Path, source: TableSource | None = None) -> pd.DataFrame:
    """Read one CSV/TSV/Parquet file as it is (no renaming, no parsing)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    options = dict(source.csv_options) if source else {}
    if name.endswith(".tsv"):
        options.setdefault("sep", "\t")
    return pd.read_csv(path, **options)


def apply_mapping(
    df: pd.DataFrame, table: str, columns: dict[str, str], origin: str = ""
) -> pd.DataFrame:
    """Rename raw columns to canonical names (``columns`` maps canonical -> raw)."""
    spec = TABLES[table]
    unknown = [c for c in columns if c not in spec.columns]
    if unknown:
        raise DataValidationError(
            table, unknown[0],
            f"column mapping names unknown canonical column(s) {unknown}; "
            f"the contract has {list(spec.columns)}",
        )
    absent = {canon: raw for canon, raw in columns.items() if raw not in df.columns}
    if absent:
        canon, raw = next(iter(absent.items()))
        raise DataValidationError(
            table, canon,
            f"mapped from raw column {raw!r}, which {origin or 'the input'} does not have "
            f"(columns present: {', '.join(map(str, df.columns))})",
        )
    return df.rename(columns={raw: canon for canon, raw in columns.items()})


def load_folder(
    directory: str | Path,
    tables: dict[str, TableSource] | None = None,
    *,
    timezone: str = "UTC",
    currency: str = "USD",
    validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None,
) -> CustomerData:
    """Load the contract tables from ``directory`` and validate them.

    A table is read from ``tables[name].path`` when given, else from ``<name>.parquet``,
    ``<name>.csv``, ``<name>.csv.gz`` or ``<name>.tsv`` in the folder. Only transactions are
    required.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"data folder not found: {directory}")
    tables = tables or {}
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise DataValidationError(
            unknown[0], None, f"unknown table; expected one of {list(TABLES)}"
        )
    frames: dict[str, pd.DataFrame | None] = {}
    formats: dict[str, str | None] = {}
    for name in TABLES:
        source = tables.get(name)
        if source is not None and source.path:
            path = directory / source.path
            if not path.exists():
                raise FileNotFoundError(f"{name}: file not found: {path}")
        else:
            path = _find_file(directory, name)
        if path is None:
            frames[name] = None
            continue
        raw = read_raw(path, source)
        frames[name] = apply_mapping(raw, name, source.columns if source else {}, str(path))
        formats[name] = source.ts_format if source else None
    if frames["transactions"] is None:
        raise DataValidationError(
            "transactions", None,
            f"table is required but no transactions file was found in {directory} "
            f"(looked for transactions{{{', '.join(SUFFIXES)}}})",
        )
    return CustomerData.from_frames(
        **frames, name=directory.name, currency=currency, validation=validation, voice=voice,
        timezone=timezone, ts_formats=formats,
    )


def load_data(config: Config | DataConfig) -> CustomerData:
    """Load what a config points at: a built-in dataset or a folder."""
    from churnml.data.datasets import load_dataset

    full = config if isinstance(config, Config) else None
    data_cfg = config.data if isinstance(config, Config) else config
    validation = full.validation if full else None
    voice = full.voice if full else None
    if data_cfg.dataset is not None:
        data = load_dataset(
            data_cfg.dataset, n_customers=data_cfg.simulated_customers, seed=data_cfg.seed
        )
        if data_cfg.churn_shock is not None:
            from churnml.data.scenarios import churn_shock

            shock = data_cfg.churn_shock
            data = churn_shock(data, shock.start, plan=shock.plan,
                               monthly_hazard=shock.monthly_hazard, seed=shock.seed)
        return data
    return load_folder(
        data_cfg.dir, data_cfg.tables, timezone=data_cfg.timezone, currency=data_cfg.currency,
        validation=validation, voice=voice,
    )
