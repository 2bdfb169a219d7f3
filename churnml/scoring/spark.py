"""Score a Spark DataFrame of features with the code of local scoring, run on the executors.

The models travel as their code-free state (:mod:`churnml.models._state`: LightGBM text
models and JSON, whether they came from the registry or a ``--models-dir`` export), in one
broadcast :class:`ShippedScorer`; each Python worker rebuilds the
:class:`~churnml.scoring.score.Scorer` once and scores its partitions with
:func:`score_partitions` (``mapInPandas``): :meth:`Scorer.scores
<churnml.scoring.score.Scorer.scores>`, the step local scoring runs per chunk, so value at
risk is computed by one function on both routes, and so are the uplift columns of a trained
uplift model (:class:`churnml.uplift.fitted.UpliftColumns`, shipped as its code-free state
and rebuilt once per worker). Segments are a Spark SQL ``CASE`` (the same rules, transpiled);
reasons in words are computed on the executors with the same
:meth:`Scorer.explain <churnml.scoring.score.Scorer.explain>`, so results agree row for row.

The quantile thresholds are exact (Spark ``percentile``, linear interpolation like numpy);
ranks come from one global ordering (value at risk descending, then customer id).
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.config import ChurnConfig, ScoringConfig
from churnml.engine.base import contract_tables
from churnml.engine.sql import render
from churnml.errors import DataValidationError
from churnml.features.build import as_cutoffs, feature_query, resolve_features
from churnml.features.definitions import CUTOFF
from churnml.features.profile import profile_spark
from churnml.features.spec import FeatureSpec
from churnml.io import write_table
from churnml.models._preprocess import CATEGORICAL, FEATURE_TABLE
from churnml.outputs import OutputSet, check_replaceable, mark
from churnml.scoring import segments as seg
from churnml.scoring.export import SCORES_FILE, SEGMENTS_DIR, SUMMARY_FILE, segment_file_name
from churnml.scoring.loading import ScoringModels
from churnml.scoring.score import (
    ID,
    OUTPUT_COLUMNS,
    PROBABILITY,
    RANK,
    REASONS,
    SCORE_COLUMNS,
    UPLIFT_COLUMNS,
    VAR,
    Scorer,
    feature_descriptions,
    feature_kinds,
    needed_columns,
    plan_features,
)

NEGATIVE = UPLIFT_COLUMNS[-1]  # the do-not-contact flag: boolean, the others double
SPARK_NUMERIC = "double"
SPARK_STRING = "string"
_PANDAS_WARNING = "PySpark does not yet fully support pandas"


def check_spark_features(sdf: Any, feature_dtypes: Mapping[str, str], model: str) -> None:
    """Refuse a Spark feature table whose columns or types differ from the model's
    (numeric features must be ``double``, categorical ones ``string``)."""
    types = dict(sdf.dtypes)
    missing = [c for c in feature_dtypes if c not in types]
    if missing:
        raise DataValidationError(FEATURE_TABLE, missing[0],
                                  f"missing feature column(s) {missing} needed by {model}")
    want = {c: SPARK_STRING if k == CATEGORICAL else SPARK_NUMERIC
            for c, k in feature_dtypes.items()}
    wrong = {c: (types[c], w) for c, w in want.items() if types[c] != w}
    if wrong:
        detail = ", ".join(f"{c} is {g} (model: {w})" for c, (g, w) in wrong.items())
        raise DataValidationError(FEATURE_TABLE, next(iter(wrong)),
                                  f"types differ from {model}: {detail}")


@dataclass
class ShippedScorer:
    """What the executors receive: both models as code-free state documents
    (:func:`~churnml.models._state.dump_estimator`) and the scorer's settings; the
    :class:`~churnml.scoring.score.Scorer` is rebuilt from them once per Python worker
    (:attr:`scorer`), no MLflow store or model folder needed there."""

    churn: dict[str, Any]
    ltv: dict[str, Any]
    labels: tuple[str, str]
    config: ScoringConfig
    churn_config: ChurnConfig
    cutoff: pd.Timestamp
    descriptions: dict[str, Any]
    scored_at: pd.Timestamp
    columns: list[str]
    uplift: Any = None  # UpliftColumns: pickles as its code-free state (JSON, LightGBM text)

    @classmethod
    def of(cls, scorer: Scorer, descriptions: dict[str, Any], columns: list[str]
           ) -> ShippedScorer:
        from churnml.models._state import dump_estimator

        m = scorer.models
        return cls(dump_estimator(m.churn), dump_estimator(m.ltv),
                   (m.churn_label, m.ltv_label), scorer.config, scorer.churn, scorer.cutoff,
                   descriptions, scorer.scored_at, columns, scorer.uplift)

    @functools.cached_property
    def scorer(self) -> Scorer:
        from churnml.models._state import load_estimator

        models = ScoringModels(churn=load_estimator(self.churn), ltv=load_estimator(self.ltv),
                               churn_label=self.labels[0], ltv_label=self.labels[1])
        return Scorer(models, self.config, self.churn_config, self.cutoff, self.descriptions,
                      self.scored_at, columns=self.columns, uplift=self.uplift)

    def __getstate__(self) -> dict[str, Any]:  # the rebuilt scorer is not shipped
        return {k: v for k, v in self.__dict__.items() if k != "scorer"}


def score_partitions(batches: Iterator[pd.DataFrame], shipped: ShippedScorer
                     ) -> Iterator[pd.DataFrame]:
    """Each batch of features with :data:`~churnml.scoring.score.SCORE_COLUMNS` (and, with
    an uplift model, :data:`~churnml.scoring.score.UPLIFT_COLUMNS`) appended
    (:meth:`Scorer.scores <churnml.scoring.score.Scorer.scores>`): the per-partition pandas
    step of Spark scoring."""
    scorer = shipped.scorer
    for batch in batches:
        yield batch.assign(**scorer.scores(batch))


def _quantiles(sdf: Any, config: ScoringConfig) -> dict[str, float]:
    from pyspark.sql import functions as F

    items = [(name, col, q) for name, (col, q) in config.quantiles.items() if col in sdf.columns]
    if not items:
        return {}
    row = sdf.agg(*[F.percentile(F.col(c), q).alias(n) for n, c, q in items]).first()
    return {n: float("nan") if row[n] is None else float(row[n]) for n, _, _ in items}


def score_spark(
    features: Any,
    models: ScoringModels,
    config: ScoringConfig | None = None,
    *,
    cutoff: Any,
    churn: ChurnConfig | None = None,
    descriptions: Mapping[str, Any] | None = None,
    scored_at: Any = None,
    uplift: Any = None,
) -> tuple[Any, pd.DataFrame]:
    """Scores of a Spark feature table (``customer_id``, features; one cutoff) as a Spark
    DataFrame with :data:`~churnml.scoring.score.OUTPUT_COLUMNS`, and the segment summary
    (pandas). ``models`` come from the registry or an export: their code-free state is
    broadcast (:class:`ShippedScorer`). ``uplift``
    (:class:`churnml.uplift.fitted.UpliftColumns`, optional) adds
    :data:`~churnml.scoring.score.UPLIFT_COLUMNS` before ``model_version``, as the local
    route does."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        StringType,
        StructField,
        StructType,
    )

    config = config or ScoringConfig()
    churn = churn or ChurnConfig()
    spark = features.sparkSession
    scorer = Scorer(models, config, churn, pd.Timestamp(cutoff), descriptions, scored_at,
                    columns=[str(c) for c in features.columns], uplift=uplift)
    check_spark_features(features, scorer.dtypes, models.version)
    extra = list(UPLIFT_COLUMNS) if uplift is not None else []
    if uplift is not None:
        missing = [c for c in uplift.features if c not in features.columns]
        if missing:
            raise DataValidationError(FEATURE_TABLE, missing[0],
                                      f"missing feature column(s) {missing} needed by the "
                                      "uplift model; retrain with `churnml campaign train`")
    shipped = spark.sparkContext.broadcast(
        ShippedScorer.of(scorer, dict(descriptions or {}), [str(c) for c in features.columns]))
    scored = StructType([*features.schema.fields,
                         *[StructField(c, DoubleType()) for c in SCORE_COLUMNS],
                         *[StructField(c, BooleanType() if c == NEGATIVE else DoubleType())
                           for c in extra]])
    sdf = features.mapInPandas(lambda batches: score_partitions(batches, shipped.value),
                               scored).cache()
    values = seg.thresholds(pd.DataFrame(), config, churn)
    values.update(_quantiles(sdf, config))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case = seg.case_sql(scorer.segments, values, sdf.columns, dialect="spark")
    order = Window.orderBy(F.desc(VAR), F.asc(ID))
    ranked = sdf.withColumn(seg.SEGMENT, F.expr(case)).withColumn(RANK, F.row_number().over(order))
    wanted = scorer.reason_segments()

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        s = shipped.value.scorer
        for batch in batches:
            rows = batch[seg.SEGMENT].isin(wanted).to_numpy()
            reasons = pd.Series(None, index=batch.index, dtype="object")
            if rows.any():
                reasons[rows] = s.explain(batch.loc[rows])
            yield batch.assign(**{REASONS: reasons})

    schema = StructType([*ranked.schema.fields, StructField(REASONS, StringType())])
    explained = ranked.mapInPandas(explain, schema)
    action = F.create_map(*[F.lit(x) for s in scorer.segments for x in (s.name, s.action)])
    out = explained.select(
        ID, *SCORE_COLUMNS, F.col(RANK).cast("long").alias(RANK), seg.SEGMENT, REASONS,
        action[F.col(seg.SEGMENT)].alias(seg.ACTION), *extra,
        F.lit(models.version).alias("model_version"),
        F.lit(scorer.cutoff.to_pydatetime()).cast("timestamp_ntz").alias(CUTOFF),
        F.lit(scorer.scored_at.to_pydatetime()).alias("scored_at"),
    )
    aggregates = sdf.withColumn(seg.SEGMENT, F.expr(case)).groupBy(seg.SEGMENT).agg(
        F.count(F.lit(1)).alias("customers"), F.sum(VAR).alias("value_at_risk"),
        F.avg(PROBABILITY).alias("mean_churn_probability"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
        summary = seg.summary(aggregates.toPandas(), scorer.segments)
    for w in caught:
        warnings.warn(str(w.message), stacklevel=2)
    at = OUTPUT_COLUMNS.index("model_version")
    return out.select(*OUTPUT_COLUMNS[:at], *extra, *OUTPUT_COLUMNS[at:]), summary


# --------------------------------------------------------------------------- whole job


@dataclass
class SparkScoreResult:
    """What :func:`score_spark_data` wrote: file paths, the segment summary (pandas) and
    counts; the scores themselves stay in the Parquet folder ``files['scores']``."""

    summary: pd.DataFrame
    files: dict[str, str]
    n_scored: int
    n_reasons: int
    warnings: list[str] = field(default_factory=list)
    cutoff: pd.Timestamp | None = None
    scored_at: pd.Timestamp | None = None
    profile: dict[str, Any] = field(default_factory=dict)  # model features, for monitoring
    history: Path | None = None  # the score history partition written, if any


def spark_features(data: Any, cutoff: pd.Timestamp, needed: set[str],
                   spec: FeatureSpec | None = None) -> tuple[Any, list[Any]]:
    """``(Spark DataFrame, features built)``: the features in ``needed`` (as far as the spec
    and data provide them) as of ``cutoff``, computed on Spark."""
    from churnml.engine.spark_engine import SparkEngine

    engine = SparkEngine(contract_tables(data))
    features = plan_features(resolve_features(engine, spec), needed, engine.schema)
    ctes, select = feature_query(engine, as_cutoffs(cutoff), features)
    return engine.query(render(ctes, select)).drop(CUTOFF), features


def write_spark_segments(scores: Any, summary: pd.DataFrame, folder: str | Path) -> dict:
    """``<folder>/<segment>.csv`` per row of ``summary`` (rows in rank order), written by
    one Spark job partitioned by segment; empty segments get a header-only file."""
    from pyspark.sql import functions as F

    from churnml.io import SPARK_CSV_OPTIONS, escape_spark_formulas, is_local

    if not is_local(folder):
        raise ValueError(f"{folder}: per-segment files are written to a local folder")
    folder = Path(folder)
    check_replaceable(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark(folder)
    names = summary[seg.SEGMENT].tolist()
    key = {name: f"s{i}" for i, name in enumerate(names)}
    keyed = escape_spark_formulas(scores).withColumn("__key", F.create_map(
        *[F.lit(x) for n in names for x in (n, key[n])])[F.col(seg.SEGMENT)])
    written = {}
    with tempfile.TemporaryDirectory(prefix=".segments-", dir=folder) as tmp:
        out = Path(tmp) / "out"
        (keyed.repartition(1).sortWithinPartitions("__key", RANK).write
         .partitionBy("__key").options(**SPARK_CSV_OPTIONS).csv(str(out.resolve())))
        for name in names:
            target = folder / segment_file_name(name)
            parts = sorted((out / f"__key={key[name]}").glob("part-*"))
            if parts:
                os.replace(parts[0], target)
                os.chmod(target, 0o644)
            else:
                write_table(pd.DataFrame(columns=scores.columns), target)
            written[name] = str(target)
    return written


SparkStager = Callable[[Path, Any, SparkScoreResult], None]


def spark_score_outputs(out_dir: str | Path, scores_path: str | Path | None = None,
                        segments_dir: str | Path | None = None) -> OutputSet:
    """The :class:`~churnml.outputs.OutputSet` of a Spark scoring run: the scores (a Parquet
    folder, which may take the place of a one-file run's scores, or a CSV file), the segment
    summary and the segment folder, committed as one unit with the scores last; a remote
    scores URI is not part of the set (Spark overwrites it). ``check()`` it before the work.
    """
    from churnml.io import _local, format_of, is_local

    out_dir = Path(out_dir)
    scores = scores_path or out_dir / SCORES_FILE
    segments = segments_dir or out_dir / SEGMENTS_DIR
    if not is_local(segments):
        raise ValueError(f"{segments}: per-segment files are written to a local folder")
    files: dict[str, Any] = {"summary": out_dir / SUMMARY_FILE}
    folders: dict[str, Any] = {"segments": segments}
    if is_local(scores):
        fmt = format_of(scores)
        if fmt == "json":
            raise ValueError(f"{scores}: the Spark route writes .parquet or .csv")
        (folders if fmt == "parquet" else files)["scores"] = _local(scores)
    return OutputSet(files, folders, journal_dir=out_dir, replaces_files={"scores"})


def score_spark_data(
    data: Any, models: ScoringModels, config: ScoringConfig | None = None, *,
    cutoff: Any, churn: ChurnConfig | None = None, spec: FeatureSpec | None = None,
    scored_at: Any = None, out_dir: str | Path, scores_path: str | Path | None = None,
    segments_dir: str | Path | None = None, uplift: Any = None,
    outputs: OutputSet | None = None, extra: Mapping[str, SparkStager] | None = None,
) -> SparkScoreResult:
    """The whole scoring job on Spark: features of the contract tables of ``data`` (Spark
    DataFrames, e.g. :class:`~churnml.data.spark_loader.SparkData`) as of ``cutoff``,
    :func:`score_spark`, then the scores written by Spark as a Parquet folder (rank order;
    default ``<out_dir>/scores.parquet``), the segment summary CSV and one CSV per segment
    (default ``<out_dir>/segments``). Only the summary and counts reach the driver.
    ``uplift``: see :func:`score_spark`.

    The files are staged and committed as one unit like the local route's
    (:func:`spark_score_outputs`, or ``outputs``, checked before any work): a failed or
    killed run leaves the previous run's files, never a mix. ``extra``: more folder targets
    of ``outputs`` (e.g. the score history's partition), each name mapped to a function
    ``write(staging_folder, staged_scores, result)`` committed in the same unit."""
    from pyspark.sql import functions as F

    from churnml.io import format_of, write_spark_table

    config = config or ScoringConfig()
    churn = churn or ChurnConfig()
    out_dir = Path(out_dir)
    outputs = outputs or spark_score_outputs(out_dir, scores_path, segments_dir)
    outputs.check()  # before any work: nothing churnml did not write is in the way
    scores_target = str(scores_path or out_dir / SCORES_FILE)
    files = {"scores": scores_target, "segment_summary": str(outputs.files["summary"]),
             "segments": str(outputs.folders["segments"])}
    cut = as_cutoffs(cutoff)[0]
    probe = Scorer(models, config, churn, cut, feature_descriptions(spec), scored_at)
    needed = needed_columns(models, config, churn, probe.writer)
    if uplift is not None:
        needed |= set(uplift.features)
    features, built = spark_features(data, cut, needed, spec)
    descriptions = {f.name: f for f in built}  # definitions, as the local route words them
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores, summary = score_spark(features, models, config, cutoff=cut, churn=churn,
                                      descriptions=descriptions, scored_at=probe.scored_at,
                                      uplift=uplift)
    notes = [str(w.message) for w in caught if "segment" in str(w.message)]
    fmt = format_of(scores_target)
    ordered = scores.orderBy(RANK)
    staged_here = "scores" in outputs.files or "scores" in outputs.folders
    with outputs.locked():
        outputs.recover()  # a killed run's commit finished, its litter removed
        try:
            if staged_here:
                staged = write_spark_table(ordered, outputs.stage("scores"), fmt=fmt)
            else:  # a remote URI: overwritten by Spark, not part of the unit
                staged = write_spark_table(ordered, scores_target)
            written = (scores.sparkSession.read.parquet(staged) if fmt == "parquet"
                       else ordered)
            write_spark_segments(written, summary, outputs.stage("segments"))
            write_table(summary, outputs.stage("summary"), fmt="csv")
            counts = written.agg(F.count(F.lit(1)).alias("n"),
                                 F.count(REASONS).alias("reasons")).first()
            profile = profile_spark(features, feature_kinds(models.feature_dtypes()))
            result = SparkScoreResult(summary, files, int(counts["n"]),
                                      int(counts["reasons"]), notes, cut, probe.scored_at,
                                      profile)
            for name, write in (extra or {}).items():
                write(outputs.stage(name), written, result)
        except BaseException:
            outputs.abort()
            raise
        order = [n for n in (*outputs.folders, *outputs.files) if n != "scores"]
        outputs.commit(order + ["scores"] * staged_here)  # the scores last
    return result
