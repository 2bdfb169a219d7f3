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

    path: str | None = Field(None, description="CSV or Parquet file (relative to data.dir)")
    columns: dict[str, str] = Field(
        default_factory=dict, description="canonical name -> raw column name"
    )
    ts_format: str | None = Field(None, description="strftime format of timestamp columns")
    csv_options: dict[str, Any] = Field(default_factory=dict)


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
        if self.dataset is None and self.dir is None:
            raise ValueError("data needs either `dataset` (cdnow|simulated) or `dir`")
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


class Config(_Strict):
    name: str = "churnml"
    data: DataConfig
    churn: ChurnConfig = ChurnConfig()
    voice: VoiceConfig = VoiceConfig()
    validation: ValidationConfig = ValidationConfig()
    metrics: MetricsConfig = MetricsConfig()
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
    if cfg.data.dir is not None and not Path(cfg.data.dir).is_absolute():
        cfg.data.dir = str((path.parent / cfg.data.dir).resolve())
    return cfg


def default_config(dataset: Literal["cdnow", "simulated"] = "simulated") -> Config:
    """Config for a built-in dataset with default settings."""
    return Config(data=DataConfig(dataset=dataset))
