"""Validation and normalisation of the input tables against the data contract.

Every rule raises :class:`~churnml.errors.DataValidationError` naming the table, the column
and example rows at fault. All problems found in one pass are reported together.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from churnml.config import TableSource, ValidationConfig, VoiceConfig
from churnml.data.schema import (
    CONTROL_ARM,
    COUNT_ONLY_AMOUNT,
    MAX_ABS_MONEY,
    MONEY_COLUMNS,
    NULLABLE,
    SURVEY_KINDS,
    TABLES,
    TableSpec,
    columns_present,
)
from churnml.data.subscriptions import overlapping_rows
from churnml.data.timestamps import TimestampProblem, parse_timestamps
from churnml.errors import DataValidationError, DataWarning

_MAX_EXAMPLES = 5
# Wording shared with the Spark loader (churnml.data.spark_loader), so both routes say the same
MISSING_ID = "missing id"
MISSING_ID_HINT = " (set drop_missing_ids: true for this table to drop such rows)"
DUPLICATE_ID = "duplicate id"
ORDER_LINES_HINT = (" (if rows are order lines, set order_lines: true for this table to sum "
                    "them into orders)")
SPLIT_ORDER = "order lines of one order_id name different customers"
NO_ORDER_ID = "order_lines: true needs an order_id column"


def dropped_missing_ids(n: int) -> str:
    """The warning for ``n`` rows dropped by ``drop_missing_ids``."""
    return f"dropped {n:,} row(s) without a customer id (drop_missing_ids)"


def dropped_duplicates(n: int) -> str:
    """The warning for ``n`` rows dropped by ``drop_duplicates``."""
    return f"dropped {n:,} row(s) identical to an earlier row (drop_duplicates)"


def _fail(
    problems: list[DataValidationError], table: str, column: str | None, problem: str,
    mask: pd.Series | None = None, values: pd.Series | None = None,
) -> None:
    if mask is None:
        problems.append(DataValidationError(table, column, problem))
        return
    idx = mask[mask].index
    vals = (values if values is not None else pd.Series(index=mask.index, dtype=object))
    shown = [vals.get(i) for i in idx[:_MAX_EXAMPLES]] if values is not None else []
    problems.append(
        DataValidationError(
            table, column, problem, rows=list(idx[:_MAX_EXAMPLES]), values=shown,
            n_rows=int(mask.sum()),
        )
    )


def _parse_ts(
    s: pd.Series, table: str, col: str, tz: str, fmt: str | list[str] | None,
    problems: list[DataValidationError], nullable: bool,
) -> pd.Series:
    """One column parsed with one format (``fmt``, or inferred: :mod:`.timestamps`)."""
    try:
        out = parse_timestamps(s, fmt, tz)
    except TimestampProblem as exc:
        problems.append(DataValidationError(table, col, exc.problem, exc.rows, exc.values,
                                            exc.n_rows))
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    bad = out.isna() & s.notna()
    if bad.any():
        shown = fmt if isinstance(fmt, str) or fmt is None else " / ".join(fmt)
        _fail(problems, table, col, "unparseable timestamp"
              + (f" (expected format {shown!r})" if fmt else ""), bad, s)
    if not nullable and s.isna().any():
        _fail(problems, table, col, "missing timestamp", s.isna(), s)
    return out


def _check_range(
    ts: pd.Series, table: str, col: str, lo: pd.Timestamp, hi: pd.Timestamp,
    problems: list[DataValidationError],
) -> None:
    bad = (ts < lo) | (ts > hi)
    if bad.any():
        _fail(problems, table, col,
              f"timestamp out of range [{lo.date()}, {hi.date()}]", bad, ts.astype(str))


def _warn(table: str, message: str) -> None:
    warnings.warn(f"{table}: {message}", DataWarning, stacklevel=4)


def validate_table(
    name: str,
    df: pd.DataFrame,
    *,
    validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None,
    timezone: str = "UTC",
    ts_format: str | list[str] | None = None,
    now: pd.Timestamp | None = None,
    source: TableSource | None = None,
) -> tuple[pd.DataFrame, list[DataValidationError]]:
    """Check one table and return it normalised (canonical dtypes) with the problems found.

    ``source`` adds the table's options: ``drop_missing_ids``, ``drop_duplicates`` and
    ``order_lines`` (its ``ts_format`` is used when ``ts_format`` is not given). Issues a
    :class:`~churnml.errors.DataWarning` for rows identical in every column, rows dropped,
    and transactions without amounts (each then counts 1: values are in purchases).
    """
    spec: TableSpec = TABLES[name]
    validation = validation or ValidationConfig()
    voice = voice or VoiceConfig()
    source = source or TableSource()
    ts_format = ts_format if ts_format is not None else source.ts_format
    problems: list[DataValidationError] = []
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(name, None, f"expected a pandas DataFrame, got {type(df)!r}")
    count_only = name == "transactions" and "amount" not in df.columns
    missing = [c for c in spec.required if c not in df.columns
               and not (count_only and c == "amount")]
    if missing:
        present = columns_present(name, df.columns, source.columns.values())
        for c in missing:
            _fail(problems, name, c, f"missing required column ({present})")
        return df, problems
    keep = [c for c in df.columns if c in spec.columns]
    extra = [c for c in df.columns if c not in spec.columns]
    out = df[keep + extra].copy()
    if count_only:
        out["amount"] = COUNT_ONLY_AMOUNT
        _warn(name, "no amount column: every transaction counts as one purchase, so value "
                    "metrics and models are in purchases, not money (map `amount` to use "
                    "money)")
    if source.drop_missing_ids:
        no_id = out["customer_id"].isna()
        if no_id.any():
            out = out[~no_id]
            _warn(name, dropped_missing_ids(int(no_id.sum())))
    now = now or pd.Timestamp.now()
    lo = pd.Timestamp(validation.min_ts)
    hi = now.normalize() + pd.Timedelta(days=validation.max_ts_days_ahead + 1)

    for col, kind in spec.columns.items():
        if col not in out.columns:
            continue
        s = out[col]
        nullable = (name, col) in NULLABLE or col not in spec.required
        if kind == "id":
            if not nullable and s.isna().any():
                hint = MISSING_ID_HINT if col == "customer_id" else ""
                _fail(problems, name, col, MISSING_ID + hint, s.isna(), s)
        elif kind == "timestamp":
            out[col] = _parse_ts(s, name, col, timezone, ts_format, problems, nullable)
            _check_range(out[col].dropna(), name, col, lo, hi, problems)
        elif kind == "number":
            out[col] = _check_number(s, name, col, nullable, problems)
        elif kind == "category":
            if not nullable and s.isna().any():
                _fail(problems, name, col, "missing value", s.isna(), s)
            out[col] = s.astype("str").where(s.notna())

    out = _duplicate_rows(out, name, source, problems)
    for col in spec.unique:
        if col in out.columns and not (source.order_lines and col == "order_id"):
            dup = out[col].notna() & out[col].duplicated(keep=False)
            if dup.any():
                hint = ORDER_LINES_HINT if col == "order_id" else ""
                _fail(problems, name, col, DUPLICATE_ID + hint, dup, out[col])

    if name == "transactions" and not validation.allow_negative_amounts and "amount" in out:
        neg = out["amount"] < 0
        if neg.any():
            _fail(problems, name, "amount", "negative amount (returns disabled in config)",
                  neg, out["amount"])
    if name == "surveys":
        kind = out["kind"].str.lower().str.strip()
        bad_kind = ~kind.isin(SURVEY_KINDS) & kind.notna()
        if bad_kind.any():
            _fail(problems, name, "kind", f"unknown survey kind (expected one of {SURVEY_KINDS})",
                  bad_kind, out["kind"])
        out["kind"] = kind
        for k in SURVEY_KINDS:
            rng = getattr(voice, k)
            m = (kind == k) & ((out["score"] < rng.low) | (out["score"] > rng.high))
            if m.any():
                _fail(problems, name, "score",
                      f"{k} score outside [{rng.low:g}, {rng.high:g}]", m, out["score"])
    if name == "subscriptions":
        _check_subscriptions(out, problems)
    if name == "transactions" and source.order_lines and not problems:
        if "order_id" not in out.columns:
            _fail(problems, name, "order_id", NO_ORDER_ID)
        else:
            out = group_order_lines(out, problems)
    if name == "campaigns":
        _check_campaigns(out, problems)
    return out, problems


def _check_subscriptions(out: pd.DataFrame, problems: list[DataValidationError]) -> None:
    """Ends (and fixed-term ends) not before the start; overlapping rows of one customer are
    legal and merge into one coverage spell (:mod:`churnml.data.subscriptions`): a warning
    with their count."""
    for col, what in (("end_ts", "subscription ends before it starts"),
                      ("term_end_ts", "subscription term ends before it starts")):
        if col in out:
            m = out[col].notna() & (out[col] < out["start_ts"])
            if m.any():
                _fail(problems, "subscriptions", col, what, m, out[col].astype(str))
    if problems or out["customer_id"].isna().any() or out["start_ts"].isna().any():
        return
    overlap = overlapping_rows(out)
    if overlap.any():
        n_cust = out.loc[overlap, "customer_id"].nunique()
        rows = ", ".join(map(str, overlap.index[overlap][:_MAX_EXAMPLES]))
        _warn("subscriptions", f"{int(overlap.sum()):,} row(s) of {n_cust:,} customer(s) start "
              f"before an earlier subscription of the same customer ends (e.g. row(s) {rows}): "
              "a customer's coverage is the union of their subscriptions (plan changes, "
              "add-ons), so these merge into one spell and churn is the end of the spell; if "
              "the rows are export duplicates, set data.tables.subscriptions.drop_duplicates: "
              "true or fix the export")


def check_subscription_ends(
    subs: pd.DataFrame, end: pd.Timestamp
) -> list[DataValidationError]:
    """Subscriptions ending after the end of the data (``data.end``, exclusive): an end that
    lies beyond the observation window cannot have been observed (an end exactly at
    ``data.end`` is the last observable instant, so it is allowed). ``term_end_ts`` (a fixed
    term known in advance) may lie beyond it."""
    problems: list[DataValidationError] = []
    late = subs["end_ts"].notna() & (subs["end_ts"] > end)
    if late.any():
        _fail(problems, "subscriptions", "end_ts",
              f"subscription ends after the end of the data (data.end = {end}); an end not "
              "reached by then is unknown: leave end_ts empty (still active) for scheduled "
              "cancellations, or move data.end", late, subs["end_ts"].astype(str))
    return problems


def _check_number(s: pd.Series, table: str, col: str, nullable: bool,
                  problems: list[DataValidationError]) -> pd.Series:
    """``s`` as float64: non-numeric, missing (when required), infinite and, for money,
    too large values are problems."""
    num = s
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any():
            _fail(problems, table, col, "not numeric", bad, s)
    num = num.astype("float64")
    if not nullable and s.isna().any():
        _fail(problems, table, col, "missing value", s.isna(), s)
    inf = pd.Series(np.isinf(num.to_numpy()), index=num.index)
    if inf.any():
        _fail(problems, table, col, "not a finite number", inf, s)
    if (table, col) in MONEY_COLUMNS:
        big = ~inf & (num.abs() > MAX_ABS_MONEY)
        if big.any():
            _fail(problems, table, col,
                  f"amount beyond the exact money range (|amount| <= {MAX_ABS_MONEY:,.0f}; "
                  "check the column mapping and the unit)", big, s)
    return num


def _duplicate_rows(out: pd.DataFrame, table: str, source: TableSource,
                    problems: list[DataValidationError]) -> pd.DataFrame:
    """Rows identical in every column: dropped with ``drop_duplicates`` (any table), else, in
    transactions, a warning (unless a unique ``order_id`` already makes them errors): each
    copy adds its amount to revenue again."""
    if out.empty or (table != "transactions" and not source.drop_duplicates):
        return out
    dup = out.duplicated(keep="first")
    if not dup.any():
        return out
    n = int(dup.sum())
    if source.drop_duplicates:
        _warn(table, dropped_duplicates(n))
        return out[~dup]
    unique = TABLES[table].unique
    if any(c in out.columns and out[c].notna().all() for c in unique) and not (
        source.order_lines and unique == ("order_id",)
    ):
        return out  # reported as duplicate ids
    rows = list(out.index[dup][:5])
    _warn(table, f"{n:,} row(s) identical in every column to an earlier row (e.g. row(s) "
                 f"{', '.join(map(str, rows))}): each counts again, revenue too; if they are "
                 f"export duplicates set data.tables.{table}.drop_duplicates: true")
    return out


def group_order_lines(t: pd.DataFrame, problems: list[DataValidationError]) -> pd.DataFrame:
    """Order lines summed into orders: rows sharing an ``order_id`` become one transaction
    (``amount`` and ``quantity`` summed, earliest ``ts``, other columns of the first line),
    indexed by the order's first line. Lines without an ``order_id`` stay as they are. An
    order whose lines name different customers is a problem."""
    has = t["order_id"].notna()
    lines = t[has]
    if lines.empty:
        return t
    keys = lines["order_id"]
    n_cust = lines.groupby(keys, sort=False)["customer_id"].nunique(dropna=False)
    split = keys.isin(n_cust.index[n_cust > 1])
    if split.any():
        _fail(problems, "transactions", "customer_id", SPLIT_ORDER, split,
              lines["customer_id"])
        return t
    summed = {"amount", "quantity"}
    agg = {c: ("sum" if c in summed else "min" if c == "ts" else "first")
           for c in lines.columns if c != "order_id"}
    first_row = lines.index.to_series().groupby(keys.to_numpy(), sort=False).first()
    orders = lines.groupby(keys.to_numpy(), sort=False).agg(agg)
    orders.insert(list(t.columns).index("order_id"), "order_id", orders.index)
    orders.index = first_row.reindex(orders.index).to_numpy()
    return pd.concat([t[~has], orders[t.columns]]).sort_index()


def _check_campaigns(out: pd.DataFrame, problems: list[DataValidationError]) -> None:
    """Arms are non-empty names (``control`` in any case becomes ``control``), one contact per
    (customer, campaign), costs non-negative."""
    arm = out["arm"].str.strip()
    blank = arm.notna() & (arm == "")
    if blank.any():
        _fail(problems, "campaigns", "arm",
              f"empty arm (use {CONTROL_ARM!r} or a treatment name)", blank, out["arm"])
    out["arm"] = arm.where(arm.str.lower() != CONTROL_ARM, CONTROL_ARM)
    key = ["customer_id", "campaign_id"]
    dup = out[key].notna().all(axis=1) & out.duplicated(key, keep=False)
    if dup.any():
        pairs = out["customer_id"].astype(str) + " in campaign " + out["campaign_id"].astype(str)
        _fail(problems, "campaigns", "customer_id",
              "duplicate contact (a customer is contacted at most once per campaign)",
              dup, pairs)
    if "cost" in out:
        neg = out["cost"] < 0
        if neg.any():
            _fail(problems, "campaigns", "cost", "negative contact cost", neg, out["cost"])


def check_campaign_customers(
    campaigns: pd.DataFrame, tables: dict[str, pd.DataFrame | None]
) -> list[DataValidationError]:
    """Contacts of customers that no other table knows (after id unification)."""
    known = [df["customer_id"] for t, df in tables.items() if df is not None and t != "campaigns"]
    ids = pd.concat(known, ignore_index=True).dropna().unique()
    unknown = ~campaigns["customer_id"].isin(ids) & campaigns["customer_id"].notna()
    problems: list[DataValidationError] = []
    if unknown.any():
        _fail(problems, "campaigns", "customer_id",
              "unknown customer (in no other table)", unknown, campaigns["customer_id"])
    return problems


def raise_if_any(problems: list[DataValidationError]) -> None:
    """Raise the first problem, its message listing the others too."""
    if not problems:
        return
    first = problems[0]
    if len(problems) > 1:
        more = "\n  ".join(str(p) for p in problems[1:])
        err = DataValidationError(first.table, first.column, first.problem, first.rows,
                                  first.values, first.n_rows)
        err.args = (f"{first}\n  and {len(problems) - 1} more problem(s):\n  {more}",)
        err.others = problems[1:]
        raise err
    raise first
