"""`FeatureSpec`: which built-in groups to build, their windows and thresholds, and custom
features; loadable from YAML.

Example YAML (every key optional)::

    groups: [recency, frequency, monetary, engagement, voice, trend]
    windows_days: [30, 90, 365]
    event_types: [session, email_open]
    extra:
      - name: app_purchases_90d
        table: transactions
        agg: count
        where: "amount > 0 AND channel = 'app'"
        window_days: 90
        unit: purchases
        description: "{value:.0f} app purchases in the last 90 days"
      - name: app_share_90d
        kind: derived
        op: ratio
        inputs: [app_purchases_90d, purchases_90d]
    exclude: [purchase_days_total]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnml.config import FeaturesConfig, VoiceConfig
from churnml.data.schema import SURVEY_KINDS
from churnml.errors import ConfigError
from churnml.expressions import parse_expression
from churnml.features.definitions import AnyFeature, DerivedFeature, Feature
from churnml.features.groups import GROUPS

GroupName = Literal[
    "recency", "frequency", "monetary", "engagement", "voice", "referral", "subscription",
    "trend",
]
SurveyKind = Literal["nps", "csat", "ces"]


class FeatureSpec(BaseModel):
    """Configuration of the built-in feature groups plus custom features.

    Windows are in days. Event types default to those present in the events table (sorted);
    pin them (``event_types``) to fix the feature set, e.g. for a deployed model.
    """

    model_config = ConfigDict(extra="forbid")

    groups: list[GroupName] = Field(default_factory=lambda: list(GROUPS))
    windows_days: list[int] = Field(
        default_factory=lambda: [30, 90, 180, 365],
        description="frequency and monetary windows, days (plus all time)")
    summary_window_days: int = Field(
        365, gt=0, description="window of order value, returns and active-day features, days")
    trend_window_days: int = Field(
        90, gt=0, description="purchases/spend: last window vs the window before, days")
    engagement_windows_days: list[int] = Field(
        default_factory=lambda: [30, 90], description="per-event-type count windows, days")
    engagement_trend_window_days: int = Field(
        30, gt=0, description="events: last window vs the window before, days")
    event_types: list[str] | None = Field(
        None, description="event types with count features (None: those in the data)")
    support_event_type: str = Field(
        "support_ticket", description="events.event_type of a support ticket")
    support_windows_days: list[int] = Field(default_factory=lambda: [30, 90])
    survey_kinds: list[SurveyKind] = Field(default_factory=lambda: list(SURVEY_KINDS))
    satisfaction_windows_days: list[int] = Field(
        default_factory=lambda: [60, 180],
        description="windows of the mean satisfaction index over survey answers, days")
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    purchase_where: str = Field(
        "amount > 0", description="SQL condition on transactions that makes a purchase")
    extra: list[AnyFeature] = Field(default_factory=list, description="custom features")
    exclude: list[str] = Field(default_factory=list, description="feature names to drop")

    @field_validator("purchase_where")
    @classmethod
    def _allowed(cls, value: str) -> str:
        try:
            parse_expression(value, where="features.spec.purchase_where")
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @classmethod
    def from_yaml(cls, path: str | Path) -> FeatureSpec:
        """Read a spec from a YAML file; errors name the file and the offending key."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"feature spec not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        return _validated(raw, str(path))

    def resolve(
        self,
        schema: Mapping[str, list[str]],
        event_types: Callable[[], list[str]] | list[str] = (),
    ) -> list[Feature | DerivedFeature]:
        """The concrete features for tables with these columns.

        Built-in features whose table or column is absent are left out (so are built-in
        derived features whose inputs are absent or excluded); custom features are kept and
        checked when compiled. ``event_types`` (or a function returning them) is used when
        the spec does not pin them.
        """
        schema = {t: list(c) for t, c in schema.items()}
        types = self.event_types
        if types is None:
            types = sorted(event_types() if callable(event_types) else event_types)
        built: dict[str, Feature | DerivedFeature] = {}
        for group in self.groups:
            for f in GROUPS[group](self, schema, list(types)):
                built.setdefault(f.name, f)
        for f in self.extra:
            if f.name in built:
                raise ConfigError(f"custom feature {f.name!r} clashes with a built-in feature")
        unknown = set(self.exclude) - set(built) - {f.name for f in self.extra}
        if unknown:
            raise ConfigError(f"exclude names unknown features: {sorted(unknown)}")
        built = {n: f for n, f in built.items() if n not in self.exclude}
        built = _drop_unresolvable(built)
        custom = [f for f in self.extra if f.name not in self.exclude]
        return [*built.values(), *custom]


def _validated(raw: Any, where: str) -> FeatureSpec:
    """``raw`` as a spec; a :class:`ConfigError` naming ``where`` and each bad key."""
    try:
        return FeatureSpec.model_validate(raw)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{where}: " + "; ".join(parts)) from exc


def _drop_unresolvable(
    built: dict[str, Feature | DerivedFeature],
) -> dict[str, Feature | DerivedFeature]:
    """Drop derived features whose inputs are missing (repeatedly, for chains)."""
    while True:
        missing = [
            n for n, f in built.items()
            if isinstance(f, DerivedFeature) and not set(f.dependencies()) <= set(built)
        ]
        if not missing:
            return built
        built = {n: f for n, f in built.items() if n not in missing}


def default_features(
    schema: Mapping[str, list[str]], event_types: list[str] = ()
) -> list[Feature | DerivedFeature]:
    """The default spec resolved for tables with these columns."""
    return FeatureSpec().resolve(schema, list(event_types))


def spec_from_config(
    features: FeaturesConfig,
    voice: VoiceConfig | None = None,
    base_dir: str | Path | None = None,
) -> FeatureSpec:
    """The :class:`FeatureSpec` of a config's ``features`` section.

    ``features.spec`` is a YAML file (a relative path is read from ``base_dir``, e.g. the
    config file's folder) or the spec's keys inline; ``None`` gives the default spec. The
    survey thresholds default to ``voice`` (the config's) unless the spec sets its own.
    """
    raw = features.spec
    if isinstance(raw, str):
        path = Path(raw)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        spec = FeatureSpec.from_yaml(path)
    else:
        spec = _validated(raw or {}, "features.spec")
    if voice is not None and "voice" not in spec.model_fields_set:
        spec = spec.model_copy(update={"voice": voice})
    return spec
