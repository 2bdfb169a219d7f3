"""Built-in feature groups: each a function of the spec and the tables present.

Units: days are fractional days (``cutoff - time``), money is in the input currency, counts
are rows, rates are per day of tenure. "Purchase" = a transaction matching
``spec.purchase_where`` (default ``amount > 0``); returns are transactions with a negative
amount; "activity" = purchases and engagement events.

Every feature names its reason *family* (a customer's reasons name at most one feature per
family) and words a zero value: counts and amounts of things whose absence says nothing
(returns, tickets, referrals) have ``zero_description=""`` (a zero is no reason).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from churnml.engine.sql import literal
from churnml.features.definitions import SOURCES, DerivedFeature, Feature

if TYPE_CHECKING:
    from churnml.features.spec import FeatureSpec

Built = list[Feature | DerivedFeature]
Schema = dict[str, list[str]]
RETURN_WHERE = "amount < 0"
# Rates divide by the tenure but by at least this many days, so a customer first seen minutes
# before the cutoff does not get an absurd rate.
MIN_EXPOSURE_DAYS = 1.0
# Survey kinds whose low answers are the good ones (effort); the others are higher-is-better.
LOWER_IS_BETTER = frozenset({"ces"})


def _has(schema: Schema, source: str, column: str | None = None) -> bool:
    src = SOURCES[source]
    return src.available(schema) and (column is None or column in schema[src.table])


def _window_label(days: int | None) -> str:
    return "total" if days is None else f"{days}d"


def _in_window(days: int | None) -> str:
    return "in total" if days is None else f"in the last {days} days"


def event_feature_name(event_type: str) -> str:
    """Identifier made from an event type (``"Push Click"`` -> ``push_click``)."""
    name = re.sub(r"[^a-z0-9]+", "_", event_type.lower()).strip("_") or "event"
    return name if name[0].isalpha() else f"e_{name}"


def _per_tenure_day(count: str) -> str:
    """SQL rate: ``count / max(tenure_days, MIN_EXPOSURE_DAYS)`` (per day)."""
    return f"({count}) / greatest(tenure_days, {MIN_EXPOSURE_DAYS!r})"


def recency(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Days since the last purchase / event / survey, and since the last activity (the
    smaller of the last purchase and the last event); tenure = days since the first activity
    or signup, whichever is earliest."""
    out: Built = []
    firsts: list[str] = []
    out.append(Feature(
        name="days_since_last_purchase", table="transactions", agg="days_since_last",
        where=spec.purchase_where, unit="days", family="recency",
        description="last purchase {value:.0f} days ago"))
    out.append(Feature(
        name="days_since_first_transaction", table="transactions", agg="days_since_first",
        unit="days", family="tenure", description="first transaction {value:.0f} days ago"))
    firsts.append("days_since_first_transaction")
    if _has(schema, "events"):
        out.append(Feature(
            name="days_since_last_event", table="events", agg="days_since_last", unit="days",
            family="recency", description="last engagement {value:.0f} days ago"))
        out.append(Feature(
            name="days_since_first_event", table="events", agg="days_since_first",
            unit="days", family="tenure", description="first engagement {value:.0f} days ago"))
        firsts.append("days_since_first_event")
        out.append(DerivedFeature(
            name="days_since_last_activity", op="expr",
            expr="least(days_since_last_purchase, days_since_last_event)", unit="days",
            family="recency", description="last purchase or engagement {value:.0f} days ago"))
    if _has(schema, "surveys"):
        out.append(Feature(
            name="days_since_last_survey", table="surveys", agg="days_since_last", unit="days",
            family="survey", description="last survey answer {value:.0f} days ago"))
    if _has(schema, "customers"):
        out.append(Feature(
            name="days_since_signup", table="customers", agg="days_since_first", unit="days",
            family="tenure", description="signed up {value:.0f} days ago"))
        firsts.append("days_since_signup")
    out.append(DerivedFeature(
        name="tenure_days", op="greatest", inputs=firsts, unit="days", family="tenure",
        description="customer for {value:.0f} days"))
    return out


def _purchase(spec: FeatureSpec, name: str, agg: str, days: int | None, unit: str,
              description: str, column: str | None = None, offset: int = 0, *,
              family: str, zero: str | None = "") -> Feature:
    return Feature(
        name=name, table="transactions", agg=agg, column=column, where=spec.purchase_where,
        window_days=days, offset_days=offset, unit=unit, description=description,
        family=family, zero_description=zero)


def frequency(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Purchase counts per window and all time, distinct purchase days, the gap between
    consecutive purchases (mean and sample standard deviation, days) and the purchase rate
    ``purchases_total / max(tenure_days, 1)`` (per day: the maximum-likelihood Poisson rate
    of a customer still active, the Pareto/NBD ``x / T``)."""
    f = "frequency"
    out: Built = [
        _purchase(spec, f"purchases_{_window_label(d)}", "count", d, "purchases",
                  f"{{value:count purchase}} {_in_window(d)}", family=f,
                  zero=f"no purchase {_in_window(d)}" if d else "no purchase yet")
        for d in [*spec.windows_days, None]
    ]
    out += [
        _purchase(spec, f"purchase_days_{_window_label(d)}", "distinct_days", d, "days",
                  f"bought on {{value:count day}} {_in_window(d)}", family=f)
        for d in (spec.summary_window_days, None)
    ]
    out.append(_purchase(spec, "purchase_gap_mean_days", "gap_mean", None, "days",
                         "usually buys every {value:.0f} days", family=f, zero=None))
    out.append(_purchase(spec, "purchase_gap_std_days", "gap_std", None, "days",
                         "irregular purchases (gaps vary by {value:.0f} days)", family=f))
    out.append(DerivedFeature(
        name="purchase_rate_per_day", op="expr", expr=_per_tenure_day("purchases_total"),
        unit="purchases per day", family=f, zero_description="",
        description="about one purchase every {value:every}"))
    return out


def monetary(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Spend (sum of purchase amounts) per window, order value mean and max, returns and net
    revenue (purchases plus returns)."""
    s = spec.summary_window_days
    out: Built = [
        _purchase(spec, f"spend_{_window_label(d)}", "sum", d, "currency",
                  f"spent {{value:,.2f}} {_in_window(d)}", column="amount", family="spend")
        for d in [*spec.windows_days, None]
    ]
    out += [
        _purchase(spec, f"avg_order_value_{_window_label(d)}", "mean", d, "currency",
                  f"average order {{value:,.2f}} {_in_window(d)}", column="amount",
                  family="spend")
        for d in (s, None)
    ]
    out.append(_purchase(spec, f"max_order_value_{s}d", "max", s, "currency",
                         f"largest order {{value:,.2f}} in the last {s} days", column="amount",
                         family="spend"))
    out.append(Feature(
        name=f"returns_{s}d", table="transactions", agg="count", where=RETURN_WHERE,
        window_days=s, unit="returns", family="returns", zero_description="",
        description=f"{{value:count return}} in the last {s} days"))
    out.append(Feature(
        name=f"returned_amount_{s}d", table="transactions", agg="sum", column="-amount",
        where=RETURN_WHERE, window_days=s, unit="currency", family="returns",
        zero_description="", description=f"returned {{value:,.2f}} in the last {s} days"))
    out.append(Feature(
        name="net_revenue_total", table="transactions", agg="sum", column="amount",
        unit="currency", family="spend", zero_description="",
        description="spent {value:,.2f} in total, net of returns"))
    return out


def engagement(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Event counts per event type and window; the engagement trend: events in the last
    window / events in the window before (missing when the earlier window is empty); all
    events, the activity rate ``a = (purchases_total + events_total) / max(tenure_days, 1)``
    (per day) and the probability of the current silence at that rate if the customer were
    still active, ``exp(-a * days_since_last_activity)`` (a Poisson process has no event in
    ``d`` days with probability ``exp(-a d)``; dead customers stop every activity at once)."""
    if not _has(schema, "events"):
        return []
    w = spec.engagement_trend_window_days
    out: Built = []
    for event_type in event_types:
        if event_type == spec.support_event_type:
            continue
        key, label = event_feature_name(event_type), _escape(event_type)
        out += [
            Feature(name=f"{key}_{d}d", table="events", agg="count",
                    where=f"event_type = {literal(event_type)}", window_days=d,
                    unit="events", family="engagement",
                    description=f"{label}: {{value:count event}} in the last {d} days",
                    zero_description=f"no {label} in the last {d} days")
            for d in spec.engagement_windows_days
        ]
    e = "engagement"
    out += [
        Feature(name=f"events_{w}d", table="events", agg="count", window_days=w,
                unit="events", family=e,
                description=f"{{value:count engagement event}} in the last {w} days",
                zero_description=f"no engagement in the last {w} days"),
        Feature(name=f"events_prior_{w}d", table="events", agg="count", window_days=w,
                offset_days=w, unit="events", family=e, zero_description="",
                description=f"{{value:count engagement event}} in the {w} days before the "
                            f"last {w}"),
        Feature(name=f"event_days_{w}d", table="events", agg="distinct_days", window_days=w,
                unit="days", family=e,
                description=f"engaged on {{value:count day}} of the last {w}",
                zero_description=f"no engagement in the last {w} days"),
        DerivedFeature(name=f"engagement_trend_{w}d", op="ratio",
                       inputs=[f"events_{w}d", f"events_prior_{w}d"], unit="ratio", family=e,
                       description=f"engagement {{value:change}} vs the previous {w} days"),
        Feature(name="events_total", table="events", agg="count", unit="events", family=e,
                description="{value:count engagement event} in total",
                zero_description="no engagement yet"),
        DerivedFeature(name="activity_rate_per_day", op="expr",
                       expr=_per_tenure_day("purchases_total + events_total"),
                       unit="purchases and events per day", family=e, zero_description="",
                       description="about one purchase or engagement every {value:every}"),
        DerivedFeature(name="activity_silence_probability", op="expr",
                       expr="exp(-activity_rate_per_day * days_since_last_activity)",
                       unit="probability", family="recency",
                       description="last purchase or engagement "
                                   "{days_since_last_activity:.0f} days ago, usually one every "
                                   "{activity_rate_per_day:every}"),
    ]
    return out


def _escape(text: str) -> str:
    """``text`` as a literal part of a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")


def satisfaction_index_sql(spec: FeatureSpec) -> str:
    """SQL of one answer on a common 0-1 scale (1 = the best answer of its kind):
    ``(score - low) / (high - low)``, or ``(high - score) / (high - low)`` for the
    lower-is-better kinds (CES), with each kind's :class:`~churnml.config.VoiceConfig` range;
    NULL for kinds not in ``spec.survey_kinds``."""
    cases = []
    for kind in spec.survey_kinds:
        scale = getattr(spec.voice, kind)
        lo, hi = float(scale.low), float(scale.high)
        best = f"({hi!r} - score)" if kind in LOWER_IS_BETTER else f"(score - {lo!r})"
        cases.append(f"WHEN kind = {literal(kind)} THEN {best} / {hi - lo!r}")
    return f"CASE {' '.join(cases)} END"


def voice(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Support tickets per window; latest and mean answer per survey kind and their
    difference (latest - mean, score points); NPS detractor and CSAT dissatisfied flags
    (thresholds from :class:`~churnml.config.VoiceConfig`); the satisfaction index (every
    answer on a 0-1 scale, :func:`satisfaction_index_sql`): mean per window and latest."""
    out: Built = []
    if _has(schema, "events"):
        out += [
            Feature(name=f"support_tickets_{d}d", table="events", agg="count",
                    where=f"event_type = {literal(spec.support_event_type)}", window_days=d,
                    unit="tickets", family="support", zero_description="",
                    description=f"{{value:count support ticket}} in the last {d} days")
            for d in spec.support_windows_days
        ]
    if not _has(schema, "surveys"):
        return out
    for kind in spec.survey_kinds:
        where = f"kind = {literal(kind)}"
        label = kind.upper()
        out += [
            Feature(name=f"{kind}_latest", table="surveys", agg="latest", column="score",
                    where=where, unit="score", family="survey",
                    description=f"latest {label} {{value:.0f}}"),
            Feature(name=f"{kind}_mean", table="surveys", agg="mean", column="score",
                    where=where, unit="score", family="survey",
                    description=f"average {label} {{value:.1f}}"),
            DerivedFeature(name=f"{kind}_trend", op="difference",
                           inputs=[f"{kind}_latest", f"{kind}_mean"], unit="score",
                           family="survey",
                           description=f"latest {label} {{value:diff}} their average"),
        ]
    if spec.survey_kinds:
        index = satisfaction_index_sql(spec)
        out += [
            Feature(name=f"satisfaction_index_{d}d", table="surveys", agg="mean", column=index,
                    window_days=d, unit="share of the best score", family="survey",
                    description=f"survey answers averaged {{value:.0%}} of the best score in "
                                f"the last {d} days")
            for d in spec.satisfaction_windows_days
        ]
        out.append(Feature(
            name="satisfaction_index_latest", table="surveys", agg="latest", column=index,
            unit="share of the best score", family="survey",
            description="latest survey answer {value:.0%} of the best score"))
    v = spec.voice
    if "nps" in spec.survey_kinds:
        out.append(DerivedFeature(
            name="nps_detractor", op="at_most", inputs=["nps_latest"],
            threshold=v.nps_detractor_max, unit="flag", family="survey", zero_description="",
            description="NPS {nps_latest:.0f} (detractor)"))
    if "csat" in spec.survey_kinds:
        out.append(DerivedFeature(
            name="csat_dissatisfied", op="below", inputs=["csat_latest"],
            threshold=v.csat_satisfied_min, unit="flag", family="survey", zero_description="",
            description="CSAT {csat_latest:.0f} (dissatisfied)"))
    return out


def referral(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Customers referred who had signed up before the cutoff."""
    if not _has(schema, "referrals"):
        return []
    return [Feature(name="customers_referred", table="referrals", agg="count",
                    unit="customers", family="referral", zero_description="",
                    description="referred {value:count customer}")]


def subscription(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Subscription state known at the cutoff: active subscriptions (started, with no end
    before the cutoff), days since the latest start and the latest known end, subscriptions
    started, mrr of active subscriptions, plan of the latest subscription."""
    if not _has(schema, "subscriptions"):
        return []
    active = "end_ts IS NULL"
    out: Built = [
        Feature(name="active_subscriptions", table="subscriptions", agg="count",
                where=active, unit="subscriptions", family="subscription",
                description="{value:count active subscription}",
                zero_description="no active subscription"),
        Feature(name="days_since_subscription_start", table="subscriptions",
                agg="days_since_last", unit="days", family="subscription",
                description="latest subscription started {value:.0f} days ago"),
        Feature(name="days_since_subscription_end", table="subscriptions",
                agg="days_since_last", column="end_ts", unit="days", family="subscription",
                description="a subscription ended {value:.0f} days ago"),
        Feature(name="subscriptions_started", table="subscriptions", agg="count",
                unit="subscriptions", family="subscription", zero_description="",
                description="{value:count subscription} started"),
    ]
    if _has(schema, "subscriptions", "mrr"):
        out.append(Feature(name="mrr", table="subscriptions", agg="sum", column="mrr",
                           where=active, unit="currency per month", family="subscription",
                           zero_description="", description="pays {value:,.2f} per month"))
    if _has(schema, "subscriptions", "plan"):
        out.append(Feature(name="subscription_plan", table="subscriptions", agg="latest",
                           column="plan", unit="plan", dtype="category", family="subscription",
                           description="on the {value} plan"))
    return out


def trend(spec: FeatureSpec, schema: Schema, event_types: list[str]) -> Built:
    """Purchases and spend in the last ``trend_window_days`` / the window before (missing
    when the earlier window is empty) and recency relative to the customer's usual gap
    (days since last purchase / mean gap between purchases)."""
    w = spec.trend_window_days
    out: Built = []
    kinds = (("purchases", "count", None, "purchases", "frequency",
              f"{{value:count purchase}} in the last {w} days",
              f"{{value:count purchase}} in the {w} days before the last {w}"),
             ("spend", "sum", "amount", "currency", "spend",
              f"spent {{value:,.2f}} in the last {w} days",
              f"spent {{value:,.2f}} in the {w} days before the last {w}"))
    for base, agg, column, unit, family, last, prior in kinds:
        out += [
            _purchase(spec, f"{base}_{w}d", agg, w, unit, last, column=column, family=family,
                      zero=f"no purchase in the last {w} days" if agg == "count" else ""),
            _purchase(spec, f"{base}_prior_{w}d", agg, w, unit, prior, column=column,
                      offset=w, family=family),
            DerivedFeature(name=f"{base}_trend_{w}d", op="ratio",
                           inputs=[f"{base}_{w}d", f"{base}_prior_{w}d"], unit="ratio",
                           family=family,
                           description=f"{base} {{value:change}} vs the previous {w} days"),
        ]
    out.append(DerivedFeature(
        name="recency_vs_usual_gap", op="ratio",
        inputs=["days_since_last_purchase", "purchase_gap_mean_days"], unit="ratio",
        family="recency",
        description="last purchase {days_since_last_purchase:.0f} days ago, usually every "
                    "{purchase_gap_mean_days:.0f} days"))
    return out


GROUPS: dict[str, Callable[[FeatureSpec, Schema, list[str]], Built]] = {
    "recency": recency,
    "frequency": frequency,
    "monetary": monetary,
    "engagement": engagement,
    "voice": voice,
    "referral": referral,
    "subscription": subscription,
    "trend": trend,
}
