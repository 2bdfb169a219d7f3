"""Batch scoring: churn probability x value if retained = value at risk, ranked, segmented and
explained, over chunks of customers.

Flow (:func:`score`): the features as of the cutoff are written by DuckDB to a temporary
Parquet spool (memory bounded by DuckDB's limit), then read back ``chunk_size`` customers at
a time, twice:

1. predict, per customer, over the churn horizon (money in the input currency):

   - ``churn_probability`` p (calibrated);
   - ``expected_value`` = E[revenue] (it already discounts the chance of leaving; called
     ``predicted_value`` before this release);
   - ``value_if_retained`` = E[revenue | not churned] >= 0
     (:meth:`~churnml.models.LTVModel.predict_if_retained`);
   - ``value_at_risk = churn_probability x value_if_retained``: the revenue lost if the
     predicted churn happens (never p x expected_value, which counts the risk twice).

   Only a narrow table (scores and the columns the rules read) is kept for all customers.
2. explain: once the quantile thresholds of the whole base are known and every customer has
   a segment, the customers of segments with ``reasons`` get their drivers in words.

Rank 1 is the largest value at risk; ties are broken by ``customer_id`` (ascending), so
re-runs give the same order. Everything but ``scored_at`` is a function of the inputs; pass
``scored_at`` to make the output identical byte for byte.
"""

from __future__ import annotations

import functools
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from churnml.config import ChurnConfig, ScoringConfig, SurvivalConfig
from churnml.data.schema import TABLES
from churnml.engine import open_engine
from churnml.engine.sql import literal, render
from churnml.errors import DataValidationError
from churnml.features.build import as_cutoffs, feature_query, resolve_features, tidy
from churnml.features.definitions import CUTOFF, SOURCES, DerivedFeature, Feature
from churnml.features.profile import CATEGORICAL, NUMERIC, profile_frame, profile_parquet
from churnml.features.spec import FeatureSpec
from churnml.scoring import segments as seg
from churnml.scoring.loading import ScoringModels, check_feature_table
from churnml.scoring.reasons import CONTEXT_FEATURES, PathAttribution, ReasonWriter, top_drivers
from churnml.scoring.reasons import contributions as row_contributions

ID = "customer_id"
PROBABILITY = "churn_probability"
VALUE = "expected_value"  # E[horizon revenue]; "predicted_value" before this release
RETAINED = "value_if_retained"  # E[horizon revenue | not churned]
VAR = "value_at_risk"  # churn_probability x value_if_retained
SCORE_COLUMNS = (PROBABILITY, VALUE, RETAINED, VAR)
RANK = "rank"
REASONS = "reasons"
OUTPUT_COLUMNS = [
    ID, PROBABILITY, VALUE, RETAINED, VAR, RANK, seg.SEGMENT, REASONS, seg.ACTION,
    "model_version", CUTOFF, "scored_at",
]
UPLIFT_COLUMNS = ("uplift", "p_negative_uplift", "targeting_value", "negative_uplift")
SPOOL_FILE = "features.parquet"
TENURE = "tenure"  # periods active at the cutoff: input of the survival model


def survival_score_columns(survival: SurvivalConfig | None = None) -> list[str]:
    """Columns the survival model adds (:func:`churnml.survival.survival_columns`), in
    output order: ``p_active_<d>d`` per horizon, remaining lifetime, median time to churn,
    their horizon and the lifetime value with its interval."""
    survival = survival or SurvivalConfig()
    return [*(f"p_active_{d}d" for d in survival.horizons_days),
            "expected_remaining_lifetime_days", "median_time_to_churn_days",
            "median_beyond_horizon", "lifetime_horizon_days", "lifetime_value",
            "lifetime_value_low", "lifetime_value_high"]
Progress = Callable[[str, int, int], None]  # (stage, customers done, customers total)


@dataclass
class ScoreResult:
    """Scores (one row per customer, in rank order, :data:`OUTPUT_COLUMNS`), the segment
    summary, the named values the rules used, and timings (seconds)."""

    scores: pd.DataFrame
    summary: pd.DataFrame
    thresholds: dict[str, float]
    n_reasons: int
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)  # model features, for monitoring


def default_cutoff() -> pd.Timestamp:
    """Now, to the second (naive, local wall clock): the default cutoff."""
    return pd.Timestamp.now().floor("s")


def scoring_time(scored_at: Any = None) -> pd.Timestamp:
    """``scored_at`` as a UTC timestamp to the second; default: now."""
    ts = pd.Timestamp.now(tz="UTC") if scored_at is None else pd.Timestamp(scored_at)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.floor("s")


# --------------------------------------------------------------------------- features


def _with_dependencies(
    names: set[str], available: Sequence[Feature | DerivedFeature]
) -> list[Feature | DerivedFeature]:
    """The ``available`` features named in ``names`` and those they are derived from."""
    by_name = {f.name: f for f in available}
    keep: set[str] = set()
    todo = [n for n in names if n in by_name]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        f = by_name[name]
        if isinstance(f, DerivedFeature):
            todo += [d for d in f.dependencies() if d in by_name]
    return [f for f in available if f.name in keep]


def needed_columns(
    models: ScoringModels, config: ScoringConfig, churn: ChurnConfig, writer: ReasonWriter
) -> set[str]:
    """Model features, the columns the segment rules read and those the reason templates
    of the churn model's features read."""
    churn_features = [str(f) for f in models.churn.feature_names_in_]
    return (
        set(models.feature_dtypes())
        | seg.rule_columns(config, churn)
        | writer.columns(churn_features)
    )


def plan_features(
    resolved: Sequence[Feature | DerivedFeature], needed: set[str], schema: Mapping[str, Any]
) -> list[Feature | DerivedFeature]:
    """Features to build: the needed ones the spec resolves, plus reason-only context
    features whose source table is present."""
    context = [f for f in CONTEXT_FEATURES
               if f.name in needed and SOURCES[f.table].available(schema)
               and f.name not in {r.name for r in resolved}]
    return _with_dependencies(needed, [*resolved, *context])


def spool_features(
    data: Any,
    cutoff: pd.Timestamp,
    needed: set[str],
    path: Path,
    spec: FeatureSpec | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    extra: Sequence[Feature] = (),
) -> list[Feature | DerivedFeature]:
    """Write the features in ``needed`` (as far as the spec and data provide them) and the
    ``extra`` ones as of ``cutoff`` to the Parquet file ``path`` with DuckDB, in one query;
    returns the features built."""
    eng, owned = open_engine(data, "duckdb", threads=threads, memory_limit=memory_limit)
    try:
        features = [*plan_features(resolve_features(eng, spec), needed, eng.schema), *extra]
        ctes, select = feature_query(eng, as_cutoffs(cutoff), features)
        eng.query(f"COPY ({render(ctes, select)}) TO {literal(str(path))} (FORMAT parquet)")
    finally:
        if owned:
            eng.close()
    return features


def feature_descriptions(
    spec: FeatureSpec | None = None, event_types: Sequence[str] = ()
) -> dict[str, Feature | DerivedFeature]:
    """Feature name -> definition (description, zero wording, reason family) of ``spec``
    (default: every built-in group) for the full data contract, plus the reason-only context
    features."""
    schema = {name: list(table.columns) for name, table in TABLES.items()}
    features = (spec or FeatureSpec()).resolve(schema, list(event_types))
    return {f.name: f for f in [*features, *CONTEXT_FEATURES]}


@functools.lru_cache(maxsize=1)
def builtin_feature_names() -> frozenset[str]:
    """Names of every built-in feature over the full data contract (the names a segment rule
    may read besides the model's and the spec's features)."""
    return frozenset(feature_descriptions())


def check_config_rules(config: ScoringConfig, spec: FeatureSpec | None = None) -> None:
    """Check the segment rules against the names knowable from the config alone (score
    columns, named values, the features of ``spec`` and every built-in feature), before
    data or models are loaded: an unknown name is a :class:`ConfigError` naming the segment.
    Per-event-type counts (``<type>_<d>d``) depend on the data's event types unless the spec
    pins them, so such names are left to the check at scoring time."""
    spec = spec or FeatureSpec()
    segments = seg.parse_segments(config)
    known = {*feature_descriptions(spec), *builtin_feature_names(), *survival_score_columns()}
    known |= {c for s in segments if s.when for c in seg.columns_of(s.when, s.name)
              if re.fullmatch(r"p_active_\d+d", c)}  # survival horizons of any config
    if spec.event_types is None:
        windows = "|".join(str(d) for d in spec.engagement_windows_days)
        event_count = re.compile(rf"^[a-z][a-z0-9_]*_({windows})d$")
        known |= {c for s in segments if s.when for c in seg.columns_of(s.when, s.name)
                  if event_count.match(c)}
    seg.check_rule_names(segments, config, known)


def feature_kinds(dtypes: Mapping[str, str]) -> dict[str, str]:
    """Model feature dtypes (``float64`` / ``category``) as profile kinds."""
    return {name: CATEGORICAL if kind == "category" else NUMERIC for name, kind in dtypes.items()}


def iter_parquet(path: Path, chunk_size: int, features: Sequence[Any]) -> Iterator[pd.DataFrame]:
    """Chunks of ``chunk_size`` rows of a feature spool, with the dtypes of
    :func:`~churnml.features.build.tidy`."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        yield tidy(batch.to_pandas(), features)


def iter_frame(frame: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start:start + chunk_size]


# --------------------------------------------------------------------------- scoring


class Scorer:
    """Score chunks of a feature table with the churn and value models.

    Parameters
    ----------
    models : ScoringModels
    config : ScoringConfig
    churn : ChurnConfig
        Its ``horizon_days`` / ``lookback_days`` are usable in rules.
    cutoff : timestamp
    descriptions : mapping feature -> definition (or bare description template)
        Fallback wording and reason families of reasons.
    scored_at : timestamp, optional
        Recorded in ``scored_at`` (default: now, UTC).
    columns : names, optional
        Further columns of the feature table that rules may read (besides the models' and
        the built-in features): a rule naming anything else is a ConfigError.
    uplift : callable, optional
        :class:`churnml.uplift.fitted.UpliftColumns` of a trained uplift model: the scores
        then carry ``uplift``, ``p_negative_uplift``, ``targeting_value`` and
        ``negative_uplift`` (do not contact), so one file says whom to call.
    """

    def __init__(
        self,
        models: ScoringModels,
        config: ScoringConfig,
        churn: ChurnConfig,
        cutoff: pd.Timestamp,
        descriptions: Mapping[str, str | Feature | DerivedFeature] | None = None,
        scored_at: Any = None,
        columns: Sequence[str] = (),
        uplift: Any = None,
        survival: SurvivalConfig | None = None,
        tenure: pd.Series | None = None,
    ) -> None:
        self.models = models
        self.uplift = uplift
        self.survival = survival or SurvivalConfig()
        self.tenure = tenure  # customer_id -> tenure (periods), when not a feature column
        self.survival_columns = (survival_score_columns(self.survival)
                                 if models.survival is not None else [])
        self.config = config
        self.churn = churn
        self.cutoff = pd.Timestamp(cutoff)
        self.scored_at = scoring_time(scored_at)
        self.segments = seg.parse_segments(config)
        descriptions = dict(descriptions or {})
        seg.check_rule_names(self.segments, config,
                             {*models.feature_dtypes(), *descriptions, *columns,
                              *builtin_feature_names(), *survival_score_columns(survival)})
        self.writer = ReasonWriter(config.reason_templates, descriptions, cutoff)
        self.dtypes = models.feature_dtypes()
        self.keep = sorted(seg.rule_columns(config, churn) - set(SCORE_COLUMNS))
        self.churn_features = [str(f) for f in models.churn.feature_names_in_]
        self._explainer: PathAttribution | None = None

    @property
    def explainable(self) -> bool:
        """Whether the churn model has trees to attribute (a BTYD churn model has none)."""
        return hasattr(self.models.churn, "booster_")

    @property
    def explainer(self) -> PathAttribution | None:
        if self.config.attribution == "path" and self._explainer is None and self.explainable:
            self._explainer = PathAttribution(self.models.churn)
        return self._explainer

    def scores(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """:data:`SCORE_COLUMNS` of one chunk of features (:func:`value_scores` of both
        models' predictions): the one scoring step of every route (local chunks here, Spark
        partitions in :mod:`churnml.scoring.spark`)."""
        check_feature_table(X, self.dtypes, self.models.version)
        cols = value_scores(self.models.churn.predict_proba(X)[:, 1],
                            self.models.ltv.predict(X), self.models.ltv.predict_if_retained(X))
        if self.uplift is None:
            return cols
        chunk = X[[c for c in self.uplift.features if c not in cols]].reset_index(drop=True)
        added = self.uplift(chunk.assign(**cols))
        return {**cols, **{c: added[c].to_numpy() for c in added.columns}}

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Narrow scores of one chunk: id, :data:`SCORE_COLUMNS` and the columns the rules
        read."""
        scores = self.scores(X)
        out = X[[ID, *[c for c in self.keep if c in X.columns]]].reset_index(drop=True)
        out = out.assign(**scores)
        if self.models.survival is None:
            return out
        return pd.concat([out, self.predict_survival(X, out[RETAINED])], axis=1)

    def predict_survival(self, X: pd.DataFrame, value_if_retained: pd.Series) -> pd.DataFrame:
        """:func:`survival_score_columns` of one chunk; expected spend per active period
        from the value if retained over the churn horizon
        (:func:`churnml.survival.spend_per_period`), known from the customer's periods of
        tenure within the lookback (at least one): the spread of one period's spend and the
        uncertainty of that mean enter the interval as fitted at training and logged with the
        survival model (:class:`churnml.survival.spend.SpendModel`: ``spend_cv`` and the
        Gamma-Gamma posterior shape ``p n + q``; its defaults for models logged without
        them); the curve past the model's grid follows ``survival.tail_rule``; purchase logs
        pay until their silence starts (``lag_periods``)."""
        from churnml.survival.scores import scored_columns

        sv = self.survival
        if TENURE not in X.columns:
            if self.tenure is None:
                raise DataValidationError(
                    "features", TENURE, "the survival model needs each customer's tenure at "
                    "the cutoff (periods active); give a tenure column or score from the data")
            X = X.assign(**{TENURE: X[ID].map(self.tenure).fillna(0.0).to_numpy(float)})
        cols = scored_columns(
            self.models.survival, X.reset_index(drop=True),
            value_if_retained.to_numpy(float), self.models.survival_spend,
            churn_horizon_days=self.churn.horizon_days, lookback_days=self.churn.lookback_days,
            period_days=sv.period_days, tenure_column=TENURE, active_days=sv.horizons_days,
            horizon_days=sv.grid_days, discount_rate_annual=sv.discount_rate_annual,
            level=sv.interval_level, tail_rule=sv.tail_rule,
            lag_periods=(self.churn.horizon_days / sv.period_days
                         if self.churn.kind == "non_contractual" else 0.0))
        return cols[self.survival_columns]

    def explain(self, X: pd.DataFrame) -> np.ndarray:
        """Reasons in words for every row of ``X`` (missing when the churn model has no
        trees to attribute: a BTYD model)."""
        if not self.explainable:
            return np.full(len(X), None, dtype=object)
        contrib = row_contributions(self.models.churn, X, self.config.attribution,
                                    self.explainer)
        drivers = top_drivers(contrib, contrib.shape[1], self.config.min_reason_contribution)
        return self.writer.render(X, drivers, self.churn_features, self.config.reasons_count)

    def segment(self, narrow: pd.DataFrame) -> tuple[pd.Series, dict[str, float], list[str]]:
        """Segments of all customers, the named values and the rule warnings. Rules reading
        a built-in feature of a table the data lack (e.g. ``nps_detractor`` without surveys)
        hold for nobody, without a warning; other unknown columns are warned about."""
        values = seg.thresholds(narrow, self.config, self.churn)
        absent = ({*feature_descriptions(), *survival_score_columns(self.survival)}
                  - set(narrow.columns))
        rules = [s for s in self.segments
                 if not (s.when and seg.columns_of(s.when, s.name) & absent)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            segment = seg.assign_segments(narrow, rules, values)
        return segment, values, [str(w.message) for w in caught]

    def reason_segments(self) -> list[str]:
        return [s.name for s in self.segments if s.reasons]

    def finish(self, narrow: pd.DataFrame, segment: pd.Series, reasons: np.ndarray) -> pd.DataFrame:
        """The output table in rank order."""
        out = pd.DataFrame({
            ID: narrow[ID].to_numpy(),
            **{c: narrow[c].to_numpy() for c in SCORE_COLUMNS},
            **{c: narrow[c].to_numpy() for c in UPLIFT_COLUMNS if c in narrow},
            seg.SEGMENT: segment.to_numpy(),
            REASONS: pd.array(reasons, dtype="str"),
            **{c: narrow[c].to_numpy() for c in self.survival_columns},
        })
        out = rank(out)
        out[seg.ACTION] = out[seg.SEGMENT].map(seg.actions(self.segments)).astype("str")
        out["model_version"] = self.models.version
        out[CUTOFF] = pd.Series(self.cutoff, index=out.index).astype("datetime64[us]")
        out["scored_at"] = pd.Series(self.scored_at, index=out.index).astype(
            "datetime64[us, UTC]")
        out[seg.SEGMENT] = out[seg.SEGMENT].astype("str")
        extra = [c for c in UPLIFT_COLUMNS if c in out]
        at = OUTPUT_COLUMNS.index("model_version")
        return out[[*OUTPUT_COLUMNS[:at], *extra, *OUTPUT_COLUMNS[at:],
                    *self.survival_columns]]

    def run(
        self,
        chunks: Callable[[], Iterator[pd.DataFrame]],
        total: int | None = None,
        progress: Progress | None = None,
    ) -> ScoreResult:
        """Score the feature chunks from ``chunks()`` (called twice: predict, explain)."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        parts, done = [], 0
        for X in chunks():
            parts.append(self.predict(X))
            done += len(X)
            if progress:
                progress("predict", done, total or done)
        narrow = pd.concat(parts, ignore_index=True)
        timings["predict_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        segment, values, notes = self.segment(narrow)
        timings["segment_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        wanted = segment.isin(self.reason_segments()).to_numpy()
        reasons = np.full(len(narrow), None, dtype=object)
        start = 0
        for X in chunks():
            stop = start + len(X)
            rows = wanted[start:stop]
            if rows.any():
                reasons[start:stop][rows] = self.explain(X.loc[rows])
            start = stop
            if progress:
                progress("explain", stop, len(narrow))
        timings["reasons_s"] = time.perf_counter() - t0
        scores = self.finish(narrow, segment, reasons)
        table = seg.summary(seg.aggregate(scores), self.segments)
        return ScoreResult(scores, table, values, int(wanted.sum()), notes, timings)


def value_scores(p: Any, expected: Any, if_retained: Any) -> dict[str, np.ndarray]:
    """:data:`SCORE_COLUMNS` from the churn probability ``p``, the expected value and the
    value if retained: ``value_at_risk = p x max(value_if_retained, 0)``."""
    p = np.asarray(p, dtype=float)
    retained = np.maximum(np.asarray(if_retained, dtype=float), 0.0)
    return {PROBABILITY: p, VALUE: np.asarray(expected, dtype=float), RETAINED: retained,
            VAR: p * retained}


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by value at risk (descending), then customer id; ``rank`` = 1, 2, ..."""
    out = frame.sort_values([VAR, ID], ascending=[False, True], kind="mergesort",
                            na_position="last").reset_index(drop=True)
    out.insert(out.columns.get_loc(VAR) + 1, RANK, np.arange(1, len(out) + 1, dtype="int64"))
    return out


def score_features(
    features: pd.DataFrame,
    models: ScoringModels,
    config: ScoringConfig | None = None,
    *,
    cutoff: Any = None,
    churn: ChurnConfig | None = None,
    descriptions: Mapping[str, str | Feature | DerivedFeature] | None = None,
    scored_at: Any = None,
    progress: Progress | None = None,
    survival: SurvivalConfig | None = None,
) -> ScoreResult:
    """Score a ready feature table (``customer_id``, optional ``cutoff``, features), one
    cutoff only; see :func:`score`. ``descriptions`` (feature -> definition) word the
    reasons; default: :func:`feature_descriptions`."""
    config = config or ScoringConfig()
    if cutoff is None and CUTOFF in features:
        cutoffs = features[CUTOFF].unique()
        if len(cutoffs) != 1:
            raise ValueError(f"features hold {len(cutoffs)} cutoffs; score one at a time")
        cutoff = cutoffs[0]
    if cutoff is None:
        raise ValueError("give the cutoff the features were built at")
    if descriptions is None:
        descriptions = feature_descriptions()
    scorer = Scorer(models, config, churn or ChurnConfig(), pd.Timestamp(cutoff),
                    descriptions, scored_at, columns=[str(c) for c in features.columns],
                    survival=survival)
    result = scorer.run(lambda: iter_frame(features, config.chunk_size), len(features),
                        progress)
    result.profile = profile_frame(features, list(models.feature_dtypes()))
    return result


def score(
    data: Any,
    models: ScoringModels,
    config: ScoringConfig | None = None,
    *,
    cutoff: Any = None,
    churn: ChurnConfig | None = None,
    spec: FeatureSpec | None = None,
    scored_at: Any = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    workdir: str | Path | None = None,
    progress: Progress | None = None,
    uplift: Any = None,
    survival: SurvivalConfig | None = None,
) -> ScoreResult:
    """Score every customer with activity before ``cutoff`` (default: now).

    Parameters
    ----------
    data : CustomerData or mapping
        The contract tables (pandas frames or Parquet paths).
    models : ScoringModels
        From :func:`~churnml.scoring.loading.load_registered` or
        :func:`~churnml.scoring.loading.load_exported_models`.
    config : ScoringConfig
    churn : ChurnConfig
    spec : FeatureSpec, optional
        The spec the models were trained with (default: every built-in group).
    scored_at : timestamp, optional
        Recorded as ``scored_at`` (default: now, UTC).
    threads, memory_limit : DuckDB settings of the feature build.
    workdir : folder for the temporary feature spool (default: the system's).
    uplift : :class:`churnml.uplift.fitted.UpliftColumns`, optional
        Adds the uplift model's columns to the scores (:class:`Scorer`).

    Raises
    ------
    DataValidationError
        When the features built differ from the models' (columns or dtypes).
    """
    config = config or ScoringConfig()
    churn = churn or ChurnConfig()
    cut = as_cutoffs(default_cutoff() if cutoff is None else cutoff)[0]
    probe = Scorer(models, config, churn, cut, feature_descriptions(spec), scored_at,
                   survival=survival)
    needed = needed_columns(models, config, churn, probe.writer)
    if uplift is not None:
        needed |= set(uplift.features)
    with tempfile.TemporaryDirectory(prefix="churnml-score-", dir=workdir) as tmp:
        spool = Path(tmp) / SPOOL_FILE
        from churnml.survival.durations import build_tenure, tenure_features, tenure_from_features

        # a purchase log's tenure rides the feature query (the run start shares the sort
        # of the purchase-gap features); a subscription's comes from its spells
        from_features = models.survival is not None and churn.kind == "non_contractual"
        extra = tenure_features(churn) if from_features else []
        t0 = time.perf_counter()
        built = spool_features(data, cut, needed, spool, spec, threads, memory_limit, extra)
        features_s = time.perf_counter() - t0
        descriptions = {f.name: f for f in built}
        tenure, t0 = None, time.perf_counter()
        if models.survival is not None:
            sv = survival or SurvivalConfig()
            if from_features:
                t = pq.read_table(spool, columns=[ID, *(f.name for f in extra)]).to_pandas()
                t[TENURE] = tenure_from_features(t, churn, sv.period_days)
            else:
                t = build_tenure(data, cut, churn, sv.period_days, threads=threads,
                                 memory_limit=memory_limit)
            tenure = pd.Series(t[TENURE].to_numpy(float), index=t[ID].to_numpy())
        tenure_s = time.perf_counter() - t0
        scorer = Scorer(models, config, churn, cut, descriptions, probe.scored_at,
                        uplift=uplift, survival=survival, tenure=tenure)
        total = pq.ParquetFile(spool).metadata.num_rows
        result = scorer.run(lambda: iter_parquet(spool, config.chunk_size, built), total,
                            progress)
        result.profile = profile_parquet(spool, feature_kinds(models.feature_dtypes()))
    result.timings = {"features_s": features_s, "tenure_s": tenure_s, **result.timings}
    return result
