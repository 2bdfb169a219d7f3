"""Point-in-time features: declarative definitions compiled into one SQL query.

>>> from churnml.features import build_features
>>> X = build_features(data, cutoffs=["2024-06-01", "2024-07-01"])   # doctest: +SKIP

See :mod:`churnml.features.build` for the population and time semantics,
:mod:`churnml.features.groups` for the built-in features and
:class:`~churnml.features.spec.FeatureSpec` for configuration.
"""

from churnml.features.build import (
    as_cutoffs,
    build_features,
    feature_sql,
    resolve_features,
)
from churnml.features.definitions import AnyFeature, DerivedFeature, Feature, describe
from churnml.features.spec import FeatureSpec, default_features, spec_from_config

__all__ = [
    "AnyFeature", "DerivedFeature", "Feature", "FeatureSpec", "as_cutoffs", "build_features",
    "default_features", "describe", "feature_sql", "resolve_features", "spec_from_config",
]

