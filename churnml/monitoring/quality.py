"""Data-quality checks before drift: is the input still the data the model was trained on?

A **data profile** summarises the input tables over the ``window_days`` before a cutoff
(rows with ``window start <= time < cutoff``: point in time, nothing after the cutoff):

* per table, the rows and the distinct customers of each ``period_days`` period of the
  window (oldest first);
* per column, over a span ending at the cutoff (the whole window for the reference, the
  last period for a monitored cutoff): numbers as a :mod:`churnml.features.profile` profile
  plus the share of zeros and, when the column takes at most :data:`MAX_VALUES` distinct
  values (a survey scale), the share of each value; categories as their shares. Survey
  scores are profiled per survey kind (``surveys.score.nps``).

Time columns: ``transactions.ts``, ``events.ts``, ``surveys.ts``, ``subscriptions.start_ts``,
``customers.signup_ts`` (signups). The reference keeps the profile of its training cutoff;
:func:`check_quality` compares a cutoff's profile with it:

==================== ========================================================== =========
check                alarm when                                                 threshold
==================== ========================================================== =========
table_missing        a table of the reference has no row in the window          -
rows_per_period      a period's rows / the reference's mean rows per period      ``volume_ratio``
customers_per_period the same for distinct customers                            (and 1/it)
missing_share        share of nulls moved by more than                          ``share_margin``
zero_share           share of zeros moved by more than                          ``share_margin``
new_category         a category absent from the reference holds >= 1 % (10 rows) -
vanished_category    a reference category (>= 10 expected rows) is absent        -
category_mix         PSI of the category shares                                 ``psi_alarm``
scale                values of a discrete scale (e.g. NPS 0–10) vanished or new, -
                     together >= 5 % of the answers
distribution         PSI of a numeric column (amounts, answers)                 ``psi_alarm``
==================== ========================================================== =========

A data alarm means "fix the data": the monitor's verdict blocks retraining until the change
is fixed or acknowledged (``monitoring.acknowledged``, patterns matched against
``<column>`` or ``<column>:<check>``). Shares and PSI are compared only on at least
:data:`MIN_ROWS` rows; a reference without a profile (made before this check existed)
skips the checks with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatch
from typing import Any

import numpy as np
import pandas as pd

from churnml.features.profile import CATEGORICAL, profile_frame
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.drift import mix_psi, profile_psi

TIME_COLUMNS = {"transactions": "ts", "events": "ts", "surveys": "ts",
                "subscriptions": "start_ts", "customers": "signup_ts"}
NUMERIC = {"transactions": ("amount", "quantity"), "events": ("value",),
           "subscriptions": ("mrr",)}
CATEGORIES = {"transactions": ("category", "channel"), "events": ("event_type",),
              "surveys": ("kind",), "subscriptions": ("plan",),
              "customers": ("plan", "country", "acquisition_channel")}
MAX_VALUES = 20  # a numeric column with at most this many distinct values is a scale
MIN_ROWS = 100  # fewer rows: shares and PSI are not compared
MIN_EXPECTED = 10  # a category / value must be expected this many times to be "vanished"
MIN_SHARE = 0.01  # a new category must hold this share
SCALE_SHARE = 0.05  # vanished or new scale values must hold this share together
CHECK_COLUMNS = ["cutoff", "table", "column", "check", "reference", "current", "threshold",
                 "level", "text"]


def _column_profile(values: pd.Series) -> dict[str, Any]:
    prof = profile_frame(values.to_frame("v"), ["v"])["v"]
    if prof["kind"] != CATEGORICAL:
        x = pd.to_numeric(values, errors="coerce").dropna()
        prof["zero"] = float((x == 0).mean()) if len(x) else 0.0
        counts = x.value_counts(normalize=True)
        if 0 < len(counts) <= MAX_VALUES:
            prof["values"] = {f"{float(k):g}": float(v) for k, v in counts.sort_index().items()}
    return prof


def data_profile(data: Any, cutoff: Any, window_days: int = 90, period_days: int = 30,
                 column_days: int | None = None) -> dict[str, Any]:
    """The data profile of ``data`` over the ``window_days`` before ``cutoff`` (module
    docstring); columns over the last ``column_days`` (default: the whole window)."""
    cutoff = pd.Timestamp(cutoff)
    periods = max(1, window_days // period_days)
    start = cutoff - pd.Timedelta(days=periods * period_days)
    col_start = cutoff - pd.Timedelta(days=column_days or periods * period_days)
    tables: dict[str, Any] = {}
    for name, time in TIME_COLUMNS.items():
        table = getattr(data, name, None)
        if table is None or time not in table or not len(table):
            continue
        ts = pd.to_datetime(table[time])
        rows = table.loc[((ts >= start) & (ts < cutoff)).to_numpy()]
        since = ((pd.to_datetime(rows[time]) - start).dt.total_seconds() / 86400).to_numpy()
        slot = np.clip((since // period_days).astype(int), 0, periods - 1)  # [lo, lo + period)
        ids = rows["customer_id"].to_numpy()
        per = [{"rows": int((slot == k).sum()), "customers": int(pd.unique(ids[slot == k]).size)}
               for k in range(periods)]
        recent = rows.loc[(pd.to_datetime(rows[time]) >= col_start).to_numpy()]
        columns: dict[str, Any] = {}
        for col in (*NUMERIC.get(name, ()), *CATEGORIES.get(name, ())):
            if col in recent:
                series = recent[col] if col in NUMERIC.get(name, ()) else recent[col].astype(
                    "string").astype(object).where(recent[col].notna(), None)
                columns[f"{name}.{col}"] = _column_profile(series)
        if name == "surveys" and {"kind", "score"} <= set(recent.columns):
            for kind, answers in recent.groupby(recent["kind"].astype(str))["score"]:
                columns[f"surveys.score.{kind}"] = _column_profile(answers)
        tables[name] = {"periods": per, "columns": columns}
    return {"cutoff": cutoff.isoformat(), "window_days": periods * period_days,
            "period_days": period_days, "tables": tables}


def reference_data_profile(data: Any, cutoff: Any, config: Any) -> dict[str, Any]:
    """A reference's data profile: the input tables over ``config.quality_window_days``
    (a :class:`~churnml.config.MonitoringConfig`) before ``cutoff``, periods of
    ``config.quality_period_days``, columns over the whole window."""
    return data_profile(data, cutoff, config.quality_window_days, config.quality_period_days)


def acknowledged(column: str, check: str, patterns: Iterable[str]) -> bool:
    """A data check acknowledged by one of ``patterns`` (fnmatch on ``column`` or
    ``column:check``)."""
    return any(fnmatch(column, p) or fnmatch(f"{column}:{check}", p) for p in patterns)


def _row(cutoff: pd.Timestamp, table: str, column: str, check: str, ref: Any, cur: Any,
         threshold: Any, alarm: bool, text: str) -> dict[str, Any]:
    return {"cutoff": cutoff, "table": table, "column": column, "check": check,
            "reference": ref, "current": cur, "threshold": threshold,
            "level": "alarm" if alarm else "ok", "text": text}


def _volume(cutoff: pd.Timestamp, name: str, ref: Mapping[str, Any], cur: Mapping[str, Any],
            ratio: float, period_days: int) -> list[dict[str, Any]]:
    rows = []
    n = len(cur["periods"])
    for what in ("rows",) if name == "customers" else ("rows", "customers"):  # 1 row each
        mean = float(np.mean([p[what] for p in ref["periods"]]))
        if mean < MIN_EXPECTED:
            continue
        ratios = [p[what] / mean for p in cur["periods"]]
        worst = int(np.argmax([abs(np.log(max(r, 1e-9))) for r in ratios]))
        r = ratios[worst]
        end = cutoff - pd.Timedelta(days=(n - 1 - worst) * period_days)
        begin = end - pd.Timedelta(days=period_days)
        alarm = r < ratio or r > 1 / ratio
        text = (f"{name}: {cur['periods'][worst][what]:,} {what} in {begin:%Y-%m-%d}.."
                f"{end:%Y-%m-%d} vs {mean:,.0f} per {period_days} days in the reference "
                f"({r:.0%})")
        rows.append(_row(cutoff, name, name, f"{what}_per_period", mean,
                         cur["periods"][worst][what], ratio, alarm, text))
    return rows


def _column(cutoff: pd.Timestamp, table: str, column: str, ref: Mapping[str, Any],
            cur: Mapping[str, Any], psi_alarm: float, margin: float) -> list[dict[str, Any]]:
    n = float(cur.get("n", 0))
    if n < MIN_ROWS or float(ref.get("n", 0)) < MIN_ROWS or ref["kind"] != cur["kind"]:
        return []
    out = []
    shares = [("missing_share", "missing")] + ([("zero_share", "zero")]
                                               if "zero" in ref and "zero" in cur else [])
    for check, key in shares:
        r, c = float(ref[key]), float(cur[key])
        out.append(_row(cutoff, table, column, check, r, c, margin, abs(c - r) > margin,
                        f"{column}: {key} share {c:.1%} vs {r:.1%} in the reference"))
    if ref["kind"] == CATEGORICAL:
        rs, cs = ref.get("shares", {}), cur.get("shares", {})
        new = [k for k, v in cs.items() if k not in rs and v >= MIN_SHARE and v * n >= MIN_EXPECTED]
        gone = [k for k, v in rs.items() if k not in cs and v * n >= MIN_EXPECTED]
        out.append(_row(cutoff, table, column, "new_category", "", ", ".join(new), MIN_SHARE,
                        bool(new), f"{column}: new value(s) {', '.join(map(repr, new))} "
                        f"({sum(cs[k] for k in new):.0%} of rows)" if new else ""))
        out.append(_row(cutoff, table, column, "vanished_category", ", ".join(gone), "", "",
                        bool(gone), f"{column}: {', '.join(map(repr, gone))} no longer "
                        f"occur(s) ({sum(rs[k] for k in gone):.0%} of reference rows)"
                        if gone else ""))
        value = mix_psi(rs, cs)
        out.append(_row(cutoff, table, column, "category_mix", "", value, psi_alarm,
                        bool(value > psi_alarm), f"{column}: mix moved (PSI {value:.2f} > "
                        f"{psi_alarm})"))
        return out
    rv, cv = ref.get("values"), cur.get("values")
    if rv is not None:
        gone = [k for k, v in rv.items() if k not in (cv or {}) and v * n >= MIN_EXPECTED]
        new = [k for k, v in (cv or {}).items() if k not in rv and v >= MIN_SHARE]
        lost, added = sum(rv[k] for k in gone), sum((cv or {})[k] for k in new)
        if cv is None:  # the scale became continuous
            added = 1.0
        hi_r, hi_c = _bounds(ref), _bounds(cur)
        alarm = lost >= SCALE_SHARE or added >= SCALE_SHARE
        text = (f"{column}: answers on a new scale: range {hi_c[0]:g}..{hi_c[1]:g} vs "
                f"{hi_r[0]:g}..{hi_r[1]:g} in the reference"
                + (f"; values {', '.join(gone)} ({lost:.0%} of reference answers) no longer "
                   "occur" if gone else "")
                + (f"; new values {', '.join(new)} ({added:.0%})" if new else ""))
        out.append(_row(cutoff, table, column, "scale", f"{hi_r[0]:g}..{hi_r[1]:g}",
                        f"{hi_c[0]:g}..{hi_c[1]:g}", SCALE_SHARE, alarm, text))
    value = profile_psi(ref, cur)
    out.append(_row(cutoff, table, column, "distribution", "", value, psi_alarm,
                    bool(value > psi_alarm), f"{column}: distribution moved (PSI {value:.2f} "
                    f"> {psi_alarm}; median {_median(cur):g} vs {_median(ref):g})"))
    return out


def _bounds(prof: Mapping[str, Any]) -> tuple[float, float]:
    qs = [q for q in prof.get("quantiles") or [] if q is not None]
    return (float(qs[0]), float(qs[-1])) if qs else (float("nan"), float("nan"))


def _median(prof: Mapping[str, Any]) -> float:
    qs = prof.get("quantiles") or []
    return float(qs[len(qs) // 2]) if qs and qs[len(qs) // 2] is not None else float("nan")


def check_quality(reference: Mapping[str, Any], current: Mapping[str, Any], cutoff: Any, *,
                  psi_alarm: float = 0.25, volume_ratio: float = 0.5, share_margin: float = 0.1,
                  acknowledge: Iterable[str] = ()) -> tuple[pd.DataFrame, list[Alarm]]:
    """Every check of ``current`` (a cutoff's :func:`data_profile`) against ``reference``
    (the training reference's): the checks table (:data:`CHECK_COLUMNS`; ``level`` ``ok``,
    ``alarm`` or ``acknowledged``) and the data alarms (acknowledged ones left out)."""
    cutoff = pd.Timestamp(cutoff)
    patterns = list(acknowledge)
    rows: list[dict[str, Any]] = []
    period = int(current.get("period_days", 30))
    for name, ref in reference.get("tables", {}).items():
        cur = current.get("tables", {}).get(name)
        if cur is None or not sum(p["rows"] for p in cur["periods"]):
            rows.append(_row(cutoff, name, name, "table_missing", "present", "absent", "",
                             True, f"{name}: no row in the {current.get('window_days')} days "
                             "before the cutoff (the reference had some)"))
            continue
        rows += _volume(cutoff, name, ref, cur, volume_ratio, period)
        for column, prof in ref["columns"].items():
            if column in cur["columns"]:
                rows += _column(cutoff, name, column, prof, cur["columns"][column], psi_alarm,
                                share_margin)
            elif float(prof.get("n", 0)) >= MIN_ROWS and sum(
                    p["rows"] for p in cur["periods"][-1:]) >= MIN_ROWS:
                rows.append(_row(cutoff, name, column, "vanished_category", "present", "absent",
                                 "", True, f"{column}: no value in the last {period} days"))
    alarms = []
    for r in rows:
        if r["level"] == "alarm" and acknowledged(r["column"], r["check"], patterns):
            r["level"] = "acknowledged"
        if r["level"] == "alarm":
            value = r["current"] if isinstance(r["current"], int | float) else float("nan")
            threshold = r["threshold"] if isinstance(r["threshold"], int | float) else float(
                "nan")
            alarms.append(Alarm("data", cutoff, r["check"], r["text"], r["column"],
                                float(value), float(threshold)))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS), alarms


def tables_with_alarms(alarms: Iterable[Alarm]) -> set[str]:
    """Tables named by data alarms (``events`` for ``events.event_type``)."""
    return {a.column.split(".", 1)[0] for a in alarms if a.cause == "data" and a.column}


def feature_tables(features: Iterable[Any]) -> dict[str, set[str]]:
    """The input tables each feature reads (``referrals`` read ``customers``; a derived
    feature reads its inputs' tables), from a resolved feature list
    (:func:`churnml.features.build.resolve_features`)."""
    import re

    features = list(features)
    direct = {f.name: {"customers" if f.table == "referrals" else f.table}
              for f in features if hasattr(f, "table")}
    derived = {f.name: [*f.inputs, *re.findall(r"[a-z][a-z0-9_]*", f.expr or "")]
               for f in features if not hasattr(f, "table")}

    def tables(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name in direct:
            return direct[name]
        if name not in derived or name in seen:
            return set()
        return set().union(*(tables(i, seen | {name}) for i in derived[name]))

    return {name: tables(name) for name in (*direct, *derived)}


def model_feature_tables(data: Any, spec: Any) -> dict[str, set[str]]:
    """:func:`feature_tables` of ``spec`` resolved against ``data`` (DuckDB)."""
    from churnml.engine import open_engine
    from churnml.features.build import resolve_features

    engine, owned = open_engine(data)
    try:
        return feature_tables(resolve_features(engine, spec))
    finally:
        if owned:
            engine.close()
