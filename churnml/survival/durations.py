"""Time to churn per (customer, cutoff): the durations table of the survival models.

Every cutoff is a *landmark*: the customers at risk there (the population of
:func:`churnml.labels.build_labels`) are followed from the cutoff until they churn or the
data end. Time is counted in **periods** of ``period_days`` days from the cutoff, and the
durations are whole periods, so that ``S(k) = P(D > k)`` is the probability that the customer
is still active at the instant ``cutoff + k * period_days``.

Columns (one row per customer at risk per cutoff):

* ``duration`` -- the period ``D`` in which churn happened (event), else the number of whole
  periods observed (censored);
* ``event`` -- True when churn was observed within the observed periods;
* ``censor_duration`` -- whole periods from the cutoff to the end of what the data can show
  (administrative censoring, known for every row; ``duration <= censor_duration``);
* ``tenure`` -- whole periods the customer had already been active at the cutoff.

**Subscriptions** (``churn.kind == 'contractual'``). A customer's subscriptions are merged
into coverage spells exactly as in the contractual label: a subscription starting at most
``resubscribe_grace_days`` (``G``) after the latest end so far continues the spell. The event
is the end of the spell covering the cutoff, at ``T = spell_end - cutoff`` days, in period
``D = floor(T / period_days) + 1`` (an end exactly at ``cutoff + k * period_days`` is still
active at that instant, as the label counts an end exactly at ``cutoff + horizon`` as no
churn). An end is a churn only once the grace period after it has been seen, so the
administrative censoring time is ``data_end - G``; an open spell (``end_ts`` null) or one
ending after ``data_end - G`` is censored there. ``tenure``: periods since the spell started.
A fixed term (``term_end_ts``, e.g. the end of a course) is completion, not churn: a spell
whose subscriptions all have a term is censored at its term end (an end at or after it is
completion), and is no longer at risk once the term has run out, as in the label.
A churned-and-returned customer churns at the first end (the spell covering the cutoff);
the return starts a new spell, which is followed from the later landmarks with its own
tenure.

**Purchase logs** (``'non_contractual'``). Leaving is never observed directly; it is defined
as the completion of a silence of ``horizon_days`` (``H``) after the cutoff: the customer has
lapsed at an instant ``s >= cutoff + H`` when there was no target action (a purchase, or the
configured event type) in ``[s - H, s)``. The silence starts at the cutoff itself when nothing
happens in ``[cutoff, cutoff + H)`` (lapsed at ``cutoff + H``: period ``D = ceil(H / p)``),
else just after the first target action ``t >= cutoff`` followed by a gap of at least ``H``
days (lapsed just after ``t + H``: ``D = floor((t - cutoff + H) / p) + 1``), ``p`` being
``period_days``; ``D`` is the first period whose end is a lapsed instant. The start of the
silence is observable up to ``data_end - H``, so on this time axis (silence start + ``H``)
the censoring time is ``data_end``. Churn cannot be seen before ``H`` days, so ``S(k) = 1``
for ``k * p < H``, and ``1 - S(H / p)`` is the probability of exactly the event of the
non-contractual churn label (no target action in ``[cutoff, cutoff + H)``) whenever ``H`` is
a multiple of ``p``. ``tenure``: periods since the start of the customer's current run of
target actions (the first one after the latest gap of at least ``H`` days before the cutoff).
A customer who lapses and buys again is followed from the later landmarks as a new run.

Everything is computed by one SQL query on the engine (DuckDB, or Spark through the same
SQL), reusing the at-risk and spell definitions of :mod:`churnml.labels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig
from churnml.engine import EngineName, SqlEngine, open_engine
from churnml.engine.sql import days_between, shift_days, ts_literal
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
from churnml.features.definitions import CUTOFF, Feature
from churnml.features.spec import FeatureSpec
from churnml.labels import _at_risk_ctes, _data_end, observation_end, target_rows

DURATION, EVENT, CENSOR_DURATION, TENURE = "duration", "event", "censor_duration", "tenure"
DURATION_COLUMNS = (DURATION, EVENT, CENSOR_DURATION, TENURE)


class UnobservedCutoffError(ChurnmlError, ValueError):
    """A cutoff leaves less than one whole period of data to follow its customers."""


def censor_days(churn: ChurnConfig) -> int:
    """Days before the end of the data at which a churn can no longer be confirmed: the
    re-subscribe grace for subscriptions, 0 for purchase logs (module docstring)."""
    return churn.resubscribe_grace_days if churn.kind == "contractual" else 0


def check_period_days(period_days: int) -> int:
    """``period_days`` as a positive int, else a :class:`ValueError`."""
    if isinstance(period_days, bool) or int(period_days) != period_days or period_days < 1:
        raise ValueError(f"period_days must be a whole number of days >= 1, got {period_days!r}")
    return int(period_days)


def _check_observed(cutoffs: pd.DatetimeIndex, churn: ChurnConfig, end: pd.Timestamp,
                    period_days: int) -> None:
    """Every cutoff is followed for at least one whole period."""
    last = end - pd.Timedelta(days=censor_days(churn) + period_days)
    late = cutoffs[cutoffs > last]
    if len(late):
        shown = ", ".join(str(c) for c in late[:5]) + (" ..." if len(late) > 5 else "")
        raise UnobservedCutoffError(
            f"{len(late)} cutoff(s) leave no whole {period_days}-day period before the end of "
            f"the data ({end}, less a {censor_days(churn)}-day re-subscribe grace): {shown}. "
            f"The last cutoff that can be followed is {last}."
        )


def _tenure(start: str, p: int) -> str:
    """Whole periods from ``start`` to the cutoff ``r.cutoff``."""
    return f"floor({days_between(start, 'r.cutoff')} / {p})"


# the coverage spell of each customer that covers the cutoff (subscriptions)
_SPELL_AT_CUTOFF = ("FROM l_at_risk r JOIN d_spells s ON s.customer_id = r.customer_id "
                    "AND s.spell_start < r.cutoff AND (s.open = 1 OR s.spell_end >= r.cutoff)")


def _spell_ctes() -> list[tuple[str, str]]:
    """``d_spells``: one row per coverage spell; a spell has a fixed term when every
    subscription in it has one."""
    return [("d_spells", "SELECT customer_id, spell, min(start_ts) AS spell_start, "
                         "max(CASE WHEN end_ts IS NULL THEN 1 ELSE 0 END) AS open, "
                         "max(end_ts) AS spell_end, CASE WHEN count(term_end_ts) = count(*) "
                         "THEN max(term_end_ts) END AS term_end "
                         "FROM l_spelled GROUP BY customer_id, spell")]


def _run_ctes(churn: ChurnConfig, before: pd.Timestamp | None = None
              ) -> list[tuple[str, str]]:
    """The runs of target actions (purchase logs).

    ``d_gaps(customer_id, ts, prev_ts[, next_ts])``: each target action with its
    neighbours (only the actions before ``before`` when given, and then without
    ``next_ts``); ``d_before(customer_id, cutoff, run_start)``: for the customers at risk
    (``l_before``), the start of the current run at the cutoff -- the latest target action
    before the cutoff that is the customer's first or comes at least ``horizon_days`` after
    the previous one. A customer at risk has an action in the look-back, so this is the start
    of the run of the last action before the cutoff. Only one row per run is joined to the
    cutoffs, so the cost is one sort of the target actions.
    """
    order = "PARTITION BY customer_id ORDER BY ts"
    lead = "" if before is not None else f", lead(ts) OVER ({order}) AS next_ts"
    where = "" if before is None else f" WHERE ts < {ts_literal(before)}"
    return [
        ("d_gaps", f"SELECT customer_id, ts, lag(ts) OVER ({order}) AS prev_ts{lead} "
                   f"FROM l_target{where}"),
        ("d_starts", f"SELECT customer_id, ts FROM d_gaps WHERE prev_ts IS NULL "
                     f"OR ts >= {shift_days('prev_ts', churn.horizon_days)}"),
        ("d_before", "SELECT b.customer_id, b.cutoff, max(s.ts) AS run_start FROM l_before b "
                     "JOIN d_starts s ON s.customer_id = b.customer_id AND s.ts < b.cutoff "
                     "GROUP BY b.customer_id, b.cutoff"),
    ]


def durations_query(
    engine: SqlEngine, churn: ChurnConfig, cutoffs: str, period_days: int,
    data_end: pd.Timestamp,
) -> tuple[list[tuple[str, str]], str]:
    """``(ctes, select)`` returning ``customer_id, cutoff, duration, event, censor_duration,
    tenure`` for the customers at risk; ``cutoffs`` is the registered cutoffs relation."""
    p = check_period_days(period_days)
    ctes = _at_risk_ctes(engine, churn, cutoffs)
    end = ts_literal(data_end)
    # whole periods from the cutoff to the censoring time (data_end less the grace)
    censor = f"floor(({days_between('r.cutoff', end)} - {censor_days(churn)}) / {p})"
    if churn.kind == "contractual":
        ctes += [
            *_spell_ctes(),
            ("d_raw", f"SELECT r.customer_id, r.cutoff, CASE WHEN s.term_end IS NULL THEN "
                      f"{censor} ELSE least({censor}, "
                      f"floor({days_between('r.cutoff', 's.term_end')} / {p})) END "
                      f"AS censor_periods, "
                      f"CASE WHEN s.open = 1 OR s.spell_end >= s.term_end THEN NULL ELSE "
                      f"floor({days_between('r.cutoff', 's.spell_end')} / {p}) + 1 END "
                      f"AS event_period, {_tenure('s.spell_start', p)} AS tenure "
                      f"{_SPELL_AT_CUTOFF}"),
        ]
    else:
        h = churn.horizon_days
        order = "PARTITION BY customer_id ORDER BY ts"
        ctes += [
            *_run_ctes(churn),
            ("d_runs", f"SELECT customer_id, ts, "
                       f"min(CASE WHEN next_ts IS NULL OR next_ts >= {shift_days('ts', h)} "
                       f"THEN ts END) OVER ({order} ROWS BETWEEN CURRENT ROW AND UNBOUNDED "
                       f"FOLLOWING) AS lapse_start FROM d_gaps"),
            # first silence start at or after the cutoff: the cutoff itself when nothing
            # happens in [c, c + H), else the lapse start of the first action after it
            ("d_after", f"SELECT r.customer_id, r.cutoff, min(g.lapse_start) AS lapse_start "
                        f"FROM l_at_risk r JOIN d_runs g ON g.customer_id = r.customer_id "
                        f"AND g.ts >= r.cutoff AND g.ts < {shift_days('r.cutoff', h)} "
                        f"GROUP BY r.customer_id, r.cutoff"),
            ("d_raw", f"SELECT r.customer_id, r.cutoff, {censor} AS censor_periods, "
                      f"CASE WHEN a.lapse_start IS NULL THEN ceil({h} / {p}) ELSE "
                      f"floor(({days_between('r.cutoff', 'a.lapse_start')} + {h}) / {p}) + 1 "
                      f"END AS event_period, {_tenure('b.run_start', p)} AS tenure "
                      f"FROM l_at_risk r "
                      f"LEFT JOIN d_after a ON a.customer_id = r.customer_id "
                      f"AND a.cutoff = r.cutoff "
                      f"LEFT JOIN d_before b ON b.customer_id = r.customer_id "
                      f"AND b.cutoff = r.cutoff"),
        ]
    select = (
        "SELECT customer_id, cutoff, "
        "CAST(CASE WHEN event_period <= censor_periods THEN event_period "
        "ELSE censor_periods END AS DOUBLE) AS duration, "
        "COALESCE(event_period <= censor_periods, FALSE) AS event, "
        "CAST(censor_periods AS DOUBLE) AS censor_duration, "
        f"{_TENURE_OUT} FROM d_raw"
    )
    return ctes, select


_TENURE_OUT = "CAST(COALESCE(tenure, 0) AS DOUBLE) AS tenure"


def tenure_query(
    engine: SqlEngine, churn: ChurnConfig, cutoffs: str, period_days: int,
    last_cutoff: pd.Timestamp,
) -> tuple[list[tuple[str, str]], str]:
    """``(ctes, select)`` returning ``customer_id, cutoff, tenure`` for the customers at risk,
    the ``tenure`` of :func:`durations_query` read from the rows before ``last_cutoff`` alone
    (no look-ahead: nothing after the cutoff is followed, so it costs one sort of the target
    actions, or of the subscriptions)."""
    p = check_period_days(period_days)
    ctes = _at_risk_ctes(engine, churn, cutoffs)
    if churn.kind == "contractual":
        ctes += [*_spell_ctes(), ("d_raw", f"SELECT r.customer_id, r.cutoff, "
                                           f"{_tenure('s.spell_start', p)} AS tenure "
                                           f"{_SPELL_AT_CUTOFF}")]
    else:
        ctes += [*_run_ctes(churn, before=last_cutoff),
                 ("d_raw", f"SELECT r.customer_id, r.cutoff, {_tenure('r.run_start', p)} "
                           f"AS tenure FROM d_before r")]
    return ctes, f"SELECT customer_id, cutoff, {_TENURE_OUT} FROM d_raw"


def _tidy_durations(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values([CUTOFF, "customer_id"], kind="stable").reset_index(drop=True)
    frame[CUTOFF] = frame[CUTOFF].astype("datetime64[us]")
    for col in (DURATION, CENSOR_DURATION, TENURE):
        frame[col] = frame[col].astype("float64")
    frame[EVENT] = frame[EVENT].astype("bool")
    return frame


def build_durations(
    data: Any,
    cutoffs: CutoffsLike,
    churn: ChurnConfig | None = None,
    period_days: int = 30,
    *,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
    data_end: pd.Timestamp | str | None = None,
) -> Any:
    """Durations and censoring of the customers at risk at each cutoff (module docstring).

    Returns ``customer_id, cutoff, duration, event, censor_duration, tenure`` sorted by cutoff
    and customer (pandas; a Spark DataFrame when every input table is one). Raises
    :class:`UnobservedCutoffError` for a cutoff followed for less than one whole period.
    """
    churn = churn or ChurnConfig()
    p = check_period_days(period_days)
    cuts = as_cutoffs(cutoffs)
    data_end = _data_end(data, data_end)
    eng, owned = open_engine(data, engine, spark=spark)
    try:
        end = observation_end(eng, data_end)
        _check_observed(cuts, churn, end, p)
        relations = register_cutoffs(eng, cuts)
        ctes, select = durations_query(eng, churn, relations.cutoffs, p, end)
        result = eng.run(ctes, select + " ORDER BY cutoff, customer_id")
        return result if eng.returns_native else _tidy_durations(result)
    finally:
        if owned and not eng.returns_native:
            eng.close()


def build_tenure(
    data: Any,
    cutoffs: CutoffsLike,
    churn: ChurnConfig | None = None,
    period_days: int = 30,
    *,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pd.DataFrame:
    """``customer_id, cutoff, tenure`` of the customers at risk at each cutoff, known at the
    cutoff itself (no period after it is needed: for scoring at the end of the data); equal
    to the ``tenure`` of :func:`build_durations`, from one sort of the target actions."""
    churn = churn or ChurnConfig()
    p = check_period_days(period_days)
    cuts = as_cutoffs(cutoffs)
    eng, owned = open_engine(data, engine, spark=spark, threads=threads,
                             memory_limit=memory_limit)
    try:
        relations = register_cutoffs(eng, cuts)
        ctes, select = tenure_query(eng, churn, relations.cutoffs, p, cuts.max())
        result = eng.run(ctes, select + " ORDER BY cutoff, customer_id")
        if eng.returns_native:
            return result
        result[CUTOFF] = result[CUTOFF].astype("datetime64[us]")
        return result.reset_index(drop=True)
    finally:
        if owned and not eng.returns_native:
            eng.close()


RUN_START_FEATURE = "survival_run_start_days"
LAST_ACTION_FEATURE = "survival_last_action_days"


def tenure_features(churn: ChurnConfig) -> list[Feature]:
    """The two all-time features of the target actions (purchase logs) from which
    :func:`tenure_from_features` gives the ``tenure`` of :func:`durations_query` inside the
    one feature query of scoring: days from the start of the current run (a gap of
    ``horizon_days`` starts one) and from the last action to the cutoff. The run start rides
    the ``prev`` window the purchase-gap features sort anyway (same condition)."""
    table, where = target_rows(churn)
    return [
        Feature(name=RUN_START_FEATURE, table=table, agg="days_since_run_start", where=where,
                gap_days=churn.horizon_days, unit="days", family="tenure",
                description="current run of target actions began {value:.0f} days ago"),
        Feature(name=LAST_ACTION_FEATURE, table=table, agg="days_since_last", where=where,
                unit="days", family="recency",
                description="last target action {value:.0f} days ago"),
    ]


def tenure_from_features(frame: pd.DataFrame, churn: ChurnConfig, period_days: int
                         ) -> np.ndarray:
    """``tenure`` per row of ``frame`` (the :func:`tenure_features` columns): whole periods
    since the run started, ``floor(days / period_days)``, for a customer at risk (a target
    action within ``lookback_days`` before the cutoff), else 0 as for a customer not at
    risk."""
    p = check_period_days(period_days)
    last = frame[LAST_ACTION_FEATURE].to_numpy(float)
    run = frame[RUN_START_FEATURE].to_numpy(float)
    with np.errstate(invalid="ignore"):
        at_risk = last <= churn.lookback_days
    return np.where(at_risk, np.floor(run / p), 0.0)


def build_survival_panel(
    data: Any,
    cutoffs: CutoffsLike,
    spec: FeatureSpec | FeatureList | None = None,
    churn: ChurnConfig | None = None,
    period_days: int = 30,
    *,
    engine: EngineName | SqlEngine = "duckdb",
    spark: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    data_end: pd.Timestamp | str | None = None,
) -> Any:
    """Features at each landmark joined to the durations, in one query: ``customer_id,
    cutoff``, every feature, ``duration, event, censor_duration, tenure``."""
    churn = churn or ChurnConfig()
    p = check_period_days(period_days)
    cuts = as_cutoffs(cutoffs)
    data_end = _data_end(data, data_end)
    eng, owned = open_engine(data, engine, spark=spark, threads=threads,
                             memory_limit=memory_limit)
    try:
        end = observation_end(eng, data_end)
        _check_observed(cuts, churn, end, p)
        features = resolve_features(eng, spec)
        relations = register_cutoffs(eng, cuts)
        f_ctes, f_select = compile_features(features, eng.schema, cuts, relations)
        d_ctes, d_select = durations_query(eng, churn, relations.cutoffs, p, end)
        ctes = [*f_ctes, ("p_features", f_select), *d_ctes, ("p_durations", d_select)]
        cols = ", ".join(f"d.{c}" for c in DURATION_COLUMNS)
        select = (
            f"SELECT f.*, {cols} FROM p_features f JOIN p_durations d "
            "ON d.customer_id = f.customer_id AND d.cutoff = f.cutoff "
            "ORDER BY f.cutoff, f.customer_id"
        )
        result = eng.run(ctes, select)
        if eng.returns_native:
            return result
        out = tidy(result, features)
        out[EVENT] = out[EVENT].astype("bool")
        return out
    finally:
        if owned and not eng.returns_native:
            eng.close()
