"""Typed configuration, loaded from YAML files in ``configs/``.

Every tunable number of the package lives here (with its unit in the field name or
description), so that code holds no magic constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from churnml.errors import ConfigError
from churnml.expressions import parse_expression
from churnml.io import file_stem, is_local
from churnml.paths import confined

Period = Literal["day", "week", "month", "quarter", "year"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# pandas.read_csv options a table's csv_options plausibly means, by the words people write
# for them (suggestions for a typo; any read_csv keyword is accepted)
CSV_OPTION_WORDS = {
    "sep": ("sep", "delimiter"), "separator": ("sep", "delimiter"),
    "delimiter": ("delimiter", "sep"), "delim": ("delimiter", "sep"),
    "encoding": ("encoding",), "charset": ("encoding",), "codec": ("encoding",),
    "decimal": ("decimal",), "decimal_separator": ("decimal",),
    "thousands": ("thousands",), "thousands_separator": ("thousands",),
    "header": ("header",), "names": ("names",), "column_names": ("names",),
    "usecols": ("usecols",), "columns": ("usecols",), "dtype": ("dtype",),
    "quotechar": ("quotechar",), "quote": ("quotechar",), "quoting": ("quoting",),
    "escapechar": ("escapechar",), "escape": ("escapechar",), "comment": ("comment",),
    "skiprows": ("skiprows",), "skip_rows": ("skiprows",), "skipfooter": ("skipfooter",),
    "nrows": ("nrows",), "na_values": ("na_values",), "missing_values": ("na_values",),
    "keep_default_na": ("keep_default_na",), "true_values": ("true_values",),
    "false_values": ("false_values",), "skipinitialspace": ("skipinitialspace",),
    "lineterminator": ("lineterminator",), "line_terminator": ("lineterminator",),
    "encoding_errors": ("encoding_errors",), "on_bad_lines": ("on_bad_lines",),
    "doublequote": ("doublequote",), "engine": ("engine",),
}


def csv_option_suggestions(name: str) -> list[str]:
    """The read_csv options a misspelt ``name`` most likely means (difflib over
    :data:`CSV_OPTION_WORDS`: ``seperator`` -> ``sep``, ``delimiter``)."""
    import difflib

    out: list[str] = []
    for word in difflib.get_close_matches(name.lower(), list(CSV_OPTION_WORDS), n=2,
                                          cutoff=0.75):
        out += [o for o in CSV_OPTION_WORDS[word] if o not in out]
    return out


class Lookup(_Strict):
    """A file joined to a table's raw rows before its expressions (many rows to one): e.g. a
    course list giving each enrolment the course length. Every row must find exactly one."""

    path: str = Field(description="CSV or Parquet file, relative to data.dir")
    keys: list[str] = Field(min_length=1, description="key columns present in both files")
    csv_options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of pandas.read_csv")


class TableSource(_Strict):
    """Where one input table comes from and how its raw columns map to the contract."""

    path: str | None = Field(
        None, description="CSV or Parquet file (relative to data.dir); with features.engine "
        "spark also a Parquet/Delta/CSV folder or URI (s3://..., abfss://..., dbfs:/...)")
    table: str | None = Field(
        None, description="Spark table [catalog.][schema.]table (features.engine spark)")
    format: Literal["parquet", "delta", "csv"] | None = Field(
        None, description="format of `path` for Spark (default: by suffix, else parquet)")
    columns: dict[str, str] = Field(
        default_factory=dict, description="canonical name -> raw column name"
    )
    lookups: list[Lookup] = Field(
        default_factory=list, description="files joined to the raw rows (on key columns) "
        "before the expressions, which may then read their columns (DuckDB loader only)")
    expressions: dict[str, str] = Field(
        default_factory=dict,
        description="canonical name -> SQL expression over the raw columns, e.g. "
        "{amount: 'Quantity * UnitPrice'} (checked against the expression allow-list)",
    )
    ts_format: str | list[str] | None = Field(
        None, description="strftime format(s) of timestamp columns (a list: each value read "
        "by the first that fits); default: one format per column, inferred"
    )
    csv_options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of pandas.read_csv"
    )
    drop_missing_ids: bool = Field(
        False, description="drop rows without a customer id (the count is reported)"
    )
    drop_duplicates: bool = Field(
        False, description="drop rows identical in every column (the count is reported)"
    )
    order_lines: bool = Field(
        False, description="transactions: rows are order lines; lines sharing an order_id "
        "become one transaction (amount and quantity summed, earliest ts)"
    )

    @field_validator("expressions")
    @classmethod
    def _allowed_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for canon, sql in value.items():
            try:
                parse_expression(sql, where=f"expressions.{canon}")
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("csv_options")
    @classmethod
    def _read_csv_keywords(cls, value: dict[str, Any]) -> dict[str, Any]:
        import inspect

        import pandas as pd

        known = set(inspect.signature(pd.read_csv).parameters) - {"filepath_or_buffer"}
        unknown = sorted(set(value) - known)
        if unknown:
            close = csv_option_suggestions(unknown[0])
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise ValueError(f"unknown pandas.read_csv option {unknown[0]!r}{hint}")
        return value

    @model_validator(mode="after")
    def _one_location(self) -> TableSource:
        if self.table is not None and self.path is not None:
            raise ValueError("give `table` (a Spark table) or `path`, not both")
        if self.table is not None:
            from churnml.data.spark_names import parse_table_name

            try:
                parse_table_name(self.table)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self


class ScoreRange(_Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRange:
        if self.low >= self.high:
            raise ValueError(f"score range low ({self.low}) must be below high ({self.high})")
        return self


class VoiceConfig(_Strict):
    """Survey scales and the thresholds that classify answers."""

    nps: ScoreRange = ScoreRange(low=0, high=10)
    csat: ScoreRange = ScoreRange(low=1, high=5)
    ces: ScoreRange = ScoreRange(low=1, high=7)
    nps_promoter_min: float = Field(9, description="NPS answers >= this are promoters")
    nps_detractor_max: float = Field(6, description="NPS answers <= this are detractors")
    csat_satisfied_min: float = Field(4, description="CSAT answers >= this are satisfied")


class ValidationConfig(_Strict):
    min_ts: str = Field("1970-01-01", description="earliest legal timestamp")
    max_ts_days_ahead: int = Field(
        1, description="latest legal timestamp, in days after the time of loading"
    )
    allow_negative_amounts: bool = Field(
        True, description="returns/cancellations are negative amounts"
    )
    min_id_overlap: float = Field(
        0.5, ge=0, le=1,
        description="warn when less than this share of the smaller table's customer ids "
        "appear in transactions (ids mapped from the wrong column, `C1` vs `1`)",
    )


class ChurnShock(_Strict):
    """A regime change injected into the simulated data (:func:`churnml.data.scenarios.
    churn_shock`): from ``start`` the customers of ``plan`` leave at ``monthly_hazard``."""

    start: str
    plan: str
    monthly_hazard: float = Field(0.3, gt=0, description="extra leaving rate, per month")
    seed: int = 0


class DataConfig(_Strict):
    """Input data: a built-in dataset or a folder of CSV/Parquet tables."""

    dataset: Literal["cdnow", "simulated"] | None = None
    dir: str | None = None
    tables: dict[str, TableSource] = Field(default_factory=dict)
    allowed_roots: list[str] = Field(
        default_factory=list, description="folders (relative to the config file) that data "
        "tables may be read from besides the config's folder and data.dir; a table path "
        "elsewhere (e.g. ../../etc/passwd) is refused")
    _config_dir: str | None = PrivateAttr(None)  # folder of the config file it came from

    def roots(self) -> list[str]:
        """Folders local data tables may be read from: ``dir``, the config file's folder and
        ``allowed_roots`` (:func:`churnml.paths.confined`)."""
        return [r for r in (self.dir, self._config_dir, *self.allowed_roots) if r]
    timezone: str = Field(
        "UTC", description="time zone that naive timestamps are in / aware ones convert to"
    )
    currency: str = "USD"
    end: str | None = Field(
        None, description="end of the data, exclusive (timestamp or date in data.timezone): "
        "default scoring cutoff and end of the label windows; default: midnight after the "
        "latest timestamp of any table"
    )
    simulated_customers: int = Field(20_000, description="size of the simulated dataset")
    seed: int = 42
    churn_shock: ChurnShock | None = Field(
        None, description="simulated data only: a price rise or similar shock that makes one "
        "plan's customers leave from a date on (to try monitoring)")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name such as 'Europe/Berlin', "
                "'America/New_York' or 'UTC'"
            ) from exc
        return value

    @field_validator("end", mode="before")
    @classmethod
    def _iso_end(cls, value: Any) -> Any:
        from datetime import date, datetime

        if isinstance(value, date):  # YAML reads an unquoted date as a date
            return value.isoformat()
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"not an ISO 8601 timestamp or date: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        located = self.tables and all(t.table or t.path for t in self.tables.values())
        if self.dataset is None and self.dir is None and not located:
            raise ValueError("data needs either `dataset` (cdnow|simulated), `dir`, or a "
                             "`table` / `path` for every entry of `tables`")
        if self.churn_shock is not None and self.dataset != "simulated":
            raise ValueError("churn_shock applies to the simulated dataset only")
        return self


class ChurnConfig(_Strict):
    """How churn is defined for this business."""

    kind: Literal["non_contractual", "contractual"] = "non_contractual"
    target_action: str = Field(
        "purchase",
        description="'purchase' (a transaction with amount > 0) or an events.event_type",
    )
    horizon_days: int = Field(90, gt=0, description="churned = no target action for this long")
    lookback_days: int = Field(
        365, gt=0, description="customers at risk had a target action this long before cutoff"
    )
    resubscribe_grace_days: int = Field(
        14, ge=0, description="contractual: a re-subscription within this gap is no churn"
    )


class MetricsConfig(_Strict):
    period: Period = "month"
    retention_days: list[int] = Field(default_factory=lambda: [1, 7, 30])
    by: str | None = None


ChurnMetric = Literal["roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift", "ece"]
LTVMetric = Literal[
    "spearman", "normalized_gini", "top_10_capture", "top_20_capture", "decile_mape", "mae",
    "rmse",
]


class TrainingConfig(_Strict):
    """Backtest design, model hyper-parameters and nested selection (``churnml train``)."""

    backtest: Literal["rolling_origin", "grouped_kfold"] = Field(
        "rolling_origin",
        description="rolling_origin: train on earlier cutoffs whose label window ended by the "
        "test cutoff; grouped_kfold: customer-grouped k-fold at one cutoff",
    )
    cutoff_frequency: str = Field("MS", description="pandas offset alias between cutoffs")
    first_cutoff: str | None = Field(None, description="earliest cutoff (default: data start)")
    last_cutoff: str | None = Field(
        None, description="latest training cutoff (default: the latest labelled one); e.g. to "
        "train as of an earlier date and monitor the months since")
    n_origins: int = Field(3, gt=0, description="rolling_origin: test cutoffs (the latest)")
    origin_step: int = Field(1, gt=0, description="rolling_origin: cutoffs between origins")
    max_train_cutoffs: int | None = Field(
        None, gt=0, description="training window, in cutoffs (None: all eligible, expanding)"
    )
    kfold_cutoff: str | None = Field(
        None, description="grouped_kfold: the cutoff (default: the latest labelled one)"
    )
    n_folds: int = Field(5, ge=2, description="grouped_kfold: number of customer folds")
    churn_params: dict[str, Any] = Field(
        default_factory=dict, description="ChurnClassifier arguments (LightGBM, calibration)"
    )
    logistic_params: dict[str, Any] = Field(
        default_factory=dict, description="LogisticChurnBaseline arguments"
    )
    ltv_params: dict[str, Any] = Field(default_factory=dict, description="LTVModel arguments")
    churn_candidates: list[dict[str, Any]] = Field(
        default_factory=list,
        description="churn_params overrides compared by nested validation (empty: none); "
        "{model: btyd, kind: pareto_nbd|bgnbd} is a BTYD churn model instead of LightGBM",
    )
    ltv_candidates: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"kind": "hurdle"}, {"kind": "tweedie"}],
        description="ltv_params overrides compared by nested validation (empty: none); "
        "{kind: btyd, btyd_model: pareto_nbd|bgnbd} is a BTYD (+ Gamma-Gamma) value model",
    )
    churn_selection_metric: ChurnMetric = "roc_auc"
    ltv_selection_metric: LTVMetric = "normalized_gini"
    inner_validation_fraction: float = Field(
        0.2, gt=0, lt=1,
        description="share of training customers held out for selection when no earlier "
        "training cutoff can serve as validation",
    )
    spark_max_panel_rows: int | None = Field(
        2_000_000, gt=0,
        description="features.engine spark: a labelled panel larger than this (rows) is "
        "sampled to about this size before it is collected to the driver for LightGBM, by "
        "customer and stratified by cutoff and churn label (None: never sample)")
    seed: int = Field(42, description="seed of folds, splits and LightGBM")
    n_jobs: int = Field(
        1, gt=0, description="threads of LightGBM and BLAS (fixed: results may depend on it)"
    )

    @model_validator(mode="after")
    def _btyd_candidates(self) -> TrainingConfig:
        for i, c in enumerate(self.churn_candidates):
            model = c.get("model", LIGHTGBM)
            if model not in (LIGHTGBM, BTYD):
                raise ValueError(f"churn_candidates[{i}].model must be {LIGHTGBM!r} or "
                                 f"{BTYD!r}, got {model!r}")
            if model == BTYD:
                _check_btyd(c, f"churn_candidates[{i}]", "kind", {"model", "kind"})
        for i, c in enumerate(self.ltv_candidates):
            if c.get("kind") == BTYD:
                _check_btyd(c, f"ltv_candidates[{i}]", "btyd_model", {"kind", "btyd_model"})
            elif "btyd_model" in c:
                raise ValueError(f"ltv_candidates[{i}]: btyd_model needs kind: {BTYD}")
        return self


LIGHTGBM, BTYD = "lightgbm", "btyd"  # candidate model families
BTYD_KINDS = ("pareto_nbd", "bgnbd")  # as churnml.models.btyd.KINDS


def _check_btyd(candidate: dict[str, Any], where: str, kind_key: str, allowed: set[str]) -> None:
    """A BTYD candidate names only ``allowed`` keys and a known transaction model."""
    unknown = set(candidate) - allowed
    if unknown:
        raise ValueError(f"{where}: a BTYD candidate takes only {sorted(allowed)} (its "
                         f"horizon is churn.horizon_days), got {sorted(unknown)}")
    kind = candidate.get(kind_key, BTYD_KINDS[0])
    if kind not in BTYD_KINDS:
        raise ValueError(f"{where}.{kind_key} must be one of {BTYD_KINDS}, got {kind!r}")


REGISTRY_NAME_FORBIDDEN = "/@:'\""  # would break models:/<name>@<alias> URIs, filters
CHURN_NAME_SUFFIX, LTV_NAME_SUFFIX = "-churn", "-ltv"


class TrackingConfig(_Strict):
    """MLflow tracking store, model registry and champion rule."""

    uri: str = Field(
        "sqlite:///mlflow.db",
        description="MLflow tracking and registry URI; a relative sqlite:/// path in a config "
        "file is read from the config file's folder",
    )
    experiment: str | None = Field(None, description="experiment (default: the config name)")
    churn_model_name: str | None = Field(
        None, description="registered churn model (default: '<name>-churn', name of the config)"
    )
    ltv_model_name: str | None = Field(
        None, description="registered LTV model (default: '<name>-ltv')"
    )
    churn_champion_metric: ChurnMetric = Field(
        "roc_auc",
        description="backtest mean that a new churn version must beat (the champion's and the "
        "recency baseline's)",
    )
    ltv_champion_metric: LTVMetric = Field(
        "normalized_gini",
        description="backtest mean that a new LTV version must beat (the champion's and the "
        "last-value baseline's)",
    )
    min_improvement: float = Field(
        1e-6, ge=0,
        description="a new version must beat the champion's metric by more than this "
        "(metric units): a rerun that differs only by floating-point noise never swaps",
    )
    promotion_rule: Literal["paired", "strict"] = Field(
        "paired",
        description="against the naive baseline: 'paired' blocks promotion only when the "
        "model is worse fold by fold by more than the folds' spread (mean paired difference "
        "< -promotion_tolerance_sd x its sd); 'strict' needs a better backtest mean",
    )
    promotion_tolerance_sd: float = Field(
        1.0, ge=0, description="paired rule: tolerated shortfall, in sds of the per-fold "
        "differences model - baseline",
    )
    promote_across_configs: bool = Field(
        False, description="let a pair replace a champion trained for a different config "
        "of the same name (another data source, churn definition or feature spec: its "
        "lineage tags differ); off: such a pair stays challenger, with the differences named")

    @model_validator(mode="after")
    def _safe_names(self) -> TrackingConfig:
        for key in ("churn_model_name", "ltv_model_name"):
            value = getattr(self, key)
            bad = value is not None and (not value.strip() or set(value) & set(
                REGISTRY_NAME_FORBIDDEN))
            if bad:
                raise ValueError(f"{key} {value!r}: must be non-empty without any of "
                                 f"{REGISTRY_NAME_FORBIDDEN!r}")
        return self


class FeaturesConfig(_Strict):
    """Point-in-time features (``churnml features``, :func:`churnml.features.build_features`)."""

    spec: str | dict[str, Any] | None = Field(
        None,
        description="FeatureSpec: path of its YAML file (relative to this config) or its keys "
        "inline (groups, windows_days, event_types, extra, exclude, ...); None: every group "
        "with the default windows",
    )
    engine: Literal["duckdb", "spark"] = Field("duckdb", description="query engine")
    threads: int | None = Field(None, gt=0, description="DuckDB worker threads (None: cores)")
    memory_limit: str | None = Field(
        None, description="DuckDB memory limit, e.g. '2GB' (None: DuckDB's, 80% of RAM)"
    )
    spark_master: str = Field(
        "local[*]", description="Spark master URL when no SparkSession is active"
    )
    spark_driver_memory: str = Field(
        "auto", description="spark.driver.memory of a SparkSession churnml starts: 'auto' "
        "(half the machine's memory, 1-64 GB) or a size like '8g'; in local mode the driver "
        "runs every task")
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="settings of a SparkSession churnml starts (override its defaults), e.g. "
        "{spark.sql.shuffle.partitions: '8'}",
    )


class ScoringConfig(_Strict):
    """Batch scoring (``churnml score``): models, chunking, reasons in words and segments.

    Segment rules and reason conditions are SQL (DuckDB dialect) over the scored columns
    (``churn_probability``, ``expected_value``, ``value_if_retained``, ``value_at_risk``),
    any feature, the named
    ``thresholds`` and ``quantiles``, and ``horizon_days`` / ``lookback_days`` of ``churn``.
    Each customer gets the first segment (lowest ``priority``) whose rule holds, else
    ``default_segment``.
    """

    model_alias: str = Field(
        "champion", description="registry alias scored: models:/<tracking.*_model_name>@alias"
    )
    models_dir: str | None = Field(
        None, description="folder written by `churnml export`; used instead of the registry"
    )
    trust_pickle: bool = Field(
        False,
        description="let models_dir hold pickled (.joblib) models: loading a pickle can run any "
        "code, so only for files you made yourself (`churnml export` writes code-free JSON)",
    )
    allow_missing_lineage: bool = Field(
        False, description="score with models whose run or model card records no lineage "
        "(churnml.lineage.* tags: an older churnml, or an edited card), unchecked, with a "
        "warning; by default they are refused")
    chunk_size: int = Field(100_000, gt=0, description="customers per scoring chunk")
    reasons_count: int = Field(3, gt=0, description="churn drivers in words per customer")
    attribution: Literal["path", "tree_shap"] = Field(
        "path",
        description="per-row contributions: 'path' (decision-path attribution, as fast as "
        "prediction) or 'tree_shap' (exact TreeSHAP; orders of magnitude slower)",
    )
    min_reason_contribution: float = Field(
        0.0, ge=0, description="a driver must raise the churn log-odds by more than this"
    )
    reason_templates: dict[str, list[dict[str, str]]] = Field(
        default_factory=lambda: {
            "days_since_last_purchase": [
                {"text": "last purchase {value:.0f} days ago, usually every "
                         "{purchase_gap_mean_days:.0f} days"},
            ],
            **{f"{kind}_latest": [
                {"when": f"{flag} = 1",
                 "text": f"{label} {{value:.0f}} ({word}) on {{days_since_last_{kind}:date}}"},
                {"when": f"{flag} = 1", "text": f"{label} {{value:.0f}} ({word})"},
                {"text": f"{label} {{value:.0f}} on {{days_since_last_{kind}:date}}"},
            ] for kind, label, flag, word in (
                ("nps", "NPS", "nps_detractor", "detractor"),
                ("csat", "CSAT", "csat_dissatisfied", "dissatisfied"))},
            **{flag: [
                {"when": "value = 1",
                 "text": f"{label} {{{kind}_latest:.0f}} ({word}) on "
                         f"{{days_since_last_{kind}:date}}"},
            ] for kind, label, flag, word in (
                ("nps", "NPS", "nps_detractor", "detractor"),
                ("csat", "CSAT", "csat_dissatisfied", "dissatisfied"))},
            "ces_latest": [{"text": "CES {value:.0f} on {days_since_last_ces:date}"}],
            "purchase_gap_mean_days": [
                {"when": "value IS NULL", "text": "only one purchase so far"},
            ],
            "purchase_gap_std_days": [
                {"when": "value IS NULL", "text": "fewer than three purchases so far"},
            ],
            "purchase_rate_per_day": [
                {"when": "value >= 1", "text": "about {value:.0f} purchases a day"},
            ],
            "nps_trend": [{"when": "value IS NULL", "text": "no NPS answer yet"}],
            "csat_trend": [{"when": "value IS NULL", "text": "no CSAT answer yet"}],
            "ces_trend": [{"when": "value IS NULL", "text": "no CES answer yet"}],
            "satisfaction_index_60d": [
                {"when": "value IS NULL", "text": "no survey answer in the last 60 days"},
            ],
            "satisfaction_index_180d": [
                {"when": "value IS NULL", "text": "no survey answer in the last 180 days"},
            ],
            "satisfaction_index_latest": [
                {"when": "value IS NULL", "text": "no survey answer yet"},
            ],
        },
        description="feature -> alternatives {text, when}: the first whose SQL `when` holds "
        "and whose fields are known is used, else the feature's own description (a driver "
        "that nothing words is skipped); text is a str.format template over `value`, "
        "features and the word formats of churnml.features.wording (`:change`, `:date`, "
        "`:every`, `:count NOUN`, `:diff`)",
    )
    quantiles: dict[str, tuple[str, float]] = Field(
        default_factory=lambda: {
            "vip_value": ("value_if_retained", 0.8),
            "top_value_at_risk": ("value_at_risk", 0.8),
            "high_past_value": ("net_revenue_total", 0.8),
        },
        description="name -> (column, q): threshold = the q-quantile (linear) of the column "
        "over all scored customers, for use in rules",
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {
            "high_risk_probability": 0.3,
            "loyal_max_probability": 0.2,
            "loyal_min_purchases": 4,
            "new_customer_days": 90,
        },
        description="named constants for rules (probabilities, counts, days)",
    )
    segments: list[dict[str, str | int | bool]] = Field(
        default_factory=lambda: [
            {"name": "vip_at_risk", "priority": 10, "reasons": True,
             "when": "value_if_retained >= vip_value AND churn_probability >= "
                     "high_risk_probability AND days_since_last_purchase < horizon_days",
             "action": "personal call"},
            {"name": "at_risk", "priority": 20, "reasons": True,
             "when": "value_at_risk >= top_value_at_risk AND churn_probability >= "
                     "high_risk_probability AND days_since_last_purchase < horizon_days",
             "action": "retention offer"},
            {"name": "lapsed_high_value", "priority": 30, "reasons": True,
             "when": "days_since_last_purchase >= horizon_days AND (value_if_retained >= "
                     "vip_value OR net_revenue_total >= high_past_value)",
             "action": "win-back (reactivation) email"},
            {"name": "detractor", "priority": 40, "reasons": True,
             "when": "nps_detractor = 1", "action": "service follow-up"},
            {"name": "lapsed", "priority": 45, "reasons": False,
             "when": "days_since_last_purchase >= horizon_days",
             "action": "low-cost win-back email"},
            {"name": "new_customer", "priority": 50, "reasons": False,
             "when": "tenure_days < new_customer_days", "action": "onboarding"},
            {"name": "loyal", "priority": 60, "reasons": False,
             "when": "churn_probability < loyal_max_probability AND purchases_365d >= "
                     "loyal_min_purchases",
             "action": "referral invitation"},
            {"name": "act_now", "priority": 70, "reasons": False,
             "when": "value_if_retained >= vip_value AND median_time_to_churn_days <= 180",
             "action": "contact this week"},
        ],
        description="rules {name, when (SQL), action, priority (lower wins), reasons (bool: "
        "explain these customers)}; a rule naming a feature the data lack is skipped, a "
        "name that is no score column, feature or named value is an error",
    )
    default_segment: dict[str, str | bool] = Field(
        default_factory=lambda: {"name": "standard", "action": "regular newsletter",
                                 "reasons": False},
        description="segment {name, action, reasons} of customers no rule matches",
    )

    @model_validator(mode="after")
    def _safe(self) -> ScoringConfig:
        """Rules and reason conditions pass the expression allow-list
        (:mod:`churnml.expressions`); segment names map to distinct file names."""
        try:
            for i, rule in enumerate(self.segments):
                if "when" in rule:
                    where = f"scoring.segments[{rule.get('name', i)}].when"
                    parse_expression(str(rule["when"]), where=where)
            for feature, alternatives in self.reason_templates.items():
                for i, t in enumerate(alternatives):
                    if t.get("when"):
                        where = f"scoring.reason_templates[{feature}][{i}].when"
                        parse_expression(t["when"], where=where)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        files: dict[str, str] = {}
        for rule in [*self.segments, self.default_segment]:
            name = str(rule.get("name", ""))
            other = files.setdefault(file_stem(name), name)
            if other != name:
                raise ValueError(f"scoring.segments: names {other!r} and {name!r} would both be "
                                 f"written to segments/{file_stem(name)}.csv; rename one")
        return self


class UpliftConfig(_Strict):
    """Campaigns and uplift (``churnml campaign plan|evaluate|train|target``)."""

    learner: Literal["s", "t", "x", "dr"] = Field(
        "s", description="meta-learner of churnml.uplift: S-, T-, X- or doubly robust "
        "(S measured best on Hillstrom and the simulator, benchmarks/README.md)"
    )
    outcome: Literal["retained", "revenue"] = Field(
        "revenue", description="effect modelled: on horizon revenue (targeting value = uplift "
        "- cost; sees the offer's effect on spend of customers who stay anyway) or on "
        "P(retained) (uplift x value_if_retained - cost)"
    )
    revenue_objective: Literal["regression", "tweedie"] = Field(
        "tweedie", description="loss of the revenue outcome models (outcome revenue): Tweedie "
        "with a log link (an offer scales spend; measured best on the simulator, "
        "benchmarks/README.md) or L2 regression"
    )
    flag_level: float = Field(
        0.9, gt=0.5, lt=1, description="a customer is flagged negative uplift (do not "
        "contact) when P(effect < 0) from bootstrapped uplift models is at least this"
    )
    flag_boot: int = Field(
        20, ge=5, description="bootstrap refits of the uplift model behind the flag's "
        "probability"
    )
    flag_method: Literal["groups", "bootstrap"] = Field(
        "groups", description="how P(effect < 0) behind the flag is found: the retention "
        "effect measured in groups of customers of similar cross-fitted predicted retention "
        "effect (churnml.uplift.flags), or per customer from flag_boot bootstrap refits of "
        "the model"
    )
    flag_groups: int = Field(
        20, ge=2, description="groups of equal size by predicted effect (flag_method groups)"
    )
    validation_boot: int = Field(
        200, ge=20, description="bootstrap resamples of the held-out Qini interval"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="learner arguments (LightGBM, propensity, ...)"
    )
    train_campaigns: list[str] | None = Field(
        None, description="campaign ids to learn from (None: every matured campaign)"
    )
    treatment: str | None = Field(
        None, description="treatment arm to target with (None: the only one in the log)"
    )
    control_share: float = Field(
        0.1, gt=0, lt=1, description="share of each segment held out as random control group"
    )
    arm: str = Field("treatment", description="arm name written for contacted customers")
    channel: str | None = Field(None, description="campaigns.channel written by plan")
    cost_per_contact: float = Field(0.0, ge=0, description="cost of one treated contact, "
                                    "currency units")
    budget_contacts: int | None = Field(
        None, gt=0, description="at most this many customers per campaign (holdout included)"
    )
    budget_cost: float | None = Field(None, gt=0, description="at most this expected cost")
    min_control_per_segment: int = Field(
        1, ge=0, description="a plan is refused unless control_share x (customers of the "
        "segment) reaches this many controls in every segment (0: no check)")
    seed: int = Field(42, description="seed of the control-group draw")
    interval_level: float = Field(0.95, gt=0, lt=1, description="confidence level of "
                                  "campaign evaluation intervals")
    experiment: str | None = Field(
        None, description="MLflow experiment of campaign runs (default: <name>-campaigns)"
    )

    @model_validator(mode="after")
    def _costed_budget(self) -> UpliftConfig:
        if self.budget_cost is not None and self.cost_per_contact <= 0:
            raise ValueError(
                f"budget_cost ({self.budget_cost}) needs a positive cost_per_contact (got "
                f"{self.cost_per_contact}): without a cost per contact the budget caps nothing")
        return self


def check_campaign_settings(**settings: Any) -> UpliftConfig:
    """Campaign settings given outside a config file (command-line flags, Python arguments
    such as ``budget_contacts``) checked by the rules of :class:`UpliftConfig`, so both
    routes refuse the same values; a :class:`ConfigError` names each bad one."""
    try:
        return UpliftConfig.model_validate(settings)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(x) for x in e['loc']) or 'uplift'}: "
                 f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise ConfigError("; ".join(parts)) from exc


class MonitoringConfig(_Strict):
    """Score history and ``churnml monitor``: drift thresholds and the retrain signal."""

    history: bool = Field(True, description="every `churnml score` run is kept in the "
                          "score history (<output_dir>/score_history)")
    history_dir: str | None = Field(
        None, description="score history folder (default: <output_dir>/score_history)")
    psi_warn: float = Field(0.1, gt=0, description="PSI above this is a moderate shift")
    psi_alarm: float = Field(0.25, gt=0, description="PSI above this is drift: an alarm")
    auc_margin: float = Field(
        0.05, ge=0, description="alarm when realized ROC AUC < backtest mean - this")
    brier_margin: float = Field(
        0.03, ge=0, description="alarm when realized Brier > backtest mean + this")
    n_draws: int = Field(200, ge=20, description="label draws behind the estimated intervals")
    age_features: list[str] = Field(
        default_factory=lambda: ["tenure_days", "days_since_first_*", "days_since_signup"],
        description="features (fnmatch patterns) that grow with the calendar by construction "
        "(the base ages): their drift is reported but raises no alarm")
    seed: int = 0
    quality_window_days: int = Field(
        90, gt=0, description="data checks: the window of input rows before each cutoff, days "
        "(the reference's data profile covers the same length before its cutoff)")
    quality_period_days: int = Field(
        30, gt=0, description="data checks: rows and customers are counted per period of "
        "this many days; columns are checked over the last period before each cutoff")
    volume_ratio: float = Field(
        0.5, gt=0, lt=1, description="data alarm when a period's rows or customers of a table "
        "fall below this share of the reference's mean per period, or rise above its inverse")
    share_margin: float = Field(
        0.1, gt=0, le=1, description="data alarm when a column's share of missing or zero "
        "values moves by more than this (absolute)")
    acknowledged: list[str] = Field(
        default_factory=list, description="data checks acknowledged as known, intended "
        "changes (fnmatch patterns on '<table>.<column>' or '<table>.<column>:<check>', e.g. "
        "'surveys.score.nps'): they raise no data alarm and no longer block retraining")
    interval_alarm_level: float = Field(
        0.99, gt=0.5, lt=1, description="alarm when a realized ROC AUC / Brier lies beyond "
        "this central interval of its estimate, on the worse side (the reported interval is "
        "95 %)")
    value_ratio_margin: float | None = Field(
        None, gt=0, description="alarm when realized / predicted value moves from the "
        "reference's by more than this share (None: reported only; it follows the season)")
    value_shift_alarm: float = Field(
        0.05, gt=0, description="alarm when the mean value if retained or the spend per "
        "purchase moves from the reference by more than this share")
    spend_change_z: float | None = Field(
        3.0, gt=0, description="alarm when the within-customer change of order value (the "
        "same customers' recent orders against their own earlier ones) moves from the "
        "reference's by more than this many standard errors (and value_shift_alarm); None: "
        "not computed")
    spend_change_windows_days: list[int] = Field(
        default_factory=lambda: [30, 90], min_length=1, description="within-customer order "
        "value: the recent windows before each cutoff, days")
    spend_change_earlier_days: int = Field(
        180, gt=0, description="within-customer order value: the earlier window each recent "
        "window is compared with (the days just before it)")

    @field_validator("spend_change_windows_days")
    @classmethod
    def _positive_windows(cls, v: list[int]) -> list[int]:
        if any(w <= 0 for w in v) or len(set(v)) != len(v):
            raise ValueError(f"spend_change_windows_days must be distinct positive days, got {v}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_warn > self.psi_alarm:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi_alarm "
                             f"({self.psi_alarm})")
        return self


TailRule = Literal["constant_hazard", "sbg", "restricted"]


class SurvivalConfig(_Strict):
    """Time to churn (``churnml.survival``): the period grid, score horizons, discounting and
    intervals. Durations are counted in periods of ``period_days`` from each cutoff."""

    enabled: bool = Field(
        False, description="fit and score the survival model beside churn and value")
    period_days: int = Field(
        30, gt=0, description="grid unit, days: 30 (months) by default, as fine as a 30-day "
        "horizon needs while a two-year grid stays 24 person-period rows per landmark; 7 for "
        "weeks, 1 for days, or the billing cycle of a subscription business")
    grid_periods: int = Field(
        24, gt=0, description="length of the survival curve, in periods (must not exceed the "
        "data span; extended past it by tail_rule)")
    horizons_days: list[int] = Field(
        default_factory=lambda: [30, 90, 365],
        description="survival scored at these horizons, days: p_active_<N>d (at most "
        "grid_periods x period_days)")
    discount_rate_annual: float = Field(
        0.10, ge=0, lt=10, description="annual discount rate of lifetime value and DERL; a "
        "period's factor is (1 + rate)^(-period_days / 365.25)")
    interval_level: float = Field(
        0.8, gt=0, lt=1, description="level of the lifetime_value_low/high interval")
    tail_rule: TailRule = Field(
        "constant_hazard", description="curve past the longest observed duration: "
        "constant_hazard (last hazard continues), sbg (shifted-beta-geometric fit on the "
        "model's own retention) or restricted (stop at the grid end: restricted means)")
    champion_metric: Literal["uno_c", "harrell_c", "mean_auc", "integrated_brier",
                             "integrated_admin_brier", "calibration_ici"] = Field(
        "integrated_admin_brier", description="backtest metric the survival model must beat "
        "Kaplan–Meier, Cox and the survival champion on to become champion (Brier and "
        "calibration errors: lower is better)")

    @field_validator("horizons_days")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one horizon (days)")
        if any(h <= 0 for h in value):
            raise ValueError(f"horizons must be positive days, got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"horizons repeat a value: {value}")
        return sorted(value)

    @model_validator(mode="after")
    def _grid_reaches_horizons(self) -> SurvivalConfig:
        grid_days = self.grid_periods * self.period_days
        if max(self.horizons_days) > grid_days:
            raise ValueError(
                f"horizon {max(self.horizons_days)} days lies beyond the grid "
                f"(grid_periods {self.grid_periods} x period_days {self.period_days} = "
                f"{grid_days} days); lengthen grid_periods or drop the horizon")
        return self

    @property
    def grid_days(self) -> int:
        """Length of the grid in days."""
        return self.grid_periods * self.period_days


class Config(_Strict):
    name: str = "churnml"
    data: DataConfig
    churn: ChurnConfig = ChurnConfig()
    voice: VoiceConfig = VoiceConfig()
    validation: ValidationConfig = ValidationConfig()
    metrics: MetricsConfig = MetricsConfig()
    features: FeaturesConfig = FeaturesConfig()
    training: TrainingConfig = TrainingConfig()
    tracking: TrackingConfig = TrackingConfig()
    scoring: ScoringConfig = ScoringConfig()
    uplift: UpliftConfig = UpliftConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    survival: SurvivalConfig = SurvivalConfig()
    output_dir: str = "out"
    csv_escape_formulas: bool = Field(
        True, description="prefix CSV text cells starting with = + - @ tab CR LF with ' so "
        "spreadsheets show them as text (OWASP); false for machine readers")

    @model_validator(mode="after")
    def _registry_names(self) -> Config:
        """Registered model names default to ``<name>-churn`` / ``<name>-ltv``, so configs
        for different data never share (and silently swap) champions."""
        t = self.tracking
        if t.churn_model_name is None:
            t.churn_model_name = _registry_name(self.name, CHURN_NAME_SUFFIX)
        if t.ltv_model_name is None:
            t.ltv_model_name = _registry_name(self.name, LTV_NAME_SUFFIX)
        return self


def _registry_name(config_name: str, suffix: str) -> str:
    if not config_name.strip() or set(config_name) & set(REGISTRY_NAME_FORBIDDEN):
        raise ValueError(
            f"name {config_name!r} cannot name registered models (it must be non-empty without "
            f"any of {REGISTRY_NAME_FORBIDDEN!r}); rename it or set tracking.churn_model_name "
            "and tracking.ltv_model_name"
        )
    return f"{config_name}{suffix}"


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, f"{path}: ") from None
    return resolve_paths(cfg, path.parent)


def config_error(exc: ValidationError, prefix: str = "",
                 names: dict[str, str] | None = None) -> ConfigError:
    """A :class:`ConfigError` from a pydantic error, one ``key: message`` per problem
    (``names`` renames keys, e.g. ``{"dataset": "--dataset"}``): no pydantic banner or web
    link; a value outside a fixed set names the value, the valid ones and the closest."""
    import difflib

    names = names or {}
    parts = []
    for e in exc.errors(include_url=False):
        key = ".".join(str(x) for x in e["loc"])
        key = names.get(key, key)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            valid = [v.strip().strip("'") for v in
                     e["ctx"]["expected"].replace(" or ", ", ").split(",")]
            close = difflib.get_close_matches(str(e["input"]), valid, n=1)
            msg = (f"unknown value {e['input']!r}; valid: {', '.join(valid)}"
                   + (f" (did you mean {close[0]!r}?)" if close else ""))
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{key}: {msg}" if key else msg)
    return ConfigError(prefix + "; ".join(parts))


SQLITE_PREFIX = "sqlite:///"


def resolve_paths(cfg: Config, base: Path) -> Config:
    """Make the relative paths *written in a config file* absolute against its folder
    ``base``: ``data.dir``, ``features.spec`` (a file), ``output_dir``, ``scoring.models_dir``,
    ``monitoring.history_dir``, ``data.allowed_roots`` and a relative ``sqlite:///`` or
    plain-folder ``tracking.uri``; ``data.dir`` must lie in the config's folder or an allowed
    root (:func:`churnml.paths.confined`). Values the file does not
    set keep their defaults, which are relative to the working folder."""
    cfg.data.dir = _relative_to(base, cfg.data.dir)
    cfg.data.allowed_roots = [_relative_to(base, r) or r for r in cfg.data.allowed_roots]
    cfg.data._config_dir = str(base.resolve())
    if cfg.data.dir is not None and is_local(cfg.data.dir):
        confined(cfg.data.dir, [cfg.data._config_dir, *cfg.data.allowed_roots], "data.dir")
    if isinstance(cfg.features.spec, str):
        cfg.features.spec = _relative_to(base, cfg.features.spec)
    cfg.scoring.models_dir = _relative_to(base, cfg.scoring.models_dir)
    cfg.monitoring.history_dir = _relative_to(base, cfg.monitoring.history_dir)
    if "output_dir" in cfg.model_fields_set:
        cfg.output_dir = _relative_to(base, cfg.output_dir)
    if "uri" in cfg.tracking.model_fields_set:
        cfg.tracking.uri = _relative_uri(base, cfg.tracking.uri)
    return cfg


def _relative_uri(base: Path, uri: str) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////<base>/rel.db``; a plain relative folder (file
    store) -> absolute; other URIs (``http://``, ``databricks``, absolute paths) unchanged."""
    if uri.startswith(SQLITE_PREFIX):
        db = uri.removeprefix(SQLITE_PREFIX)
        if db and not db.startswith("/") and not db.startswith(":memory:"):
            return SQLITE_PREFIX + _relative_to(base, db)
        return uri
    if "://" in uri or ":" in uri.split("/", 1)[0] or uri == "databricks":
        return uri
    return _relative_to(base, uri) or uri


def _relative_to(base: Path, value: str | None) -> str | None:
    """A path from a config file: relative ones are read from the config file's folder."""
    if value is None or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def default_config(dataset: Literal["cdnow", "simulated"] = "simulated") -> Config:
    """Config for a built-in dataset with default settings."""
    return Config(data=DataConfig(dataset=dataset))
