"""A fitted uplift model as marketing uses it: the learner, its bootstrap refits, a code-free
file, and the one function that turns scores into a contact list.

* **Confidence of an effect.** With ``uplift.flag_method: groups`` (the default) the flag is
  decided for groups of customers of similar predicted effect on *retention* (does the
  contact drive them away?), whose effect is measured on cross-fitted predictions
  (:mod:`churnml.uplift.flags`); for a revenue model a retention model of the same learner
  (``flag_model``) places the customers. With ``bootstrap``: besides the
  learner fitted on every contact, ``flag_boot`` copies are fitted on bootstrap resamples of
  the contacts (drawn within each arm). For a customer ``x`` with effect ``tau(x)`` from the
  full model and ``sd(x)`` the standard deviation of the bootstrap effects,
  ``P(tau(x) < 0) ~ Phi(-tau(x) / sd(x))`` (normal approximation of the bootstrap
  distribution; Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13). A
  customer is flagged "negative uplift — do not contact" when that probability reaches
  ``uplift.flag_level``.
* **File.** ``uplift/model.json``: the learner and its refits as
  :mod:`churnml.models._state` documents (LightGBM text and JSON numbers; nothing is unpickled
  or imported by name), plus what the model was fitted on.
* **Scoring.** :func:`add_uplift` takes a chunk of scores that carries the model's features
  and returns it with ``uplift``, ``p_negative_uplift``, ``targeting_value``,
  ``negative_uplift`` and ``targeting_basis``; the DuckDB and Spark scoring paths and
  ``campaign target`` all call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from churnml.io import atomic_write
from churnml.models._state import (
    ModelStateError,
    dump_estimator,
    load_estimator,
    require,
    stateful,
)
from churnml.uplift.flags import GroupFlag
from churnml.uplift.targeting import targeting_values

FORMAT = "churnml.uplift-model"
VERSION = 1


@dataclass
class UpliftFit:
    """A fitted uplift model, its bootstrap refits and what it was fitted on."""

    model: Any
    learner: str
    outcome: str
    treatment: str
    features: list[str]
    campaigns: list[str]
    n_contacts: int
    validation: pd.DataFrame
    boot_models: list[Any] = field(default_factory=list)
    flag: GroupFlag | None = None
    flag_model: Any = None  # its effect places a customer in a flag group (None: ``model``)
    run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def effects(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(tau, p_negative)`` of the treatment arm for the rows of ``X`` (model features):
        the full model's effect and the probability of a negative effect of the group the
        customer falls in by ``flag_model``'s effect (:class:`~churnml.uplift.flags.GroupFlag`),
        else ``Phi(-tau / sd)`` over the bootstrap
        refits (``tau < 0`` as 0/1 without either)."""
        Xf = X[self.features]
        tau = self.model.predict(Xf)[self.treatment].to_numpy(dtype=float)
        if self.flag is not None:
            ranker = self.model if self.flag_model is None else self.flag_model
            placed = ranker.predict(Xf)[self.treatment].to_numpy(dtype=float)
            return tau, self.flag.probability(placed)
        if not self.boot_models:
            return tau, (tau < 0).astype(float)
        boots = np.column_stack([m.predict(Xf)[self.treatment].to_numpy(dtype=float)
                                 for m in self.boot_models])
        return tau, negative_probability(tau, boots.std(axis=1, ddof=1))


def negative_probability(tau: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``P(effect < 0) = Phi(-tau / sd)``; 1 or 0 by the sign of ``tau`` where ``sd = 0``."""
    tau, sd = np.asarray(tau, dtype=float), np.asarray(sd, dtype=float)
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, norm.cdf(-tau / safe), (tau < 0).astype(float))


def fit_bootstrap(make: Callable[[], Any], X: pd.DataFrame, arm: np.ndarray, y: np.ndarray,
                  n_boot: int, seed: int, **fit_args: Any) -> list[Any]:
    """``n_boot`` learners from ``make()`` fitted on resamples of the rows drawn with
    replacement within each arm (arm sizes kept), seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(arm == a) for a in np.unique(arm)]
    models = []
    for _ in range(n_boot):
        idx = np.sort(np.concatenate([rng.choice(g, g.size) for g in groups]))
        args = {k: np.asarray(v)[idx] for k, v in fit_args.items() if v is not None}
        models.append(make().fit(X.iloc[idx].reset_index(drop=True), arm[idx], y[idx], **args))
    return models


def add_uplift(chunk: pd.DataFrame, fit: UpliftFit, *, cost: float = 0.0,
               flag_level: float = 0.9) -> pd.DataFrame:
    """A chunk of scores (with the uplift model's features, and ``value_if_retained`` for a
    ``retained`` model) plus ``uplift``, ``p_negative_uplift``, ``targeting_value``,
    ``negative_uplift`` and ``targeting_basis`` (:func:`churnml.uplift.targeting.
    targeting_values`). Row-wise: any split of the scores into chunks (DuckDB chunks, Spark
    partitions) gives the same values."""
    missing = [c for c in fit.features if c not in chunk]
    if missing:
        from churnml.errors import ChurnmlError

        raise ChurnmlError(f"the uplift model needs feature(s) {missing[:5]} that the scores "
                           "lack; retrain with `churnml campaign train`")
    tau, p_neg = fit.effects(chunk)
    return targeting_values(chunk, tau, cost=cost, outcome=fit.outcome, p_negative=p_neg,
                            flag_level=flag_level)


UPLIFT_COLUMNS = ("uplift", "p_negative_uplift", "targeting_value", "negative_uplift")


@stateful
@dataclass
class UpliftColumns:
    """:func:`add_uplift` bound to a model and the config's cost and flag level: call it on a
    chunk of scores with ``features``; returns the chunk's :data:`UPLIFT_COLUMNS` (same rows,
    same index). Pickles as its code-free state (:meth:`to_state`: JSON values and LightGBM
    text, never a pickled estimator), so a Spark job ships it to its executors safely."""

    fit: UpliftFit
    cost: float = 0.0
    flag_level: float = 0.9

    @property
    def features(self) -> list[str]:
        return list(self.fit.features)

    def __call__(self, chunk: pd.DataFrame) -> pd.DataFrame:
        out = add_uplift(chunk, self.fit, cost=self.cost, flag_level=self.flag_level)
        return out[list(UPLIFT_COLUMNS)]

    def to_state(self) -> dict[str, Any]:
        """Code-free state: the model as its :func:`uplift_document`, cost and flag level."""
        return {"uplift": uplift_document(self.fit), "cost": float(self.cost),
                "flag_level": float(self.flag_level)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UpliftColumns:
        return cls(uplift_from_document(require(state, "uplift", dict)),
                   float(require(state, "cost", (int, float))),
                   float(require(state, "flag_level", (int, float))))

    # Pickled (a Spark broadcast) as its code-free state, rebuilt where it is unpickled:
    # the estimators themselves are never pickled.
    def __getstate__(self) -> dict[str, Any]:
        return self.to_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        rebuilt = self.from_state(state)
        self.fit, self.cost, self.flag_level = rebuilt.fit, rebuilt.cost, rebuilt.flag_level


def uplift_document(fit: UpliftFit) -> dict[str, Any]:
    """``fit`` as the JSON-able document :func:`save_uplift` writes (learner and refits as
    :mod:`churnml.models._state` documents)."""
    return {
        "format": FORMAT, "version": VERSION, "learner": fit.learner, "outcome": fit.outcome,
        "treatment": fit.treatment, "features": list(fit.features),
        "campaigns": list(fit.campaigns), "n_contacts": int(fit.n_contacts),
        "validation": json.loads(fit.validation.to_json(orient="records")),
        "model": dump_estimator(fit.model),
        "boot_models": [dump_estimator(m) for m in fit.boot_models],
        "flag": None if fit.flag is None else fit.flag.to_state(),
        "flag_model": None if fit.flag_model is None else dump_estimator(fit.flag_model),
    }


def uplift_from_document(doc: Any) -> UpliftFit:
    """The :class:`UpliftFit` of a :func:`uplift_document`; only churnml's own estimator
    classes are rebuilt (their LightGBM text is parsed). Raises :class:`ModelStateError`."""
    import churnml.uplift  # noqa: F401  (registers the uplift learners' state classes)

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelStateError(f"not a churnml uplift model (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ModelStateError(f"uplift model version {doc.get('version')!r}; this "
                              f"churnml reads version {VERSION}")
    return UpliftFit(
        model=load_estimator(require(doc, "model", dict)),
        learner=require(doc, "learner", str), outcome=require(doc, "outcome", str),
        treatment=require(doc, "treatment", str),
        features=[str(c) for c in require(doc, "features", list)],
        campaigns=[str(c) for c in require(doc, "campaigns", list)],
        n_contacts=require(doc, "n_contacts", int),
        validation=pd.DataFrame.from_records(require(doc, "validation", list)),
        boot_models=[load_estimator(m) for m in require(doc, "boot_models", list)],
        flag=_flag(doc.get("flag")),
        flag_model=(None if doc.get("flag_model") is None
                    else load_estimator(require(doc, "flag_model", dict))),
    )


def _flag(state: Any) -> GroupFlag | None:
    """The document's group flag (absent in files written before it existed)."""
    if state is None:
        return None
    if not isinstance(state, dict):
        raise ModelStateError(f"uplift model 'flag' must be an object, got {type(state).__name__}")
    return GroupFlag.from_state(state)


def save_uplift(fit: UpliftFit, path: str | Path) -> Path:
    """Write ``fit`` as a JSON document (:func:`uplift_document`, atomically)."""
    text = json.dumps(uplift_document(fit), separators=(",", ":"))
    return atomic_write(Path(path), lambda p: Path(p).write_text(text, encoding="utf-8"))


def read_uplift(path: str | Path) -> UpliftFit:
    """The :class:`UpliftFit` in a file written by :func:`save_uplift`; errors name the file.
    Only churnml's own estimator classes are rebuilt (their LightGBM text is parsed)."""
    path = Path(path)
    try:
        return uplift_from_document(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelStateError(f"{path}: not a JSON uplift model: {exc}") from exc
    except ModelStateError as exc:
        raise ModelStateError(f"{path}: {exc}") from exc
