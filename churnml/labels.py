"""Churn and LTV labels per (customer, cutoff), and the training panel (features + labels).

Labels look only at ``cutoff <= time < cutoff + horizon`` (features only at ``time <
cutoff``). Definitions (:class:`~churnml.config.ChurnConfig`, horizon ``H``, look-back ``L``,
grace ``G``, all in days):

* **Non-contractual** (``kind='non_contractual'``). Target action = a purchase (transaction
  with ``amount > 0``) or, if ``target_action`` names an event type, such an event. At risk at
  cutoff ``c``: customers with a target action in ``[c - L, c)``. ``churned = 1`` iff they
  have no target action in ``[c, c + H)``: a purchase exactly at ``c`` counts (not churned),
  one exactly at ``c + H`` does not; a return (negative amount) is never a purchase.
* **Contractual** (``kind='contractual'``). At risk: customers with a subscription active at
  ``c`` (``start_ts < c``, no ``end_ts`` before ``c`` and no ``term_end_ts`` at or before
  ``c``: a completed fixed term is no churn, and no longer at risk). A customer's
  subscriptions are merged into coverage spells, a subscription starting at most ``G`` days
  after the latest end so far continuing the spell. ``churned = 1`` iff the spell covering
  ``c`` ends before ``c + H``; a re-subscription within the grace period (even after
  ``c + H``) is no churn.
* **LTV** (``ltv``): net revenue in ``[c, c + H)``: the sum of transaction amounts, returns
  included (so it can be negative), in the input currency; summed exactly (each amount as
  ``DECIMAL(18, 4)``, :func:`churnml.engine.sql.money`), so every engine and thread count
  gives the same label to the last bit.

**Unlabelled cutoffs.** A label needs the data to cover its whole window: ``c + H`` (plus
``G`` for contractual churn, to see a re-subscription) must not be after the end of
observation (midnight after the latest timestamp, or ``data_end``). :func:`build_labels`
raises :class:`UnlabelledCutoffError` for such cutoffs rather than return labels that would
silently count unobserved customers as churned; :func:`labelled_cutoffs` lists the usable
ones and :func:`~churnml.features.build_features` serves the scoring cutoff.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from churnml.config import ChurnConfig
from churnml.engine import EngineName, SqlEngine, open_engine
from churnml.engine.base import ONE_DAY
from churnml.engine.base import observation_end as data_observation_end
from churnml.engine.sql import literal, money, shift_days
from churnml.errors import ChurnmlError
from churnml.features.build import (
    CutoffsLike,
    FeatureList,
    as_cutoffs,
    register_cutoffs,
    resolve_features,
    tidy,
)
from churnml.features.compiler import compile_features
from churnml.features.definitions import CUTOFF
from churnml.features.spec import FeatureSpec

PURCHASE = "purchase"
LABELS = ("churned", "ltv")


class UnlabelledCutoffError(ChurnmlError, ValueError):
    """A cutoff's label window reaches past the end of the data."""


def label_window_days(churn: ChurnConfig) -> int:
    """Days after a cutoff that its label reads (horizon, plus the grace for contractual)."""
    grace = churn.resubscribe_grace_days if churn.kind == "contractual" else 0
    return churn.horizon_days + grace


def observation_end(engine: SqlEngine, data_end: pd.Timestamp | str | None = None
                    ) -> pd.Timestamp:
    """``data_end`` if given, else midnight after the latest timestamp of the data."""
    if data_end is not None:
        return pd.Timestamp(data_end)
    return data_observation_end(engine.observation_span()[1])


def _data_end(data: Any, data_end: pd.Timestamp | str | None) -> pd.Timestamp | str | None:
    """``data_end``, else the configured ``data.end`` a :class:`CustomerData` carries."""
    return data_end if data_end is not None else getattr(data, "end_configured", None)


def _check_labelled(cutoffs: pd.DatetimeIndex, churn: ChurnConfig, end: pd.Timestamp) -> None:
    window = pd.Timedelta(days=label_window_days(churn))
    late = cutoffs[cutoffs + window > end]
    if len(late):
        shown = ", ".join(str(c) for c in late[:5]) + (" ..." if len(late) > 5 else "")
        raise UnlabelledCutoffError(
            f"{len(late)} cutoff(s) cannot be labelled: {shown}. A label reads "
            f"{label_window_days(churn)} days after its cutoff but the data end at {end} "
            f"(last labelled cutoff: {end - window}). Drop these cutoffs, or pass data_end if "
            f"the data are known to be complete later."
        )


def target_rows(churn: ChurnConfig) -> tuple[str, str]:
    """``(table, condition)`` of the target actions of a purchase log: purchases (positive
    amounts) or the events of the configured type."""
    if churn.target_action == PURCHASE:
        return "transactions", "amount > 0"
    return "events", f"event_type = {literal(churn.target_action)}"


def _target_sql(engine: SqlEngine, churn: ChurnConfig) -> str:
    table, condition = target_rows(churn)
    if table == "events":
        engine.require("events", f"for target_action {churn.target_action!r}", "event_type")
    return f"SELECT customer_id, ts FROM {engine.relation(table)} WHERE {condition}"


def _at_risk_ctes(
    engine: SqlEngine, churn: ChurnConfig, cutoffs: str, per_customer: bool = False
) -> list[tuple[str, str]]:
    """``l_at_risk(customer_id, cutoff, churned)``."""
    h = churn.horizon_days
    own = " AND t.customer_id = c.customer_id" if per_customer else ""
    if churn.kind == "non_contractual":
        before = (f"SELECT DISTINCT customer_id, cutoff FROM {cutoffs}" if per_customer else
                  f"SELECT DISTINCT t.customer_id, c.cutoff FROM l_target t "
                  f"JOIN {cutoffs} c ON t.ts < c.cutoff "
                  f"AND t.ts >= {shift_days('c.cutoff', -churn.lookback_days)}")
        return [
            ("l_target", _target_sql(engine, churn)),
            ("l_before", before),
            ("l_after", f"SELECT DISTINCT t.customer_id, c.cutoff FROM l_target t "
                        f"JOIN {cutoffs} c ON t.ts >= c.cutoff "
                        f"AND t.ts < {shift_days('c.cutoff', h)}{own}"),
            ("l_at_risk", "SELECT b.customer_id, b.cutoff, "
                          "CASE WHEN a.customer_id IS NULL THEN 1 ELSE 0 END AS churned "
                          "FROM l_before b LEFT JOIN l_after a "
                          "ON a.customer_id = b.customer_id AND a.cutoff = b.cutoff"),
        ]
    engine.require("subscriptions", "when churn.kind is 'contractual'")
    order = "PARTITION BY customer_id ORDER BY start_ts, end_ts"
    earlier = f"({order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    new_spell = (
        f"CASE WHEN prev_open IS NULL OR (prev_open = 0 AND start_ts > "
        f"{shift_days('prev_end', churn.resubscribe_grace_days)}) THEN 1 ELSE 0 END"
    )
    # a fixed term (term_end_ts) that has run out is completion: no longer at risk, not churn
    term = "term_end_ts" if engine.has("subscriptions", "term_end_ts") else \
        "CAST(NULL AS TIMESTAMP)"
    return [
        ("l_subs", f"SELECT customer_id, start_ts, end_ts, {term} AS term_end_ts, "
                   f"max(end_ts) OVER {earlier} AS "
                   f"prev_end, max(CASE WHEN end_ts IS NULL THEN 1 ELSE 0 END) OVER {earlier} "
                   f"AS prev_open FROM {engine.relation('subscriptions')}"),
        ("l_spelled", f"SELECT customer_id, start_ts, end_ts, term_end_ts, sum({new_spell}) "
                      f"OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS "
                      f"spell FROM l_subs"),
        ("l_spells", "SELECT customer_id, spell, max(CASE WHEN end_ts IS NULL THEN 1 ELSE 0 "
                     "END) AS open, max(end_ts) AS spell_end FROM l_spelled "
                     "GROUP BY customer_id, spell"),
        ("l_at_risk", f"SELECT s.customer_id, c.cutoff, min(CASE WHEN e.open = 1 OR "
                      f"e.spell_end >= {shift_days('c.cutoff', h)} THEN 0 ELSE 1 END) "
                      f"AS churned FROM l_spelled s JOIN l_spells e "
                      f"ON e.customer_id = s.customer_id AND e.spell = s.spell "
                      f"JOIN {cutoffs} c ON s.start_ts < c.cutoff "
                      f"AND (s.end_ts IS NULL OR s.end_ts >= c.cutoff) "
                      f"AND (s.term_end_ts IS NULL OR s.term_end_ts > c.cutoff)"
                      f"{own.replace('t.', 's.')} "
                      f"GROUP BY s.customer_id, c.cutoff"),
    ]


def label_query(engine: SqlEngine, churn: ChurnConfig, cutoffs: str, per_customer: bool = False
                ) -> tuple[list[tuple[str, str]], str]:
    """``(ctes, select)`` returning ``customer_id, cutoff, churned, ltv`` for customers at
    risk; ``cutoffs`` is the registered cutoffs relation.

    With ``per_customer`` the relation holds ``customer_id, cutoff`` pairs (e.g. campaign
    contacts at their contact times): each customer is labelled at its own cutoffs only, and
    every non-contractual pair counts as at risk (no look-back condition); a contractual one
    still needs a subscription running at its cutoff.
    """
    own = " AND t.customer_id = c.customer_id" if per_customer else ""
    revenue = (
        f"SELECT t.customer_id, c.cutoff, sum({money('t.amount')}) AS ltv "
        f"FROM {engine.relation('transactions')} t JOIN {cutoffs} c "
        f"ON t.ts >= c.cutoff AND t.ts < {shift_days('c.cutoff', churn.horizon_days)}{own} "
        f"GROUP BY t.customer_id, c.cutoff"
    )
    ctes = [*_at_risk_ctes(engine, churn, cutoffs, per_customer), ("l_revenue", revenue)]
    select = (
        "SELECT r.customer_id, r.cutoff, r.churned, CAST(COALESCE(v.ltv, 0) AS DOUBLE) AS ltv "
        "FROM l_at_risk r LEFT JOIN l_revenue v "
        "ON v.customer_id = r.customer_id AND v.cutoff = r.cutoff"
    )
    return ctes, select


def _tidy_labels(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values([CUTOFF, "customer_id"], kind="stable").reset_index(drop=True)
    frame[CUTOFF] = frame[CUTOFF].astype("datetime64[us]")
    frame["churned"] = frame["churned"].astype("int64")
    frame["ltv"] = frame["ltv"].astype("float64")
    return frame


def build_labels(
    data: Any,
    cutoffs: CutoffsLike,
    churn: ChurnConfig | None = None,
    *,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
    data_end: pd.Timestamp | str | None = None,
) -> Any:
    """Churn and LTV labels of the customers at risk at each cutoff.

    Returns ``customer_id, cutoff, churned`` (int 0/1) and ``ltv`` (net revenue over the
    horizon, float), sorted by cutoff and customer: pandas, or a Spark DataFrame when every
    input table is one. Raises :class:`UnlabelledCutoffError` for a cutoff whose label window
    is not covered by the data (see the module docstring).
    """
    churn = churn or ChurnConfig()
    cuts = as_cutoffs(cutoffs)
    data_end = _data_end(data, data_end)
    eng, owned = open_engine(data, engine, spark=spark)
    try:
        _check_labelled(cuts, churn, observation_end(eng, data_end))
        relations = register_cutoffs(eng, cuts)
        ctes, select = label_query(eng, churn, relations.cutoffs)
        result = eng.run(ctes, select + " ORDER BY r.cutoff, r.customer_id")
        return result if eng.returns_native else _tidy_labels(result)
    finally:
        if owned and not eng.returns_native:
            eng.close()


def build_panel(
    data: Any,
    cutoffs: CutoffsLike,
    spec: FeatureSpec | FeatureList | None = None,
    churn: ChurnConfig | None = None,
    *,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    data_end: pd.Timestamp | str | None = None,
) -> Any:
    """Features joined to labels: one row per customer at risk per cutoff, in one query.

    Columns: ``customer_id, cutoff``, every feature, ``churned, ltv``. Raises
    :class:`UnlabelledCutoffError` like :func:`build_labels`.
    """
    churn = churn or ChurnConfig()
    cuts = as_cutoffs(cutoffs)
    data_end = _data_end(data, data_end)
    eng, owned = open_engine(data, engine, spark=spark, threads=threads,
                             memory_limit=memory_limit)
    try:
        _check_labelled(cuts, churn, observation_end(eng, data_end))
        features = resolve_features(eng, spec)
        relations = register_cutoffs(eng, cuts)
        f_ctes, f_select = compile_features(features, eng.schema, cuts, relations)
        l_ctes, l_select = label_query(eng, churn, relations.cutoffs)
        ctes = [*f_ctes, ("p_features", f_select), *l_ctes, ("p_labels", l_select)]
        select = (
            "SELECT f.*, l.churned, l.ltv FROM p_features f JOIN p_labels l "
            "ON l.customer_id = f.customer_id AND l.cutoff = f.cutoff "
            "ORDER BY f.cutoff, f.customer_id"
        )
        result = eng.run(ctes, select)
        if eng.returns_native:
            return result
        out = tidy(result, features)
        out["churned"] = out["churned"].astype("int64")
        return out
    finally:
        if owned and not eng.returns_native:
            eng.close()


def labelled_cutoffs(
    data: Any,
    churn: ChurnConfig | None = None,
    freq: str = "MS",
    *,
    start: pd.Timestamp | str | None = None,
    data_end: pd.Timestamp | str | None = None,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
) -> pd.DatetimeIndex:
    """Regular cutoffs (pandas offset alias ``freq``, default month starts) after ``start``
    (default: the first data) whose label window the data cover."""
    churn = churn or ChurnConfig()
    data_end = _data_end(data, data_end)
    eng, owned = open_engine(data, engine, spark=spark)
    try:
        first, _ = eng.observation_span()
        end = observation_end(eng, data_end)
    finally:
        if owned:
            eng.close()
    first = pd.Timestamp(start) if start is not None else first
    last = end - pd.Timedelta(days=label_window_days(churn))
    return pd.date_range(first.normalize() + ONE_DAY, last, freq=freq).astype("datetime64[us]")


def observation_end_of(data: Any, data_end: pd.Timestamp | str | None = None) -> pd.Timestamp:
    """End of observation of ``data``: ``data_end`` if given, else midnight after its latest
    timestamp (the instant up to which labels can be known)."""
    eng, owned = open_engine(data, "duckdb")
    try:
        return observation_end(eng, data_end)
    finally:
        if owned:
            eng.close()


def at_risk(data: Any, cutoffs: CutoffsLike, churn: ChurnConfig | None = None) -> pd.DataFrame:
    """``customer_id, cutoff`` of the customers at risk at each cutoff (the population of
    :func:`build_labels`), known at the cutoff itself: no label window is needed."""
    churn = churn or ChurnConfig()
    cuts = as_cutoffs(cutoffs)
    eng, owned = open_engine(data, "duckdb")
    try:
        relations = register_cutoffs(eng, cuts)
        ctes = _at_risk_ctes(eng, churn, relations.cutoffs)
        result = eng.run(ctes, "SELECT customer_id, cutoff FROM l_at_risk "
                               "ORDER BY cutoff, customer_id")
        result[CUTOFF] = result[CUTOFF].astype("datetime64[us]")
        return result.reset_index(drop=True)
    finally:
        if owned:
            eng.close()
