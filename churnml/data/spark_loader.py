"""The contract tables read by Spark where they live, mapped and validated on Spark.

Each table comes from ``data.tables.<t>.table`` (a Spark table, ``catalog.schema.table``),
``data.tables.<t>.path`` (a Parquet, Delta or CSV file/folder/URI, relative to ``data.dir``
unless absolute or a URI), ``<data.dir>/<t>.parquet|.csv|...``, or, for a built-in dataset,
from pandas staged as Parquet (local masters) so that no table travels through the driver.

Column mapping and normalisation are Spark projections (timestamps -> ``TIMESTAMP_NTZ`` in
``data.timezone``, numbers -> double, categories -> string, ids of one type across tables).
The contract is checked by one aggregate per table (counts of every rule, plus the row
count, time span and a content hash for the MLflow fingerprint); only a failing rule fetches
its example rows. Problems are reported with the messages of
:mod:`churnml.data.validation`; Spark rows have no position, so an example row is named by
its customer id.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.config import Config, DataConfig, TableSource, ValidationConfig, VoiceConfig
from churnml.data import validation as rules_text
from churnml.data.customer_data import CustomerData
from churnml.data.loaders import SUFFIXES, apply_mapping, expression_columns
from churnml.data.schema import NULLABLE, SURVEY_KINDS, TABLES, columns_present
from churnml.data.spark_names import quote_table_name
from churnml.data.timestamps import ISO, TimestampProblem, infer_family
from churnml.data.validation import raise_if_any
from churnml.errors import ConfigError, DataValidationError
from churnml.errors import _show as show_value
from churnml.paths import confined

MAX_EXAMPLES = 5
FORMAT_SAMPLE = 1_000  # distinct values of a text timestamp column its format is inferred from
# loader options of the pandas route that the Spark route does not implement
UNSUPPORTED = ("lookups",)
ID_COLUMNS = ("customer_id", "referred_by")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"  # a timestamp string with a UTC offset
DELTA_LOG = "_delta_log"
# strftime directives -> Spark datetime patterns (for data.tables.<t>.ts_format)
STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss",
            "%f": "SSSSSS", "%y": "yy", "%b": "MMM", "%B": "MMMM", "%I": "hh", "%p": "a",
            "%z": "Z", "%j": "DDD", "%%": "%"}


@dataclass(frozen=True)
class SparkData:
    """The contract tables as validated Spark DataFrames, with their statistics.

    ``stats[table]`` holds ``rows``, ``hash`` (bit-xor of the rows' ``xxhash64``, hex) and
    ``lo`` / ``hi`` (earliest / latest timestamp of its ``ts``, or subscription start/end).
    """

    frames: dict[str, Any]
    name: str = "data"
    currency: str = "USD"
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tables(self) -> dict[str, Any]:
        """The tables present, by contract name (Spark DataFrames)."""
        return dict(self.frames)

    @property
    def start(self) -> pd.Timestamp:
        """Earliest transaction/event/survey timestamp."""
        return min(s["lo"] for t, s in self.stats.items() if "ts" in TABLES[t].columns
                   and pd.notna(s["lo"]))

    @property
    def end(self) -> pd.Timestamp:
        """Latest transaction/event/survey timestamp."""
        return max(s["hi"] for t, s in self.stats.items() if "ts" in TABLES[t].columns
                   and pd.notna(s["hi"]))

    def fingerprint(self) -> dict[str, object]:
        """Row counts, date range and a content hash per table (as
        :meth:`CustomerData.fingerprint <churnml.data.customer_data.CustomerData.fingerprint>`;
        the hash is Spark's ``xxhash64``, not pandas')."""
        fp: dict[str, object] = {t: {"rows": s["rows"], "hash": s["hash"]}
                                 for t, s in self.stats.items()}
        fp["start"], fp["end"] = str(self.start), str(self.end)
        return fp


# --------------------------------------------------------------------------- reading


def spark_format(path: str, source: TableSource | None) -> str:
    """``parquet``, ``delta`` or ``csv``: the configured format, else by the path."""
    if source is not None and source.format is not None:
        return source.format
    lower = path.lower().rstrip("/")
    if lower.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    if not URI.match(path) and (Path(path) / DELTA_LOG).is_dir():
        return "delta"
    return "parquet"


def _resolve(path: str, directory: str | None, roots: list[str] | None = None,
             table: str = "") -> str:
    """A table path relative to ``directory``; a local one must lie inside ``roots``
    (``data.dir``, the config's folder, ``data.allowed_roots``; URIs are not confined)."""
    if URI.match(path) and not path.startswith("file:"):
        return path
    local = Path(path.removeprefix("file://").removeprefix("file:"))
    full = local if local.is_absolute() or directory is None else Path(directory) / local
    if roots:  # a config with no folder, dir or allowed roots: paths given in Python
        confined(full, roots, f"data.tables.{table}.path")
    return path if URI.match(path) else str(full)


def _find(directory: str, table: str) -> str | None:
    for suffix in (*SUFFIXES, ""):  # "" : a Parquet/Delta folder named after the table
        candidate = Path(directory) / f"{table}{suffix}"
        if candidate.exists() and (suffix or candidate.is_dir()):
            return str(candidate)
    return None


def read_source(spark: Any, table: str, source: TableSource | None, directory: str | None,
                roots: list[str] | None = None) -> tuple[Any, str] | None:
    """``(raw Spark DataFrame, origin)`` of one contract table, or None when absent."""
    from pyspark.errors import AnalysisException

    if source is not None and source.table is not None:
        name = quote_table_name(source.table)
        try:
            return spark.table(name), f"Spark table {source.table}"
        except AnalysisException as exc:
            raise DataValidationError(table, None, f"cannot read Spark table "
                                      f"{source.table!r}: {str(exc).splitlines()[0]}") from exc
    if source is not None and source.path is not None:
        path = _resolve(source.path, directory, roots, table)
    elif directory is not None:
        path = _find(directory, table)
        if path is None:
            return None
    else:
        return None
    fmt = spark_format(path, source)
    reader = spark.read.format(fmt)
    if fmt == "csv":
        options = {"header": "true", **{k: str(v) for k, v in (
            source.csv_options if source else {}).items()}}
        if path.lower().endswith(".tsv"):
            options.setdefault("sep", "\t")
        options = {("sep" if k == "delimiter" else k): v for k, v in options.items()}
        reader = reader.options(**options)
    try:
        if fmt == "csv" and "inferSchema" not in options:
            reader = reader.schema(_csv_schema(reader, path, table, source))
        return reader.load(path), path
    except AnalysisException as exc:
        raise DataValidationError(table, None, f"cannot read {fmt} {path!r}: "
                                  f"{str(exc).splitlines()[0]}") from exc


def _csv_schema(reader: Any, path: str, table: str, source: TableSource | None) -> Any:
    """The schema a CSV is read with: numbers inferred, as pandas reads a CSV on the DuckDB
    route (so ``Quantity * UnitPrice`` multiplies numbers), but the id and timestamp columns
    kept as text (``007`` stays ``007``; timestamps are parsed by the contract's rules). One
    inference pass over the file."""
    from pyspark.sql.types import StringType, StructField, StructType

    mapping = source.columns if source else {}
    text = {mapping.get(c, c) for c, kind in TABLES[table].columns.items()
            if kind in ("id", "timestamp")}
    inferred = reader.option("inferSchema", "true").load(path).schema
    return StructType([StructField(f.name, StringType()) if f.name in text else f
                       for f in inferred.fields])


def stage_pandas(spark: Any, frames: dict[str, pd.DataFrame], folder: str | Path | None
                 ) -> dict[str, Any]:
    """pandas tables as Spark DataFrames: written to Parquet in ``folder`` and read back by
    Spark (no table passes through the driver JVM), or, without a folder (a cluster cannot
    read the driver's disk), converted through Arrow."""
    from churnml.engine.spark_engine import from_pandas

    out = {}
    for name, frame in frames.items():
        if folder is None:
            out[name] = from_pandas(spark, frame)
            continue
        path = Path(folder) / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        out[name] = spark.read.parquet(str(path))
    return out


# --------------------------------------------------------------------------- validation


@dataclass
class _Rule:
    column: str
    problem: str
    bad: Any  # Column: the row breaks the rule
    shown: Any  # Column: the value shown


def _spark_pattern(fmt: str) -> str:
    out, i = [], 0
    while i < len(fmt):
        token = fmt[i:i + 2]
        if token in STRFTIME:
            out.append(STRFTIME[token])
            i += 2
        else:
            char = fmt[i]
            out.append(f"'{char}'" if char.isalpha() else char)
            i += 1
    return "".join(out)


def _timestamp(raw: Any, dtype: str, tz: str, session_tz: str,
               fmt: str | list[str] | None) -> Any:
    """A raw column as naive wall-clock time in ``tz``."""
    from pyspark.sql import functions as F

    def to_tz(ntz_in_session: Any) -> Any:
        if session_tz == tz:
            return ntz_in_session
        return F.convert_timezone(F.lit(session_tz), F.lit(tz), ntz_in_session)

    if dtype == "timestamp_ntz":
        return raw
    if dtype in ("timestamp", "date"):
        return to_tz(raw.cast("timestamp_ntz")) if dtype == "timestamp" else raw.cast(
            "timestamp_ntz")
    text = F.trim(raw.cast("string"))
    formats = [f for f in ([fmt] if isinstance(fmt, str) else list(fmt or []))
               if f.upper() != ISO.upper()]
    if formats:  # each value read by the first format that fits
        parsed = [F.try_to_timestamp(text, F.lit(_spark_pattern(f))).cast("timestamp_ntz")
                  for f in formats]
        parsed = [to_tz(p) if "%z" in f else p for p, f in zip(parsed, formats, strict=True)]
        return parsed[0] if len(parsed) == 1 else F.coalesce(*parsed)
    # naive strings are wall-clock time already; those with an offset are instants
    parsed = F.try_to_timestamp(text).cast("timestamp_ntz")
    return F.when(text.rlike(OFFSET), to_tz(parsed)).otherwise(parsed)


def infer_format(sdf: Any, table: str, col: str) -> list[str] | None:
    """The formats of a text timestamp column without ``ts_format``: the one family of
    :data:`~churnml.data.timestamps.FORMAT_FAMILIES` that reads its first
    :data:`FORMAT_SAMPLE` distinct values, chosen by the DuckDB route's rule
    (:func:`~churnml.data.timestamps.infer_family`; ambiguous values raise its problem as
    a :class:`DataValidationError`; with mixed values the family reading the most is used).
    None: ISO 8601. A value the family does not read is an ``unparseable timestamp`` row."""
    from pyspark.sql import functions as F

    rows = (sdf.select(F.trim(F.col(f"`{col}`").cast("string")).alias("v"))
            .where("v IS NOT NULL").distinct().limit(FORMAT_SAMPLE).collect())
    values = pd.Series([r["v"] for r in rows], dtype=object)
    if values.empty:
        return None
    try:
        family = infer_family(values)
    except TimestampProblem as exc:
        if exc.family is not None:  # mixed: the family reading most values; the rows it
            family = exc.family  # does not read are counted as unparseable timestamps
            return None if family.date == ISO else list(family.formats)
        shown = exc.values or values[:MAX_EXAMPLES].tolist()
        raise DataValidationError(table, col, exc.problem, values=shown[:MAX_EXAMPLES],
                                  n_rows=exc.n_rows) from exc
    return None if family.date == ISO else list(family.formats)


def _normalise(sdf: Any, table: str, tz: str, session_tz: str, fmt: str | None,
               validation: ValidationConfig, voice: VoiceConfig, now: pd.Timestamp,
               problems: list[DataValidationError]
               ) -> tuple[list[Any], list[_Rule], dict[str, Any]]:
    """Normalised columns (contract columns first, extra ones after, as read) and rules;
    a text timestamp column's format is inferred (:func:`infer_format`) unless ``fmt``."""
    from pyspark.sql import functions as F

    spec = TABLES[table]
    types = dict(sdf.dtypes)
    lo = pd.Timestamp(validation.min_ts)
    hi = now.normalize() + pd.Timedelta(days=validation.max_ts_days_ahead + 1)
    cols: dict[str, Any] = {}
    rules: list[_Rule] = []
    for col, kind in spec.columns.items():
        if col not in types:
            continue
        raw = F.col(f"`{col}`")
        nullable = (table, col) in NULLABLE or col not in spec.required
        if kind == "id":
            cols[col] = raw
            if not nullable:
                hint = rules_text.MISSING_ID_HINT if col == "customer_id" else ""
                rules.append(_Rule(col, rules_text.MISSING_ID + hint, raw.isNull(), raw))
        elif kind == "timestamp":
            formats: str | list[str] | None = fmt
            text = types[col] not in ("timestamp_ntz", "timestamp", "date")
            if fmt is None and text:
                try:
                    formats = infer_format(sdf, table, col)
                except DataValidationError as exc:  # reported instead of every row
                    problems.append(exc)
                    text = False
            parsed = _timestamp(raw, types[col], tz, session_tz, formats)
            cols[col] = parsed
            if text:
                rules.append(_Rule(col, "unparseable timestamp" + (
                    f" (expected format {fmt!r})" if fmt else ""),
                    raw.isNotNull() & parsed.isNull(), raw.cast("string")))
            if not nullable:
                rules.append(_Rule(col, "missing timestamp", raw.isNull(), raw))
            out_of_range = (parsed < F.lit(lo.to_pydatetime()).cast("timestamp_ntz")) | (
                parsed > F.lit(hi.to_pydatetime()).cast("timestamp_ntz"))
            rules.append(_Rule(col, f"timestamp out of range [{lo.date()}, {hi.date()}]",
                               out_of_range, parsed.cast("string")))
        elif kind == "number":
            numeric = types[col] in ("double", "float", "bigint", "int", "smallint",
                                     "tinyint") or types[col].startswith("decimal")
            value = raw.cast("double") if numeric else F.expr(
                f"try_cast(`{col}` AS DOUBLE)")
            cols[col] = value
            if not numeric:
                rules.append(_Rule(col, "not numeric", raw.isNotNull() & value.isNull(), raw))
            if not nullable:
                rules.append(_Rule(col, "missing value", raw.isNull(), raw))
        else:  # category
            cols[col] = raw.cast("string")
            if not nullable:
                rules.append(_Rule(col, "missing value", raw.isNull(), raw))
    if table == "transactions" and not validation.allow_negative_amounts:
        rules.append(_Rule("amount", "negative amount (returns disabled in config)",
                           cols["amount"] < 0, cols["amount"]))
    if table == "surveys":
        kind = F.lower(F.trim(cols["kind"]))
        cols["kind"] = kind
        rules.append(_Rule("kind", f"unknown survey kind (expected one of {SURVEY_KINDS})",
                           kind.isNotNull() & ~kind.isin(*SURVEY_KINDS), F.col("kind")))
        for k in SURVEY_KINDS:
            rng = getattr(voice, k)
            score = cols["score"]
            rules.append(_Rule("score", f"{k} score outside [{rng.low:g}, {rng.high:g}]",
                               (kind == k) & ((score < rng.low) | (score > rng.high)), score))
    if table == "subscriptions":
        end, start = cols["end_ts"], cols["start_ts"]
        rules.append(_Rule("end_ts", "subscription ends before it starts",
                           end.isNotNull() & (end < start), end.cast("string")))
    extra = [F.col(f"`{c}`") for c in sdf.columns if c not in spec.columns]
    return [v.alias(k) for k, v in cols.items()] + extra, rules, cols


def _examples(sdf: Any, rule: _Rule) -> tuple[list[str], list[Any]]:
    from pyspark.sql import functions as F

    rows = sdf.filter(rule.bad).select(F.col("customer_id").alias("k"),
                                       rule.shown.alias("v")).limit(MAX_EXAMPLES).collect()
    return [f"with customer_id {show_value(r['k'])}" for r in rows], [r["v"] for r in rows]


def _duplicates(sdf: Any, table: str, col: str, problem: str) -> DataValidationError | None:
    from pyspark.sql import functions as F

    dup = (sdf.filter(F.col(col).isNotNull()).groupBy(col)
           .agg(F.count(F.lit(1)).alias("n"), F.min("customer_id").alias("k"))
           .filter("n > 1"))
    total = dup.agg(F.sum("n").alias("rows")).first()["rows"]
    if not total:
        return None
    shown = dup.limit(MAX_EXAMPLES).collect()
    return DataValidationError(table, col, problem,
                               rows=[f"with customer_id {show_value(r['k'])}" for r in shown],
                               values=[r[col] for r in shown], n_rows=int(total))


def validate_spark_table(
    table: str, sdf: Any, *, validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None, timezone: str = "UTC", ts_format: str | None = None,
    now: pd.Timestamp | None = None, source: TableSource | None = None,
) -> tuple[Any, list[DataValidationError], dict[str, Any]]:
    """``(normalised DataFrame, problems, stats)`` of one table (one aggregate pass; a
    failing rule fetches its examples; unique columns cost one grouped pass each).

    ``source`` adds the table's options with the DuckDB route's semantics and wording
    (:func:`churnml.data.validation.validate_table`): ``drop_missing_ids`` and
    ``drop_duplicates`` (a :class:`~churnml.errors.DataWarning` with the count; one pass
    each), ``order_lines`` (:func:`group_order_lines`); its ``ts_format`` is used when
    ``ts_format`` is not given."""
    from pyspark.sql import functions as F

    spec = TABLES[table]
    source = source or TableSource()
    ts_format = ts_format if ts_format is not None else source.ts_format
    missing = [c for c in spec.required if c not in sdf.columns]
    if missing:
        present = columns_present(table, sdf.columns)
        return sdf, [DataValidationError(table, c, f"missing required column ({present})")
                     for c in missing], {}
    if source.drop_missing_ids:
        no_id = sdf.filter(F.col("customer_id").isNull()).count()
        if no_id:
            _warn(table, rules_text.dropped_missing_ids(no_id))
            sdf = sdf.filter(F.col("customer_id").isNotNull())
    session_tz = sdf.sparkSession.conf.get("spark.sql.session.timeZone")
    problems: list[DataValidationError] = []
    columns, rules, exprs = _normalise(sdf, table, timezone, session_tz, ts_format,
                                       validation or ValidationConfig(),
                                       voice or VoiceConfig(), now or pd.Timestamp.now(),
                                       problems)
    times = ["start_ts", "end_ts"] if table == "subscriptions" else (
        ["ts"] if "ts" in spec.columns else [])
    norm = sdf.select(*columns)
    aggs = [F.count_if(r.bad).alias(f"r{i}") for i, r in enumerate(rules)]
    aggs += [F.count(F.lit(1)).alias("rows"),
             F.bit_xor(F.xxhash64(*[F.col(f"`{c}`") for c in sdf.columns])).alias("hash")]
    if times:
        def across(fn: Any, cols: list[Any]) -> Any:
            return cols[0] if len(cols) == 1 else fn(*cols)

        parsed = [exprs[t] for t in times]
        aggs += [F.min(across(F.least, parsed)).alias("lo"),
                 F.max(across(F.greatest, parsed)).alias("hi")]
    row = sdf.agg(*aggs).first()
    span = {"lo": row["lo"], "hi": row["hi"]} if times else {"lo": None, "hi": None}
    for i, rule in enumerate(rules):
        n = int(row[f"r{i}"] or 0)
        if n:
            rows, values = _examples(sdf, rule)
            problems.append(DataValidationError(table, rule.column, rule.problem, rows=rows,
                                                values=values, n_rows=n))
    if source.drop_duplicates:
        norm = _drop_duplicates(norm, table)
    for col in spec.unique:
        if col in sdf.columns and not (source.order_lines and col == "order_id"):
            hint = rules_text.ORDER_LINES_HINT if col == "order_id" else ""
            dup = _duplicates(norm, table, col, rules_text.DUPLICATE_ID + hint)
            if dup is not None:
                problems.append(dup)
    if table == "transactions" and source.order_lines and not problems:
        if "order_id" not in norm.columns:
            problems.append(DataValidationError(table, "order_id", rules_text.NO_ORDER_ID))
        else:
            norm, split = group_order_lines(norm)
            if split is not None:
                problems.append(split)
    stats = {"rows": int(row["rows"]), "hash": f"{int(row['hash'] or 0) & (2**64 - 1):016x}",
             "lo": pd.Timestamp(span["lo"]) if span["lo"] is not None else pd.NaT,
             "hi": pd.Timestamp(span["hi"]) if span["hi"] is not None else pd.NaT}
    return norm, problems, stats


def _warn(table: str, message: str) -> None:
    import warnings

    from churnml.errors import DataWarning

    warnings.warn(f"{table}: {message}", DataWarning, stacklevel=4)


def _drop_duplicates(norm: Any, table: str) -> Any:
    """``norm`` without rows identical to another in every column (warned with the count)."""
    from pyspark.sql import functions as F

    cols = [F.col(f"`{c}`") for c in norm.columns]
    extra = norm.groupBy(*cols).count().agg(F.sum(F.col("count") - 1).alias("n")).first()["n"]
    if not extra:
        return norm
    _warn(table, rules_text.dropped_duplicates(int(extra)))
    return norm.dropDuplicates()


def group_order_lines(t: Any) -> tuple[Any, DataValidationError | None]:
    """Transactions whose rows are order lines summed into orders, as
    :func:`churnml.data.validation.group_order_lines` does: rows sharing an ``order_id``
    become one transaction (``amount`` and ``quantity`` summed, earliest ``ts``); lines
    without an ``order_id`` stay. Spark rows have no order, so the other columns come from
    the order's earliest line (the first line, when lines are in time order). An order whose
    lines name different customers is the problem returned (with the table unchanged)."""
    from pyspark.sql import functions as F

    has = F.col("order_id").isNotNull()
    lines = t.filter(has)
    cid = F.col("customer_id")
    per = lines.groupBy("order_id").agg(
        (F.count_distinct(cid) + F.max(cid.isNull().cast("int"))).alias("n"))
    split = lines.join(per.filter("n > 1").select("order_id"), "order_id", "left_semi")
    n = split.count()
    if n:
        shown = split.select("customer_id").limit(MAX_EXAMPLES).collect()
        return t, DataValidationError(
            "transactions", "customer_id", rules_text.SPLIT_ORDER,
            rows=[f"with customer_id {show_value(r['customer_id'])}" for r in shown],
            values=[r["customer_id"] for r in shown], n_rows=n)
    summed = {"amount", "quantity"}
    aggs = [(F.sum(c) if c in summed else F.min(c) if c == "ts"
             else F.min_by(F.col(f"`{c}`"), F.col("ts"))).alias(c)
            for c in t.columns if c != "order_id"]
    orders = lines.groupBy("order_id").agg(*aggs).select(*[F.col(f"`{c}`") for c in t.columns])
    return t.filter(~has).unionByName(orders), None


def spark_expressions(sdf: Any, table: str, expressions: dict[str, str]) -> Any:
    """``data.tables.<table>.expressions`` computed on Spark: the same checked expressions
    as the DuckDB route (:func:`churnml.data.loaders.expression_columns`), rendered as
    Spark SQL; the computed columns replace raw columns of the same name."""
    from pyspark.sql import functions as F

    sql = expression_columns(table, expressions, [str(c) for c in sdf.columns], "spark")
    keep = [F.col(f"`{c}`") for c in sdf.columns if c not in sql]
    return sdf.select(*keep, *[F.expr(e).alias(c) for c, e in sql.items()])


def unify_ids(frames: dict[str, Any], text: bool = False) -> dict[str, Any]:
    """Give every id column one type: string if ``text`` (tables read from files or Spark
    tables: ids are text, as on the DuckDB route, :func:`churnml.data.loaders.ids_as_text`)
    or any table holds string ids, else long."""
    from pyspark.sql import functions as F

    kinds = {dict(sdf.dtypes)[c] for sdf in frames.values() for c in ID_COLUMNS
             if c in sdf.columns}
    target = "string" if text or any(k not in ("bigint", "int", "smallint", "tinyint")
                                     for k in kinds) else "bigint"
    return {t: sdf.select(*[F.col(c).cast(target).alias(c) if c in ID_COLUMNS else F.col(f"`{c}`")
                            for c in sdf.columns]) for t, sdf in frames.items()}


# --------------------------------------------------------------------------- entry point


def load_spark_data(cfg: Config, spark: Any, staging: str | Path | None = None,
                    now: pd.Timestamp | None = None) -> SparkData:
    """The contract tables the config names, read, mapped and validated by Spark.

    ``staging``: a local folder for built-in datasets (pandas written as Parquet); None
    converts them through Arrow instead (small data only).
    """
    d = cfg.data
    if d.dataset is not None:
        from churnml.data.loaders import load_data

        data = load_data(cfg)
        frames = stage_pandas(spark, data.tables(), staging)
        stats = {t: _pandas_stats(f) for t, f in data.tables().items()}
        return SparkData(unify_ids(frames), name=data.name, currency=data.currency, stats=stats)
    unknown = [t for t in d.tables if t not in TABLES]
    if unknown:
        raise DataValidationError(unknown[0], None,
                                  f"unknown table; expected one of {list(TABLES)}")
    frames, stats, problems = {}, {}, []
    for table, source in d.tables.items():
        used = [k for k in UNSUPPORTED if getattr(source, k, None)]
        if used:
            raise ConfigError(f"data.tables.{table}: {', '.join(used)} not supported with "
                              "features.engine spark (prepare the table in Spark, or use "
                              "the duckdb engine)")
    for table in TABLES:
        source = d.tables.get(table)
        found = read_source(spark, table, source, d.dir, d.roots())
        if found is None:
            continue
        raw, origin = found
        if source is not None and source.expressions:
            raw = spark_expressions(raw, table, source.expressions)
        mapping = source.columns if source else {}
        renamed = apply_mapping(pd.DataFrame(columns=raw.columns), table, mapping, origin)
        raw = raw.toDF(*[str(c) for c in renamed.columns])
        norm, probs, stat = validate_spark_table(
            table, raw, validation=cfg.validation, voice=cfg.voice, timezone=d.timezone,
            now=now, source=source)
        frames[table], stats[table] = norm, stat
        problems += probs
    if "transactions" not in frames:
        raise DataValidationError("transactions", None, "table is required but the config "
                                  "names no transactions table, path or folder file")
    raise_if_any(problems)
    name = Path(d.dir).name if d.dir else "spark"
    return SparkData(unify_ids(frames, text=True), name=name, currency=d.currency,
                     stats=stats)


def _pandas_stats(frame: pd.DataFrame) -> dict[str, Any]:
    times = [c for c in ("ts", "start_ts", "end_ts") if c in frame]
    h = pd.util.hash_pandas_object(frame, index=False).sum()
    return {"rows": len(frame), "hash": f"{int(h) & 0xFFFFFFFFFFFFFFFF:016x}",
            "lo": min((frame[c].min() for c in times), default=pd.NaT),
            "hi": max((frame[c].max() for c in times), default=pd.NaT)}


def spark_only(data: DataConfig) -> bool:
    """Whether only Spark can read the config's tables: no built-in dataset and no
    ``data.dir``, or a table named as a Spark table or a URI (the lakehouse config)."""
    if data.dataset is not None:
        return False
    return data.dir is None or any(
        s.table is not None or (s.path is not None and URI.match(s.path) is not None)
        for s in data.tables.values())


def collect_spark_data(data: SparkData, cfg: Config) -> CustomerData:
    """The validated Spark tables collected to the driver (through Arrow) as
    :class:`~churnml.data.customer_data.CustomerData`, for the DuckDB-only commands
    (``metrics``, ``monitor``, ``report``): the driver must hold the tables."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        frames = {t: sdf.toPandas() for t, sdf in data.tables().items()}
    return CustomerData.from_frames(**frames, name=data.name, currency=data.currency,
                                    validation=cfg.validation, voice=cfg.voice,
                                    end=cfg.data.end)


def stage_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for :func:`load_spark_data`'s staging (remove when done)."""
    return tempfile.TemporaryDirectory(prefix="churnml-spark-")
