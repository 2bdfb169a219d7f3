"""Load the churn and value models to score with, and check a feature table against them.

Models come from the MLflow registry or from a folder written by ``churnml export``
(:func:`churnml.training.export.load_exported`: code-free JSON; pickles only with
``trust_pickle``). Either way the two models are a *pair* from one training run: from the
registry, the churn version holding the alias and the LTV version of its run
(:func:`churnml.training.tracking.resolve_pair`); from a folder, two cards with one run id.
Stores are opened read-only (a missing store is an error, not a new empty store), and with
an ``expected`` lineage (:func:`churnml.training.lineage.lineage` of the scoring config)
models trained for another config, data source, churn definition or feature spec are
refused (:func:`churnml.training.lineage.check_lineage`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.errors import DataValidationError, ModelMismatchError, ModelSourceError
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
    training_window: Mapping[str, str] | None = None  # ``window.*`` params of the training run
    survival: Any = None  # time-to-churn model of the same run (:func:`with_survival`)
    survival_label: str | None = None
    # spread of spend logged with the survival model (churnml.survival.spend.SpendModel);
    # None for survival models logged before it was fitted (scoring falls back)
    survival_spend: Any = None

    @property
    def label_window_end(self) -> pd.Timestamp | None:
        """End of the latest training label window: last training cutoff + its label
        window (horizon, plus the re-subscribe grace for contractual churn); None if unknown."""
        window = self.training_window or {}
        days = window.get("label_window_days", window.get("horizon_days"))
        if window.get("end") is None or days is None:
            return None
        return pd.Timestamp(window["end"]) + pd.Timedelta(days=int(float(days)))

    def overlap_warning(self, cutoff: pd.Timestamp) -> str | None:
        """Why scores at ``cutoff`` would evaluate optimistically: the cutoff lies before the
        end of the latest training label window, so the models saw these outcomes."""
        end = self.label_window_end
        if end is None or pd.Timestamp(cutoff) >= end:
            return None
        return (f"cutoff {pd.Timestamp(cutoff)} is earlier than the end of the models' latest "
                f"training label window ({end}): they learned from outcomes after this cutoff, "
                "so an evaluation of these scores would be optimistic")

    @property
    def version(self) -> str:
        """``"churnml-churn v3, churnml-ltv v2"``: the ``model_version`` of the scores."""
        names = [self.churn_label, self.ltv_label]
        return ", ".join(names if self.survival_label is None else [*names, self.survival_label])

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


def _resolve(client: Any, uri: str, tracking_uri: str) -> tuple[str, str]:
    """``(pinned uri, "name vN")`` of ``models:/name@alias`` or ``models:/name/N``."""
    from churnml.training.tracking import version_by_alias

    if not uri.startswith(MODELS_PREFIX):
        return uri, uri
    ref = uri.removeprefix(MODELS_PREFIX)
    if ALIAS_SEP in ref:
        name, alias = ref.split(ALIAS_SEP, 1)
        version = version_by_alias(client, name, alias, tracking_uri).version
    else:
        name, version = ref.rsplit("/", 1)
    return f"{MODELS_PREFIX}{name}/{version}", f"{name} v{version}"


def load_registered(
    churn_uri: str, ltv_uri: str, tracking_uri: str
) -> ScoringModels:
    """Both models from an MLflow store, by explicit URIs (``models:/name@alias`` or
    ``models:/name/N``); aliases are resolved to versions first, so the two models and the
    recorded ``model_version`` agree even if an alias moves meanwhile. Scoring with a
    config uses :func:`load_registered_pair` instead."""
    from churnml.training.tracking import load_model, tracking

    with tracking(tracking_uri, read_only=True) as client:
        (churn_pinned, churn_label), (ltv_pinned, ltv_label) = (
            _resolve(client, churn_uri, tracking_uri), _resolve(client, ltv_uri, tracking_uri)
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


def load_registered_pair(
    churn_name: str, ltv_name: str, alias: str, tracking_uri: str,
    expected: Mapping[str, str] | None = None, allow_missing_lineage: bool = False,
) -> ScoringModels:
    """The pair behind ``alias`` (module docstring) from a store opened read-only; with
    ``expected`` (a lineage), models trained for another setup are refused, and models
    without lineage unless ``allow_missing_lineage``."""
    from churnml.training.champion import no_champion_hint
    from churnml.training.lineage import check_lineage
    from churnml.training.tracking import load_model, resolve_pair, tracking

    with tracking(tracking_uri, read_only=True) as client:
        try:
            pair = resolve_pair(churn_name, ltv_name, alias, tracking_uri, client)
        except ModelSourceError as exc:
            hint = no_champion_hint(client, churn_name, ltv_name, alias)
            if hint is None:
                raise
            raise ModelSourceError(f"{exc}\n{hint}") from None
        runs = {mv.name: client.get_run(mv.run_id).data for mv in (pair.churn, pair.ltv)}
        tags = {name: run.tags for name, run in runs.items()}
        window = {k.removeprefix("window."): v for k, v in runs[churn_name].params.items()
                  if k.startswith("window.")}
    if pair.note:
        warnings.warn(pair.note, stacklevel=2)
    labels = {mv.name: f"{mv.name} v{mv.version}" for mv in (pair.churn, pair.ltv)}
    if expected is not None:
        for name, run_tags in tags.items():
            check_lineage(run_tags, expected, f"{labels[name]} ({tracking_uri})",
                          allow_missing_lineage)
    churn_pinned = f"{MODELS_PREFIX}{churn_name}/{pair.churn.version}"
    ltv_pinned = f"{MODELS_PREFIX}{ltv_name}/{pair.ltv.version}"
    return ScoringModels(
        churn=load_model(churn_pinned, tracking_uri),
        ltv=load_model(ltv_pinned, tracking_uri),
        churn_label=labels[churn_name],
        ltv_label=labels[ltv_name],
        churn_uri=churn_pinned,
        ltv_uri=ltv_pinned,
        tracking_uri=tracking_uri,
        training_window=window,
    )


def load_exported_models(
    models_dir: str | Path, churn_name: str, ltv_name: str, trust_pickle: bool = False,
    expected: Mapping[str, str] | None = None, allow_missing_lineage: bool = False,
) -> ScoringModels:
    """Both models from a ``churnml export`` folder (hashes checked against the cards; the
    two cards must name one training run; pickles only with ``trust_pickle``; each file
    holds a model of its role with its card's features, :func:`check_exported_roles`);
    with ``expected`` (a lineage), models trained for another setup are refused, and
    models whose card records no lineage unless ``allow_missing_lineage``."""
    from churnml.training.export import load_exported
    from churnml.training.lineage import check_lineage

    churn = load_exported(models_dir, churn_name, trust_pickle)
    ltv = load_exported(models_dir, ltv_name, trust_pickle)
    check_exported_roles(models_dir, {churn_name: churn, ltv_name: ltv}, churn_name)
    labels = [f"{name} v{m.card.get('version')}" for name, m in
              ((churn_name, churn), (ltv_name, ltv))]
    runs = churn.card.get("run_id"), ltv.card.get("run_id")
    if runs[0] != runs[1]:
        raise ModelMismatchError(
            f"{models_dir}: {labels[0]} (run {runs[0]}) and {labels[1]} (run {runs[1]}) were "
            "not trained together; export both with one `churnml export`"
        )
    if expected is not None:
        for label, model in zip(labels, (churn, ltv), strict=True):
            check_lineage(model.card.get("tags", {}), expected, f"{label} ({models_dir})",
                          allow_missing_lineage)
    return ScoringModels(churn=churn.estimator, ltv=ltv.estimator,
                         churn_label=labels[0], ltv_label=labels[1],
                         training_window=churn.card.get("training_window"))


def with_survival(models: ScoringModels, name: str, alias: str, tracking_uri: str
                  ) -> tuple[ScoringModels, str | None]:
    """``models`` plus the survival model ``name`` holding ``alias``, when that version was
    logged in the churn model's training run (scores come from one run); else ``models``
    unchanged and the reason (no such model, alias or run), for a warning. The spread of
    spend logged in that run (:class:`churnml.survival.spend.SpendModel`) comes along; a
    version logged without it scores with the fallback spread, and the note says so."""
    from churnml.survival.hazard import DiscreteTimeHazard  # noqa: F401 (state allow-list)
    from churnml.survival.spend import FALLBACK_SPEND_CV, SpendModel
    from churnml.training.tracking import _version_by_alias, load_model, tracking

    if models.churn_uri is None:
        return models, "exported models carry no survival model: survival columns left out"
    with tracking(tracking_uri, read_only=True) as client:
        ref = models.churn_uri.removeprefix(MODELS_PREFIX)
        churn_name, churn_version = ref.rsplit("/", 1)
        churn_run = client.get_model_version(churn_name, churn_version).run_id
        mv = _version_by_alias(client, name, alias)
        params = {} if mv is None else client.get_run(mv.run_id).data.params
    if mv is None:
        return models, (f"no survival model {name}@{alias} in {tracking_uri}: survival "
                        "columns left out")
    if mv.run_id != churn_run:
        return models, (f"{name}@{alias} (v{mv.version}) was trained in another run than "
                        f"{models.churn_label}: survival columns left out")
    uri = f"{MODELS_PREFIX}{name}/{mv.version}"
    label = f"{name} v{mv.version}"
    spend = SpendModel.from_params(params, f"{label} (run {mv.run_id})")
    note = None if spend is not None else (
        f"{label} was logged without a fitted spread of spend: lifetime-value intervals use "
        f"a spend CV of {FALLBACK_SPEND_CV:g} per period and no fitted population "
        "(retrain to fit them)")
    return replace(models, survival=load_model(uri, tracking_uri), survival_label=label,
                   survival_spend=spend or SpendModel()), note


CHURN_METHODS = ("predict_proba",)  # what scoring calls on each model
LTV_METHODS = ("predict", "predict_if_retained")


def check_exported_roles(models_dir: str | Path, models: Mapping[str, Any],
                         churn_name: str) -> None:
    """Each exported file holds a model fit for its role (the churn file a classifier with
    ``predict_proba``, the value file a value model) whose features are those of its card:
    a file swapped for another model is an error naming it and both feature lists, not a
    shape error at prediction."""
    for name, model in models.items():
        est, card = model.estimator, model.card
        where = Path(models_dir) / str(card.get("file", name))
        methods = CHURN_METHODS if name == churn_name else LTV_METHODS
        role = "churn classifier" if name == churn_name else "value (LTV) model"
        lacking = [m for m in methods if not callable(getattr(est, m, None))]
        if lacking:
            raise ModelMismatchError(f"{where}: holds a {type(est).__name__}, not a {role} "
                                     f"(no {', '.join(lacking)}); re-run `churnml export`")
        got = [str(f) for f in getattr(est, "feature_names_in_", [])]
        want = [str(f) for f in card.get("features") or got]
        if got != want:
            raise ModelMismatchError(
                f"{where}: the model takes {len(got)} feature(s) {got[:8]} but its card "
                f"({name}.json) lists {len(want)}: {want[:8]}; re-run `churnml export`")


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
