"""Typed configuration, loaded from YAML files in ``configs/``.

Every tunable number of the package lives here (with its unit in the field name or
description), so that code holds no magic constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churnml.errors import ConfigError

Period = Literal["day", "week", "month", "quarter", "year"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    ts_format: str | None = Field(None, description="strftime format of timestamp columns")
    csv_options: dict[str, Any] = Field(default_factory=dict)

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


class DataConfig(_Strict):
    """Input data: a built-in dataset or a folder of CSV/Parquet tables."""

    dataset: Literal["cdnow", "simulated"] | None = None
    dir: str | None = None
    tables: dict[str, TableSource] = Field(default_factory=dict)
    timezone: str = Field(
        "UTC", description="time zone that naive timestamps are in / aware ones convert to"
    )
    currency: str = "USD"
    simulated_customers: int = Field(20_000, description="size of the simulated dataset")
    seed: int = 42

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        located = self.tables and all(t.table or t.path for t in self.tables.values())
        if self.dataset is None and self.dir is None and not located:
            raise ValueError("data needs either `dataset` (cdnow|simulated), `dir`, or a "
                             "`table` / `path` for every entry of `tables`")
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
        description="churn_params overrides compared by nested validation (empty: none)",
    )
    ltv_candidates: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"kind": "hurdle"}, {"kind": "tweedie"}],
        description="ltv_params overrides compared by nested validation (empty: none)",
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


class TrackingConfig(_Strict):
    """MLflow tracking store, model registry and champion rule."""

    uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking and registry URI")
    experiment: str | None = Field(None, description="experiment (default: the config name)")
    churn_model_name: str = Field("churnml-churn", description="registered churn model")
    ltv_model_name: str = Field("churnml-ltv", description="registered LTV model")
    churn_champion_metric: ChurnMetric = Field(
        "roc_auc", description="backtest mean that a new churn version must beat"
    )
    ltv_champion_metric: LTVMetric = Field(
        "normalized_gini", description="backtest mean that a new LTV version must beat"
    )
    min_improvement: float = Field(
        1e-6, ge=0,
        description="a new version must beat the champion's metric by more than this "
        "(metric units): a rerun that differs only by floating-point noise never swaps",
    )


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
    (``churn_probability``, ``predicted_value``, ``value_at_risk``), any feature, the named
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
                {"text": "no purchase for {value:.0f} days (usual gap "
                         "{purchase_gap_mean_days:.0f})"},
                {"text": "no purchase for {value:.0f} days"},
            ],
            "recency_vs_usual_gap": [
                {"text": "no purchase for {days_since_last_purchase:.0f} days (usual gap "
                         "{purchase_gap_mean_days:.0f})"},
            ],
            "nps_latest": [
                {"when": "nps_detractor = 1",
                 "text": "NPS detractor (score {value:.0f}) on {days_since_last_nps:date}"},
                {"when": "nps_detractor = 1", "text": "NPS detractor (score {value:.0f})"},
            ],
            "nps_detractor": [
                {"when": "value = 1",
                 "text": "NPS detractor (score {nps_latest:.0f}) on {days_since_last_nps:date}"},
                {"when": "value = 1", "text": "NPS detractor (score {nps_latest:.0f})"},
                {"text": "latest NPS {nps_latest:.0f}"},
            ],
            "csat_dissatisfied": [
                {"when": "value = 1",
                 "text": "dissatisfied (CSAT {csat_latest:.0f}) on {days_since_last_csat:date}"},
                {"when": "value = 1", "text": "dissatisfied (CSAT {csat_latest:.0f})"},
                {"text": "latest CSAT {csat_latest:.0f}"},
            ],
            "purchase_gap_mean_days": [
                {"when": "value IS NULL", "text": "only one purchase so far"},
                {"text": "buys every {value:.0f} days on average"},
            ],
            "purchase_gap_std_days": [
                {"when": "value IS NULL", "text": "fewer than three purchases so far"},
            ],
            "nps_trend": [{"when": "value IS NULL", "text": "no NPS answer"}],
            "csat_trend": [{"when": "value IS NULL", "text": "no CSAT answer"}],
            "ces_trend": [{"when": "value IS NULL", "text": "no CES answer"}],
            "satisfaction_index_60d": [
                {"when": "value IS NULL", "text": "no survey answer in the last 60 days"},
            ],
            "satisfaction_index_180d": [
                {"when": "value IS NULL", "text": "no survey answer in the last 180 days"},
            ],
            "satisfaction_index_latest": [
                {"when": "value IS NULL", "text": "no survey answer yet"},
            ],
            "engagement_trend_30d": [
                {"when": "value IS NULL", "text": "no engagement in the 30 days before last"},
                {"text": "engagement {value:change} vs the previous 30 days"},
            ],
            "purchases_trend_90d": [{"text": "purchases {value:change} vs the previous 90 days"}],
            "spend_trend_90d": [{"text": "spend {value:change} vs the previous 90 days"}],
        },
        description="feature -> alternatives {text, when}: the first whose SQL `when` holds "
        "and whose fields are known is used, else the feature's own description; text is a "
        "str.format template over `value`, features and `:change` (ratio -> 'down 80 %') / "
        "`:date` (days before the cutoff -> date) formats",
    )
    quantiles: dict[str, tuple[str, float]] = Field(
        default_factory=lambda: {
            "vip_value": ("predicted_value", 0.9),
            "top_value_at_risk": ("value_at_risk", 0.8),
            "high_past_value": ("net_revenue_total", 0.8),
        },
        description="name -> (column, q): threshold = the q-quantile (linear) of the column "
        "over all scored customers, for use in rules",
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {
            "high_risk_probability": 0.5,
            "loyal_max_probability": 0.2,
            "loyal_min_purchases": 4,
            "new_customer_days": 90,
        },
        description="named constants for rules (probabilities, counts, days)",
    )
    segments: list[dict[str, str | int | bool]] = Field(
        default_factory=lambda: [
            {"name": "vip_at_risk", "priority": 10, "reasons": True,
             "when": "predicted_value >= vip_value AND churn_probability >= "
                     "high_risk_probability",
             "action": "personal call"},
            {"name": "at_risk", "priority": 20, "reasons": True,
             "when": "value_at_risk >= top_value_at_risk", "action": "retention offer"},
            {"name": "lapsed_high_value", "priority": 30, "reasons": True,
             "when": "days_since_last_purchase >= horizon_days AND net_revenue_total >= "
                     "high_past_value",
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
        ],
        description="rules {name, when (SQL), action, priority (lower wins), reasons (bool: "
        "explain these customers)}; a rule naming a column the data lack is skipped",
    )
    default_segment: dict[str, str | bool] = Field(
        default_factory=lambda: {"name": "standard", "action": "regular newsletter",
                                 "reasons": False},
        description="segment {name, action, reasons} of customers no rule matches",
    )


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
    output_dir: str = "out"


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
        parts = [
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"{path}: " + "; ".join(parts)) from exc
    cfg.data.dir = _relative_to(path.parent, cfg.data.dir)
    if isinstance(cfg.features.spec, str):
        cfg.features.spec = _relative_to(path.parent, cfg.features.spec)
    cfg.scoring.models_dir = _relative_to(path.parent, cfg.scoring.models_dir)
    return cfg


def _relative_to(base: Path, value: str | None) -> str | None:
    """A path from a config file: relative ones are read from the config file's folder."""
    if value is None or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def default_config(dataset: Literal["cdnow", "simulated"] = "simulated") -> Config:
    """Config for a built-in dataset with default settings."""
    return Config(data=DataConfig(dataset=dataset))
