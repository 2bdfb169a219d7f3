"""Load the churn and value models to score with, and check a feature table against them.

Models come from the MLflow registry (``models:/churnml-churn@champion``; the alias is
resolved to a version once, and that version is loaded) or from a folder written by
``churnml export`` (:func:`churnml.training.export.load_exported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.errors import DataValidationError
from churnml.models._preprocess import CATEGORICAL, FEATURE_TABLE, NUMERIC, is_categorical

MODELS_PREFIX = "models:/"
ALIAS_SEP = "@"
KEY_COLUMNS = ("customer_id", "cutoff")


@dataclass(frozen=True)
class ScoringModels:
    """The fitted churn classifier and value model, with where they came from.

    ``churn_uri`` / ``ltv_uri`` pin the exact registry versions (``models:/name/version``),
    or are None for exported models (which cannot be used by :mod:`churnml.scoring.spark`).
    """

    churn: Any
    ltv: Any
    churn_label: str
    ltv_label: str
    churn_uri: str | None = None
    ltv_uri: str | None = None
    tracking_uri: str | None = None

    @property
    def version(self) -> str:
        """``"churnml-churn v3, churnml-ltv v2"``: the ``model_version`` of the scores."""
        return f"{self.churn_label}, {self.ltv_label}"

    def feature_dtypes(self) -> dict[str, str]:
        """Union of both models' features -> ``"float64"`` or ``"category"``."""
        out = dict(self.churn.feature_dtypes_)
        for name, kind in self.ltv.feature_dtypes_.items():
            if out.setdefault(name, kind) != kind:
                raise DataValidationError(
                    FEATURE_TABLE, name,
                    f"the churn model ({self.churn_label}) takes it as {out[name]} but the "
                    f"value model ({self.ltv_label}) as {kind}; retrain them on one feature table",
                )
        return out


def _resolve(client: Any, uri: str) -> tuple[str, str]:
    """``(pinned uri, "name vN")`` of ``models:/name@alias`` or ``models:/name/N``."""
    if not uri.startswith(MODELS_PREFIX):
        return uri, uri
    ref = uri.removeprefix(MODELS_PREFIX)
    if ALIAS_SEP in ref:
        name, alias = ref.split(ALIAS_SEP, 1)
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name, version = ref.rsplit("/", 1)
    return f"{MODELS_PREFIX}{name}/{version}", f"{name} v{version}"


def load_registered(
    churn_uri: str, ltv_uri: str, tracking_uri: str
) -> ScoringModels:
    """Both models from an MLflow store; aliases are resolved to versions first, so the two
    models and the recorded ``model_version`` agree even if an alias moves meanwhile."""
    from churnml.training.tracking import load_model, tracking

    with tracking(tracking_uri) as client:
        (churn_pinned, churn_label), (ltv_pinned, ltv_label) = (
            _resolve(client, churn_uri), _resolve(client, ltv_uri)
        )
    return ScoringModels(
        churn=load_model(churn_pinned, tracking_uri),
        ltv=load_model(ltv_pinned, tracking_uri),
        churn_label=churn_label,
        ltv_label=ltv_label,
        churn_uri=churn_pinned,
        ltv_uri=ltv_pinned,
        tracking_uri=tracking_uri,
    )


def load_exported_models(models_dir: str | Path, churn_name: str, ltv_name: str) -> ScoringModels:
    """Both models from a ``churnml export`` folder (hashes checked against the cards)."""
    from churnml.training.export import load_exported

    churn, ltv = load_exported(models_dir, churn_name), load_exported(models_dir, ltv_name)
    return ScoringModels(
        churn=churn.estimator,
        ltv=ltv.estimator,
        churn_label=f"{churn_name} v{churn.card.get('version')}",
        ltv_label=f"{ltv_name} v{ltv.card.get('version')}",
    )


def _kind(s: pd.Series) -> str:
    if is_categorical(s):
        return CATEGORICAL
    return NUMERIC if s.dtype == NUMERIC else str(s.dtype)


def check_feature_table(X: pd.DataFrame, feature_dtypes: Mapping[str, str], model: str) -> None:
    """Refuse a feature table whose columns or dtypes differ from the model's.

    Every model feature must be present; numeric features must be float64 and categorical
    ones string/category columns. The error names the missing columns (and, as a hint, the
    unexpected ones) or each column with its dtype and the dtype the model expects.
    """
    missing = [c for c in feature_dtypes if c not in X.columns]
    if missing:
        extra = [c for c in X.columns if c not in feature_dtypes and c not in KEY_COLUMNS]
        hint = f"; columns present that the model does not know: {extra}" if extra else ""
        raise DataValidationError(
            FEATURE_TABLE, missing[0],
            f"missing feature column(s) {missing} needed by {model}{hint}",
        )
    wrong = {
        c: (str(X[c].dtype), kind) for c, kind in feature_dtypes.items()
        if _kind(X[c]) != kind
    }
    if wrong:
        detail = ", ".join(f"{c} is {got} (model: {want})" for c, (got, want) in wrong.items())
        raise DataValidationError(
            FEATURE_TABLE, next(iter(wrong)), f"dtypes differ from {model}: {detail}"
        )
