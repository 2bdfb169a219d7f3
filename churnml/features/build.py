"""`build_features`: one row per (customer, cutoff) from the declarative features.

**Population.** At each cutoff, every customer with an activity row before it: a transaction,
an event or a subscription start (survey answers, signups and referrals alone do not make a
customer). :func:`churnml.labels.build_labels` further restricts rows to the customers at
risk.

**Leakage safety.** The compiled query keeps only rows with ``time < cutoff`` (the time column
of each source; subscription ends read as unknown until passed) in every scan of every
table: no feature definition can see later rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from churnml.engine import EngineName, SqlEngine, open_engine
from churnml.engine.sql import render
from churnml.features.compiler import Relations, compile_features, cutoff_intervals
from churnml.features.definitions import CUTOFF, DerivedFeature, Feature
from churnml.features.spec import FeatureSpec

CutoffsLike = str | pd.Timestamp | Iterable[str | pd.Timestamp]
FeatureList = Sequence[Feature | DerivedFeature]
CUTOFFS_RELATION = "churnml_cutoffs"
INTERVALS_RELATION = "churnml_cutoff_intervals"
ORDER = "\nORDER BY p.cutoff, p.customer_id"


def as_cutoffs(cutoffs: CutoffsLike) -> pd.DatetimeIndex:
    """Sorted unique naive cutoffs (``datetime64[us]``); a single value is allowed."""
    if isinstance(cutoffs, str | pd.Timestamp) or not isinstance(cutoffs, Iterable):
        cutoffs = [cutoffs]
    try:
        idx = pd.DatetimeIndex([pd.Timestamp(c) for c in cutoffs])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cutoffs must be timestamps: {exc}") from exc
    if len(idx) == 0:
        raise ValueError("cutoffs is empty: give at least one cutoff")
    if idx.isna().any():
        raise ValueError("cutoffs contain a missing value")
    if idx.tz is not None:
        raise ValueError("cutoffs must be naive timestamps (in the data's time zone)")
    return idx.unique().sort_values().astype("datetime64[us]")


def register_cutoffs(engine: SqlEngine, cutoffs: pd.DatetimeIndex) -> Relations:
    """Register the cutoffs (and their buckets) with ``engine``."""
    cut = engine.register(CUTOFFS_RELATION, pd.DataFrame({CUTOFF: cutoffs}))
    intervals = None
    if len(cutoffs) > 1:
        intervals = engine.register(INTERVALS_RELATION, cutoff_intervals(cutoffs))
    return Relations(table=engine.relation, cutoffs=cut, intervals=intervals,
                     engine=engine.dialect)


def resolve_features(engine: SqlEngine, spec: FeatureSpec | FeatureList | None) -> FeatureList:
    """The concrete feature list: ``spec`` resolved against the engine's tables (event types
    read from the data unless the spec pins them); a list of features is used as is."""
    if spec is None:
        spec = FeatureSpec()
    if not isinstance(spec, FeatureSpec):
        return list(spec)

    def event_types() -> list[str]:
        if not engine.has("events"):
            return []
        rel = engine.relation("events")
        frame = engine.fetch(f"SELECT DISTINCT event_type FROM {rel} WHERE event_type IS NOT "
                             f"NULL ORDER BY event_type")
        return [str(v) for v in frame["event_type"]]

    return spec.resolve(engine.schema, event_types)


def feature_query(
    engine: SqlEngine, cutoffs: pd.DatetimeIndex, features: FeatureList
) -> tuple[list[tuple[str, str]], str]:
    """Register ``cutoffs`` and compile ``features``: ``(ctes, select)`` (DuckDB dialect)."""
    relations = register_cutoffs(engine, cutoffs)
    return compile_features(features, engine.schema, cutoffs, relations)


def tidy(frame: pd.DataFrame, features: FeatureList) -> pd.DataFrame:
    """pandas result with stable dtypes: ``cutoff`` datetime64[us], numbers float64,
    categories str."""
    frame = frame.reset_index(drop=True)
    wanted = {CUTOFF: "datetime64[us]"} | {
        f.name: "float64" if f.dtype == "number" else "str" for f in features if f.name in frame
    }
    # convert only what differs: assigning a column can copy the whole block of a wide frame
    changed = {c: frame[c].astype(d) for c, d in wanted.items() if frame[c].dtype != d}
    return frame.assign(**changed) if changed else frame


def build_features(
    data: Any,
    cutoffs: CutoffsLike,
    spec: FeatureSpec | FeatureList | None = None,
    engine: EngineName | SqlEngine = "duckdb",
    *,
    spark: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> Any:
    """Features of every customer active before each cutoff, as known at that cutoff.

    Parameters
    ----------
    data : CustomerData or mapping
        The contract tables (see :func:`churnml.engine.open_engine`).
    cutoffs : timestamp or iterable of timestamps
        Prediction instants; features read only rows with ``time < cutoff``.
    spec : FeatureSpec or list of features, optional
        Default: :class:`FeatureSpec` with every built-in group.
    engine : 'duckdb', 'spark' or an SqlEngine
        ``'spark'`` runs the same SQL on ``spark`` (default: the active session).
    threads, memory_limit : DuckDB settings.

    Returns
    -------
    pandas DataFrame (a Spark DataFrame when every input table is one) with columns
    ``customer_id, cutoff`` and one column per feature, sorted by cutoff and customer.
    """
    cuts = as_cutoffs(cutoffs)
    eng, owned = open_engine(data, engine, spark=spark, threads=threads,
                             memory_limit=memory_limit)
    try:
        features = resolve_features(eng, spec)
        ctes, select = feature_query(eng, cuts, features)
        result = eng.run_wide(ctes, select + ORDER)
        return result if eng.returns_native else tidy(result, features)
    finally:
        if owned and not eng.returns_native:
            eng.close()


def feature_sql(
    data: Any,
    cutoffs: CutoffsLike,
    spec: FeatureSpec | FeatureList | None = None,
    dialect: EngineName = "duckdb",
) -> str:
    """The compiled query (for inspection), in DuckDB or Spark SQL."""
    eng, owned = open_engine(data, "duckdb")
    try:
        ctes, select = feature_query(eng, as_cutoffs(cutoffs), resolve_features(eng, spec))
        sql = render(ctes, select + ORDER)
    finally:
        if owned:
            eng.close()
    if dialect == "spark":
        from churnml.engine.spark_engine import transpile

        return transpile(sql)
    return sql
