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

from churnml.config import Config, TableSource, ValidationConfig, VoiceConfig
from churnml.data.loaders import SUFFIXES, apply_mapping
from churnml.data.schema import NULLABLE, SURVEY_KINDS, TABLES, columns_present
from churnml.data.spark_names import quote_table_name
from churnml.data.validation import raise_if_any
from churnml.errors import ConfigError, DataValidationError
from churnml.errors import _show as show_value
from churnml.paths import confined

MAX_EXAMPLES = 5
# loader options of the pandas route that the Spark route does not implement
UNSUPPORTED = ("expressions", "lookups", "order_lines", "drop_missing_ids", "drop_duplicates")
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
        return reader.load(path), path
    except AnalysisException as exc:
        raise DataValidationError(table, None, f"cannot read {fmt} {path!r}: "
                                  f"{str(exc).splitlines()[0]}") from exc


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
    text = raw.cast("string")
    formats = [f for f in ([fmt] if isinstance(fmt, str) else list(fmt or []))
               if f.upper() != "ISO8601"]
    if formats:  # each value read by the first format that fits
        parsed = [F.try_to_timestamp(text, F.lit(_spark_pattern(f))).cast("timestamp_ntz")
                  for f in formats]
        parsed = [to_tz(p) if "%z" in f else p for p, f in zip(parsed, formats, strict=True)]
        return parsed[0] if len(parsed) == 1 else F.coalesce(*parsed)
    # naive strings are wall-clock time already; those with an offset are instants
    parsed = F.try_to_timestamp(text).cast("timestamp_ntz")
    return F.when(text.rlike(OFFSET), to_tz(parsed)).otherwise(parsed)


def _normalise(sdf: Any, table: str, tz: str, session_tz: str, fmt: str | None,
               validation: ValidationConfig, voice: VoiceConfig, now: pd.Timestamp
               ) -> tuple[list[Any], list[_Rule], dict[str, Any]]:
    """Normalised columns (contract columns first, extra ones after, as read) and rules."""
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
                rules.append(_Rule(col, "missing id", raw.isNull(), raw))
        elif kind == "timestamp":
            parsed = _timestamp(raw, types[col], tz, session_tz, fmt)
            cols[col] = parsed
            if types[col] not in ("timestamp_ntz", "timestamp", "date"):
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


def _duplicates(sdf: Any, table: str, col: str) -> DataValidationError | None:
    from pyspark.sql import functions as F

    dup = (sdf.filter(F.col(col).isNotNull()).groupBy(col)
           .agg(F.count(F.lit(1)).alias("n"), F.min("customer_id").alias("k"))
           .filter("n > 1"))
    total = dup.agg(F.sum("n").alias("rows")).first()["rows"]
    if not total:
        return None
    shown = dup.limit(MAX_EXAMPLES).collect()
    return DataValidationError(table, col, "duplicate id",
                               rows=[f"with customer_id {show_value(r['k'])}" for r in shown],
                               values=[r[col] for r in shown], n_rows=int(total))


def validate_spark_table(
    table: str, sdf: Any, *, validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None, timezone: str = "UTC", ts_format: str | None = None,
    now: pd.Timestamp | None = None,
) -> tuple[Any, list[DataValidationError], dict[str, Any]]:
    """``(normalised DataFrame, problems, stats)`` of one table (one aggregate pass; a
    failing rule fetches its examples; unique columns cost one grouped pass each)."""
    from pyspark.sql import functions as F

    spec = TABLES[table]
    missing = [c for c in spec.required if c not in sdf.columns]
    if missing:
        present = columns_present(table, sdf.columns)
        return sdf, [DataValidationError(table, c, f"missing required column ({present})")
                     for c in missing], {}
    session_tz = sdf.sparkSession.conf.get("spark.sql.session.timeZone")
    columns, rules, exprs = _normalise(sdf, table, timezone, session_tz, ts_format,
                                validation or ValidationConfig(), voice or VoiceConfig(),
                                now or pd.Timestamp.now())
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
    problems = []
    for i, rule in enumerate(rules):
        n = int(row[f"r{i}"] or 0)
        if n:
            rows, values = _examples(sdf, rule)
            problems.append(DataValidationError(table, rule.column, rule.problem, rows=rows,
                                                values=values, n_rows=n))
    for col in spec.unique:
        if col in sdf.columns:
            dup = _duplicates(norm, table, col)
            if dup is not None:
                problems.append(dup)
    stats = {"rows": int(row["rows"]), "hash": f"{int(row['hash'] or 0) & (2**64 - 1):016x}",
             "lo": pd.Timestamp(span["lo"]) if span["lo"] is not None else pd.NaT,
             "hi": pd.Timestamp(span["hi"]) if span["hi"] is not None else pd.NaT}
    return norm, problems, stats


def unify_ids(frames: dict[str, Any]) -> dict[str, Any]:
    """Give every id column one type: string if any table holds string ids, else long."""
    from pyspark.sql import functions as F

    kinds = {dict(sdf.dtypes)[c] for sdf in frames.values() for c in ID_COLUMNS
             if c in sdf.columns}
    target = "string" if any(k not in ("bigint", "int", "smallint", "tinyint")
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
        mapping = source.columns if source else {}
        renamed = apply_mapping(pd.DataFrame(columns=raw.columns), table, mapping, origin)
        raw = raw.toDF(*[str(c) for c in renamed.columns])
        norm, probs, stat = validate_spark_table(
            table, raw, validation=cfg.validation, voice=cfg.voice, timezone=d.timezone,
            ts_format=source.ts_format if source else None, now=now)
        frames[table], stats[table] = norm, stat
        problems += probs
    if "transactions" not in frames:
        raise DataValidationError("transactions", None, "table is required but the config "
                                  "names no transactions table, path or folder file")
    raise_if_any(problems)
    name = Path(d.dir).name if d.dir else "spark"
    return SparkData(unify_ids(frames), name=name, currency=d.currency, stats=stats)


def _pandas_stats(frame: pd.DataFrame) -> dict[str, Any]:
    times = [c for c in ("ts", "start_ts", "end_ts") if c in frame]
    h = pd.util.hash_pandas_object(frame, index=False).sum()
    return {"rows": len(frame), "hash": f"{int(h) & 0xFFFFFFFFFFFFFFFF:016x}",
            "lo": min((frame[c].min() for c in times), default=pd.NaT),
            "hi": max((frame[c].max() for c in times), default=pd.NaT)}


def stage_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for :func:`load_spark_data`'s staging (remove when done)."""
    return tempfile.TemporaryDirectory(prefix="churnml-spark-")
