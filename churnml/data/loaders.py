"""Loaders: a folder of CSV/Parquet files, mapped onto the data contract, validated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from churnml.config import (
    Config,
    DataConfig,
    Lookup,
    TableSource,
    ValidationConfig,
    VoiceConfig,
)
from churnml.data.customer_data import CustomerData
from churnml.data.schema import TABLES, columns_present
from churnml.errors import ConfigError, DataValidationError
from churnml.paths import confined

SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv")


def _find_file(directory: Path, table: str) -> Path | None:
    for suffix in SUFFIXES:
        p = directory / f"{table}{suffix}"
        if p.exists():
            return p
    return None


def _id_raw_columns(table: str | None, source: TableSource | None) -> list[str]:
    """Raw names of the id columns of ``table`` under the mapping of ``source``."""
    if table is None:
        return []
    columns = source.columns if source else {}
    return [columns.get(c, c) for c, kind in TABLES[table].columns.items() if kind == "id"]


def read_raw(path: Path, source: TableSource | None = None, table: str | None = None
             ) -> pd.DataFrame:
    """Read one CSV/TSV/Parquet file as it is (no renaming, no parsing); the id columns of
    ``table`` are read as text (``007`` stays ``007``). Errors name the file and the fix."""
    name = path.name.lower()
    label = table or path.stem
    if name.endswith(".parquet"):
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow errors derive from these
            raise DataValidationError(label, None, f"{path}: not a readable Parquet file "
                                      f"({type(exc).__name__}: {exc})") from exc
    options = dict(source.csv_options) if source else {}
    if name.endswith(".tsv"):
        options.setdefault("sep", "\t")
    ids = _id_raw_columns(table, source)
    dtype = options.get("dtype")
    if ids and (dtype is None or isinstance(dtype, dict)):
        options["dtype"] = {**{c: "str" for c in ids}, **(dtype or {})}
    try:
        if ids and not {"na_values", "keep_default_na", "na_filter"} & set(options):
            options.update(_text_id_na(path, options, ids))
        return pd.read_csv(path, **options)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(
            label, None, f"{path}: the file is empty (no header row); export the table with "
            "its column names, or remove the file if the table is optional"
        ) from exc
    except UnicodeDecodeError as exc:
        enc = options.get("encoding", "utf-8")
        raise DataValidationError(
            label, None, f"{path}: not {enc} text (byte {exc.object[exc.start]:#04x} at "
            f"position {exc.start}); set the file's encoding, e.g. data.tables.{label}."
            "csv_options: {encoding: latin-1} (or cp1252, utf-16)"
        ) from exc
    except TypeError as exc:  # a read_csv option of the wrong kind
        raise ConfigError(f"data.tables.{label}.csv_options: {exc}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(label, None, f"{path}: cannot be read as CSV with "
                                  f"csv_options {options}: {exc}") from exc


# pandas.read_csv's default missing-value markers (its documented ``na_values`` default)
DEFAULT_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def _text_id_na(path: Path, options: dict, ids: list[str]) -> dict:
    """``read_csv`` options under which an id column's only missing value is an empty cell
    (``NaN``, ``NA``, ``null`` are ids like any text) while every other column keeps
    pandas' default missing-value markers (:data:`DEFAULT_NA`)."""
    header = pd.read_csv(path, **{**options, "nrows": 0}).columns
    na = {str(c): (list(DEFAULT_NA) if c not in ids else [""]) for c in header}
    return {"keep_default_na": False, "na_values": na}


def expression_columns(table: str, expressions: dict[str, str], columns: list[str],
                       dialect: str = "duckdb") -> dict[str, str]:
    """``{canonical column: SQL in dialect}`` of ``data.tables.<table>.expressions``, each
    checked against the shared allow-list (:func:`churnml.expressions.parse_expression`:
    the raw ``columns``, literals, arithmetic, CASE, scalar functions; no subqueries, tables
    or files). The one definition both loaders (DuckDB here, Spark in
    :mod:`churnml.data.spark_loader`) evaluate."""
    from churnml.expressions import parse_expression, render_expression

    spec = TABLES[table]
    out = {}
    for canon, sql in expressions.items():
        where = f"data.tables.{table}.expressions.{canon}"
        if canon not in spec.columns:
            raise ConfigError(f"{where}: unknown canonical column; the contract has "
                              f"{list(spec.columns)}")
        tree = parse_expression(sql, where=where, columns=columns)
        out[canon] = render_expression(tree, where=where, dialect=dialect)
    return out


def apply_expressions(df: pd.DataFrame, table: str, expressions: dict[str, str]
                      ) -> pd.DataFrame:
    """Compute canonical columns from SQL expressions over the raw columns (e.g.
    ``{"amount": "Quantity * UnitPrice"}``, :func:`expression_columns`), evaluated by
    DuckDB."""
    if not expressions:
        return df
    import duckdb

    from churnml.expressions import quote_identifier

    sql = expression_columns(table, expressions, [str(c) for c in df.columns])
    selects = [f"{expr} AS {quote_identifier(canon)}" for canon, expr in sql.items()]
    con = duckdb.connect()
    try:
        con.register("raw_rows", df)
        computed = con.execute(f"SELECT {', '.join(selects)} FROM raw_rows").df()
    except duckdb.Error as exc:
        raise DataValidationError(table, next(iter(expressions)),
                                  f"expression failed on the data: {exc}") from exc
    finally:
        con.close()
    out = df.drop(columns=[c for c in expressions if c in df.columns])
    computed.index = df.index
    return pd.concat([out, computed], axis=1)


def join_lookups(df: pd.DataFrame, table: str, directory: Path, lookups: list[Lookup],
                 roots: list[str] | None = None) -> pd.DataFrame:
    """Join each lookup file to the raw rows on its key columns (many rows to one), keeping
    the rows' order and index. Errors name the file, the columns and example rows: a key
    column missing on either side, a key repeated in the lookup, a column both files hold,
    rows that find no lookup row. A lookup's path must lie inside ``directory`` or one of
    ``roots`` (:func:`churnml.paths.confined`)."""
    for i, lookup in enumerate(lookups):
        where = f"data.tables.{table}.lookups[{i}]"
        path = confined(directory / lookup.path, [directory, *(roots or [])], f"{where}.path")
        if not path.exists():
            raise FileNotFoundError(f"{where}: file not found: {path}")
        source = TableSource(csv_options=lookup.csv_options)
        right = read_raw(path, source)
        for side, frame in ((f"the {table} file", df), (str(path), right)):
            absent = [c for c in lookup.keys if c not in frame.columns]
            if absent:
                raise DataValidationError(
                    table, absent[0], f"{where}: key column {absent[0]!r} not in {side} "
                    f"(columns present: {', '.join(map(str, frame.columns))})")
        clash = [c for c in right.columns if c in df.columns and c not in lookup.keys]
        if clash:
            raise DataValidationError(
                table, clash[0], f"{where}: column {clash[0]!r} is in both the {table} file "
                f"and {path}; join on it (add it to `keys`) or drop it with csv_options.usecols")
        left_keys, right_keys = df[lookup.keys].copy(), right[lookup.keys].copy()
        for c in lookup.keys:
            if left_keys[c].dtype != right_keys[c].dtype:  # compare as text (7 == "7")
                left_keys[c] = left_keys[c].astype("str")
                right_keys[c] = right_keys[c].astype("str")
        dup = right_keys.duplicated(keep=False)
        if dup.any():
            raise _key_error(table, lookup.keys, f"{where}: key repeated in {path} (a lookup "
                             "names each key once)", right_keys[dup])
        index = pd.MultiIndex.from_frame(right_keys)
        pos = index.get_indexer(pd.MultiIndex.from_frame(left_keys))
        miss = pd.Series(pos < 0, index=df.index)
        if miss.any():
            raise _key_error(table, lookup.keys, f"{where}: no row of {path} has this key",
                             left_keys[miss.to_numpy()])
        extra = right.drop(columns=lookup.keys).iloc[pos]
        extra.index = df.index
        df = pd.concat([df, extra], axis=1)
    return df


def _key_error(table: str, on: list[str], problem: str, bad: pd.DataFrame
               ) -> DataValidationError:
    shown = bad.astype(str).agg("/".join, axis=1)
    return DataValidationError(table, ",".join(on), problem, rows=list(bad.index[:5]),
                               values=list(shown.iloc[:5]), n_rows=len(bad))


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
            f"({columns_present(table, df.columns, columns.values())})",
        )
    return df.rename(columns={raw: canon for canon, raw in columns.items()})



def ids_as_text(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Id columns of a table read from a file as text (Parquet integer ids: ``7`` -> ``"7"``),
    so ids compare the same across tables and formats."""
    from churnml.data.customer_data import id_strings

    for c, kind in TABLES[table].columns.items():
        if kind == "id" and c in df.columns:
            df[c] = id_strings(df[c])
    return df


def load_folder(
    directory: str | Path,
    tables: dict[str, TableSource] | None = None,
    *,
    timezone: str = "UTC",
    currency: str = "USD",
    validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None,
    end: str | pd.Timestamp | None = None,
    roots: list[str] | None = None,
) -> CustomerData:
    """Load the contract tables from ``directory`` and validate them.

    A table is read from ``tables[name].path`` when given, else from ``<name>.parquet``,
    ``<name>.csv``, ``<name>.csv.gz`` or ``<name>.tsv`` in the folder. Only transactions are
    required. Customer ids read from files are text in every table. ``end`` is ``data.end``.
    A table ``path`` must lie inside ``directory`` or one of ``roots`` (``data.allowed_roots``,
    the config's folder; :func:`churnml.paths.confined`).
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
    for name in TABLES:
        source = tables.get(name)
        if source is not None and source.path:
            path = confined(directory / source.path, [directory, *(roots or [])],
                            f"data.tables.{name}.path")
            if not path.exists():
                raise FileNotFoundError(f"{name}: file not found: {path}")
        else:
            path = _find_file(directory, name)
        if path is None:
            frames[name] = None
            continue
        raw = read_raw(path, source, name)
        if name == "transactions" and raw.empty:
            raise DataValidationError(name, None, f"{path}: the file has a header but no rows")
        if source is not None and source.lookups:
            raw = join_lookups(raw, name, directory, source.lookups, roots)
        if source is not None and source.expressions:
            raw = apply_expressions(raw, name, source.expressions)
        mapped = apply_mapping(raw, name, source.columns if source else {}, str(path))
        frames[name] = ids_as_text(mapped, name)
    if frames["transactions"] is None:
        raise DataValidationError(
            "transactions", None,
            f"table is required but no transactions file was found in {directory} "
            f"(looked for transactions{{{', '.join(SUFFIXES)}}})",
        )
    return CustomerData.from_frames(
        **frames, name=directory.name, currency=currency, validation=validation, voice=voice,
        timezone=timezone, sources=tables, end=end,
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
        if data_cfg.end is not None:
            data = replace(data, end_configured=pd.Timestamp(data_cfg.end))
        if data_cfg.churn_shock is not None:
            from churnml.data.scenarios import churn_shock

            shock = data_cfg.churn_shock
            data = churn_shock(data, shock.start, plan=shock.plan,
                               monthly_hazard=shock.monthly_hazard, seed=shock.seed)
        return data
    return load_folder(
        data_cfg.dir, data_cfg.tables, timezone=data_cfg.timezone, currency=data_cfg.currency,
        validation=validation, voice=voice, end=data_cfg.end, roots=data_cfg.roots(),
    )
