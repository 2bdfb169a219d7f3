"""Validation and normalisation of the input tables against the data contract.

Every rule raises :class:`~churnml.errors.DataValidationError` naming the table, the column
and example rows at fault. All problems found in one pass are reported together.
"""

from __future__ import annotations

import pandas as pd

from churnml.config import ValidationConfig, VoiceConfig
from churnml.data.schema import CONTROL_ARM, NULLABLE, SURVEY_KINDS, TABLES, TableSpec
from churnml.errors import DataValidationError

_MAX_EXAMPLES = 5


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
    s: pd.Series, table: str, col: str, tz: str, fmt: str | None,
    problems: list[DataValidationError], nullable: bool,
) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert(tz).dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s
    else:
        raw = s
        out = _to_datetime(raw, fmt)
        bad = out.isna() & raw.notna()
        if bad.any() and fmt is None:  # a second, element-wise chance for odd formats
            out = out.astype(object)
            out[bad] = _to_datetime(raw[bad], "mixed")
            out = _to_datetime(out, None)
            bad = out.isna() & raw.notna()
        if bad.any():
            _fail(problems, table, col, "unparseable timestamp"
                  + (f" (expected format {fmt!r})" if fmt else ""), bad, raw)
        if isinstance(out.dtype, pd.DatetimeTZDtype):
            out = out.dt.tz_convert(tz).dt.tz_localize(None)
    out = out.astype("datetime64[us]")
    if not nullable and out.isna().any():
        nulls = out.isna() & s.isna()
        if nulls.any():
            _fail(problems, table, col, "missing timestamp", nulls, s)
    return out


def _to_datetime(raw: pd.Series, fmt: str | None) -> pd.Series:
    """Parse with ``fmt`` (default ISO 8601); aware values (mixed offsets too) go via UTC."""
    fmt = fmt or "ISO8601"
    try:
        return pd.to_datetime(raw, errors="coerce", format=fmt)
    except (ValueError, TypeError):
        return pd.to_datetime(raw, errors="coerce", format=fmt, utc=True)


def _check_range(
    ts: pd.Series, table: str, col: str, lo: pd.Timestamp, hi: pd.Timestamp,
    problems: list[DataValidationError],
) -> None:
    bad = (ts < lo) | (ts > hi)
    if bad.any():
        _fail(problems, table, col,
              f"timestamp out of range [{lo.date()}, {hi.date()}]", bad, ts.astype(str))


def validate_table(
    name: str,
    df: pd.DataFrame,
    *,
    validation: ValidationConfig | None = None,
    voice: VoiceConfig | None = None,
    timezone: str = "UTC",
    ts_format: str | None = None,
    now: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, list[DataValidationError]]:
    """Check one table and return it normalised (canonical dtypes) with the problems found."""
    spec: TableSpec = TABLES[name]
    validation = validation or ValidationConfig()
    voice = voice or VoiceConfig()
    problems: list[DataValidationError] = []
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(name, None, f"expected a pandas DataFrame, got {type(df)!r}")
    missing = [c for c in spec.required if c not in df.columns]
    if missing:
        present = ", ".join(map(str, df.columns))
        for c in missing:
            _fail(problems, name, c, f"missing required column (columns present: {present})")
        return df, problems
    keep = [c for c in df.columns if c in spec.columns]
    extra = [c for c in df.columns if c not in spec.columns]
    out = df[keep + extra].copy()
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
                _fail(problems, name, col, "missing id", s.isna(), s)
        elif kind == "timestamp":
            out[col] = _parse_ts(s, name, col, timezone, ts_format, problems, nullable)
            _check_range(out[col].dropna(), name, col, lo, hi, problems)
        elif kind == "number":
            if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
                num = pd.to_numeric(s, errors="coerce")
                bad = num.isna() & s.notna()
                if bad.any():
                    _fail(problems, name, col, "not numeric", bad, s)
                s = num
            if not nullable and out[col].isna().any():
                _fail(problems, name, col, "missing value", out[col].isna(), out[col])
            out[col] = s.astype("float64")
        elif kind == "category":
            if not nullable and s.isna().any():
                _fail(problems, name, col, "missing value", s.isna(), s)
            out[col] = s.astype("str").where(s.notna())

    for col in spec.unique:
        if col in out.columns:
            dup = out[col].notna() & out[col].duplicated(keep=False)
            if dup.any():
                _fail(problems, name, col, "duplicate id", dup, out[col])

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
        m = out["end_ts"].notna() & (out["end_ts"] < out["start_ts"])
        if m.any():
            _fail(problems, name, "end_ts", "subscription ends before it starts", m,
                  out["end_ts"].astype(str))
    if name == "campaigns":
        _check_campaigns(out, problems)
    return out, problems


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
