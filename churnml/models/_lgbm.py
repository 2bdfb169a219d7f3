"""Shared LightGBM settings: small deterministic trees, an internal hold-out, early stopping.

Defaults are deliberately small (<= 300 trees, <= 31 leaves, depth <= 6): per-row reason
codes use exact TreeSHAP (``pred_contrib=True``), whose cost grows with
trees x leaves x depth^2. Determinism follows the LightGBM docs: ``deterministic=True``,
``force_row_wise=True``, a fixed ``seed`` and a fixed thread count (``n_jobs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from churnml.errors import TrainingDataError

N_ESTIMATORS = 300
LEARNING_RATE = 0.05
NUM_LEAVES = 31
MAX_DEPTH = 6
MIN_CHILD_SAMPLES = 20
COLSAMPLE_BYTREE = 0.9
REG_LAMBDA = 1.0
VALIDATION_FRACTION = 0.2  # share of rows held out for early stopping (and calibration)
EARLY_STOPPING_ROUNDS = 30
SEED = 42
# Fixed thread count (results may depend on it). One thread: on a small or shared machine
# LightGBM's OpenMP threads spin-wait on each other (a 2-thread fit measured ~70x slower than
# 1 thread on 2 busy cores); raise it per model for large data on idle cores.
N_JOBS = 1

BOOSTER_PARAMS = (
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_child_samples",
    "colsample_bytree",
    "reg_lambda",
)


def booster_params(est: Any, **extra: Any) -> dict[str, Any]:
    """LightGBM constructor arguments from an estimator's hyper-parameters (plus ``extra``)."""
    params = {name: getattr(est, name) for name in BOOSTER_PARAMS}
    params.update(
        random_state=est.seed,
        n_jobs=est.n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbosity=-1,
    )
    params.update(extra)
    return params


def holdout_split(
    n_rows: int,
    fraction: float,
    seed: int,
    stratify: np.ndarray | None = None,
    groups: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(fit, holdout)``; ``fraction`` of rows (or of groups) held out.

    With ``groups`` (e.g. customer ids of a multi-cutoff panel) no group is on both sides,
    so the hold-out measures generalisation to unseen customers; otherwise the split is
    stratified on ``stratify``.
    """
    positions = np.arange(n_rows)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape[0] != n_rows:
            raise ValueError(f"groups has {groups.shape[0]} entries for {n_rows} rows")
    units = len(np.unique(groups)) if groups is not None else n_rows
    if units < 2:
        what = "customer" if groups is not None else "row"
        raise TrainingDataError(
            f"the training panel has {n_rows} row(s) from {units} {what}(s): a model needs "
            f"at least 2 {what}s, one to fit on and one held out ({fraction:.0%}) for early "
            "stopping; train on data with more customers")
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        fit, hold = next(splitter.split(positions, groups=groups))
        return fit, hold
    fit, hold = train_test_split(
        positions, test_size=fraction, random_state=seed, stratify=stratify
    )
    return np.sort(fit), np.sort(hold)


class BoosterModel:
    """A fitted LightGBM booster with the prediction API of LightGBM's scikit-learn wrapper.

    :func:`fit_booster` returns one; :meth:`to_state` / :meth:`from_state` round-trip it
    through LightGBM's text model format (no pickle). Only the trees up to ``n_iter_`` (the
    best iteration under early stopping) are used and saved.

    Attributes
    ----------
    booster_ : lightgbm.Booster
    objective : str
        LightGBM objective (``"binary"``: :meth:`predict_proba` is available).
    n_iter_ : int
        Trees used for prediction.
    """

    def __init__(self, booster: lgb.Booster, objective: str, n_iter: int) -> None:
        self.booster_ = booster
        self.objective = objective
        self.n_iter_ = int(n_iter)

    @property
    def best_iteration_(self) -> int:
        return self.n_iter_

    @classmethod
    def from_fitted(cls, model: lgb.LGBMModel) -> BoosterModel:
        """Wrap the booster of a fitted scikit-learn-style LightGBM model."""
        n_iter = int(model.best_iteration_ or model.n_iter_)
        return cls(model.booster_, str(model.objective_), n_iter)

    def predict(self, X: Any, raw_score: bool = False, pred_leaf: bool = False,
                pred_contrib: bool = False, num_iteration: int | None = None) -> np.ndarray:
        """Booster predictions on the first ``num_iteration`` (default ``n_iter_``) trees:
        probabilities (binary), values (regression), raw scores, leaves or contributions."""
        return self.booster_.predict(
            X, raw_score=raw_score, pred_leaf=pred_leaf, pred_contrib=pred_contrib,
            num_iteration=self.n_iter_ if num_iteration is None else num_iteration,
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[[1 - p, p], ...]`` of a binary booster."""
        if self.objective != "binary":
            raise AttributeError(f"predict_proba needs a binary booster, not {self.objective}")
        p = self.predict(X)
        return np.column_stack([1.0 - p, p])

    def to_state(self) -> dict[str, Any]:
        """``{"objective", "n_iter", "model"}``; ``model`` is LightGBM's text format."""
        text = self.booster_.model_to_string(num_iteration=self.n_iter_)
        return {"objective": self.objective, "n_iter": self.n_iter_, "model": text}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BoosterModel:
        """The booster of a state; its text is checked by :func:`checked_model_text` first
        (an edited file is an error, never a crash of LightGBM's parser)."""
        from churnml.models._state import ModelStateError, require

        objective = require(state, "objective", str)
        n_iter = require(state, "n_iter", int)
        text, info = checked_model_text(require(state, "model", str))
        if info.objective != objective:
            raise ModelStateError(f"LightGBM model: objective {info.objective!r} in the text, "
                                  f"{objective!r} in the state")
        if not 0 < n_iter <= info.n_iterations:
            raise ModelStateError(f"LightGBM model: n_iter {n_iter} but the text holds "
                                  f"{info.n_iterations} iteration(s)")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelStateError(f"unreadable LightGBM model text: {exc}") from exc
        return cls(booster, objective, n_iter)

    def check_features(self, names: Any, model: str) -> None:
        """Refuse a booster fitted on other features than ``names`` (the columns ``model``
        feeds it): the error names both lists instead of a reshape error at prediction."""
        from churnml.models._state import ModelStateError

        want = [re.sub(r"\s", "_", str(n)) for n in names]
        got = list(self.booster_.feature_name())
        if got != want:
            raise ModelStateError(
                f"{model}: its LightGBM booster takes {len(got)} feature(s) {_listed(got)} but "
                f"the model feeds it {len(want)}: {_listed(want)}; the booster belongs to "
                "another model")


@dataclass(frozen=True)
class ModelTextInfo:
    """What :func:`checked_model_text` read from a LightGBM text model's header."""

    objective: str
    feature_names: list[str]
    n_trees: int
    n_iterations: int


# Per-tree arrays of LightGBM's text format: one value per split (num_leaves - 1) or leaf.
SPLIT_ARRAYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child",
                "right_child", "internal_value", "internal_weight", "internal_count")
LEAF_ARRAYS = ("leaf_value", "leaf_weight", "leaf_count")
INT_ARRAYS = ("split_feature", "decision_type", "left_child", "right_child", "cat_boundaries",
              "cat_threshold")
# read here as numbers (the tree's structure); LightGBM's sequential parser reads the others
# and raises a catchable error on a value that is not a number
STRUCTURE_ARRAYS = (*INT_ARRAYS, "threshold")
HEADER_KEYS = ("version", "num_class", "num_tree_per_iteration", "max_feature_idx",
               "feature_names", "objective")
SHOWN_NAMES = 8


def _listed(names: list[str]) -> str:
    return str(names[:SHOWN_NAMES])[:-1] + (", ...]" if len(names) > SHOWN_NAMES else "]")


def checked_model_text(text: str) -> tuple[str, ModelTextInfo]:
    """Validate a LightGBM text model before LightGBM parses it; returns the text to hand to
    ``lgb.Booster(model_str=...)`` and what its header says.

    LightGBM's parser trusts its input: an edited tree aborts the process (its parallel tree
    parser terminates on an error) and out-of-range split features or children are read as
    they are. Checked here: the header (``HEADER_KEYS``, one name per feature), the tree
    blocks (count a multiple of the trees per iteration, ``tree_sizes`` agreeing), and per
    tree the array lengths, split features within ``max_feature_idx``, categorical bounds,
    and children forming one tree from the root (each node reached exactly once).
    The returned text lacks the ``tree_sizes`` line, so LightGBM parses the trees one by one
    and reports any remaining problem as an exception. Errors raise ``ModelStateError``."""
    from churnml.models._state import ModelStateError

    def bad(message: str) -> ModelStateError:
        return ModelStateError(f"LightGBM model text: {message}")

    lines = text.split("\n")
    if lines[0].strip() != "tree":
        raise bad("does not start with the line 'tree'")
    header: dict[str, str] = {}
    i = 1
    while i < len(lines) and not lines[i].startswith("Tree=") and lines[i] != "end of trees":
        key, sep, value = lines[i].partition("=")
        if sep:
            header[key] = value
        i += 1
    first_tree = i
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise bad(f"header lacks {missing}")
    n_features = _int(header["max_feature_idx"], "max_feature_idx", bad) + 1
    names = header["feature_names"].split(" ")
    if n_features < 1 or len(names) != n_features:
        raise bad(f"{len(names)} feature name(s) for max_feature_idx {n_features - 1}")
    per_iteration = _int(header["num_tree_per_iteration"], "num_tree_per_iteration", bad)
    if per_iteration < 1 or _int(header["num_class"], "num_class", bad) < 1:
        raise bad("num_class and num_tree_per_iteration must be positive")
    trees: list[dict[str, str]] = []
    while i < len(lines) and lines[i].startswith("Tree="):
        if lines[i] != f"Tree={len(trees)}":
            raise bad(f"line {i + 1}: {lines[i][:40]!r} where 'Tree={len(trees)}' belongs")
        block: dict[str, str] = {}
        i += 1
        while i < len(lines) and lines[i] != "":
            key, sep, value = lines[i].partition("=")
            if not sep or key in block:
                raise bad(f"tree {len(trees)}: line {i + 1} {lines[i][:40]!r} is not a new "
                          "key=value")
            block[key] = value
            i += 1
        trees.append(block)
        while i < len(lines) and lines[i] == "":
            i += 1
    if i >= len(lines) or lines[i] != "end of trees":
        raise bad(f"no 'end of trees' after {len(trees)} tree(s) (line {i + 1})")
    if not trees or len(trees) % per_iteration:
        raise bad(f"{len(trees)} tree(s) for {per_iteration} tree(s) per iteration")
    if "tree_sizes" in header and len(header["tree_sizes"].split(" ")) != len(trees):
        raise bad(f"tree_sizes lists {len(header['tree_sizes'].split(' '))} sizes for "
                  f"{len(trees)} trees")
    for t, block in enumerate(trees):
        _check_tree(block, n_features, lambda m, t=t: bad(f"tree {t}: {m}"))
    body = [ln for ln in lines[:first_tree] if not ln.startswith("tree_sizes=")]
    info = ModelTextInfo(header["objective"].split(" ")[0], names, len(trees),
                         len(trees) // per_iteration)
    return "\n".join(body + lines[first_tree:]), info


def _int(value: str, key: str, bad: Any) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad(f"{key}={value[:40]!r} is not an integer") from None


def _check_tree(block: dict[str, str], n_features: int, bad: Any) -> None:
    """One tree block of :func:`checked_model_text`."""
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in block:
            raise bad(f"lacks {key}")
    n_leaves, n_cat = _int(block["num_leaves"], "num_leaves", bad), _int(
        block["num_cat"], "num_cat", bad)
    if n_leaves < 1 or n_cat < 0:
        raise bad(f"num_leaves {n_leaves}, num_cat {n_cat}")
    if block.get("is_linear", "0") != "0":
        raise bad("linear trees are not supported")
    arrays: dict[str, np.ndarray] = {}
    wanted = {**dict.fromkeys(LEAF_ARRAYS, n_leaves),
              **dict.fromkeys(SPLIT_ARRAYS, n_leaves - 1 if n_leaves > 1 else None)}
    if n_cat:
        wanted.update(cat_boundaries=n_cat + 1, cat_threshold=None)
    for key, n in wanted.items():
        if key not in block:
            if key in ("leaf_value", "split_feature", "threshold", "decision_type",
                       "left_child", "right_child", "cat_boundaries", "cat_threshold") \
                    and n is not None:
                raise bad(f"lacks {key}")
            continue
        values = block[key].split(" ") if block[key] else []
        if n is not None and len(values) != n:
            raise bad(f"{key} has {len(values)} value(s), expected {n}")
        if key not in STRUCTURE_ARRAYS:
            continue
        try:
            arrays[key] = np.array(values, dtype=np.int64 if key in INT_ARRAYS else float)
        except (ValueError, OverflowError):
            raise bad(f"{key} holds a value that is not a number") from None
    if n_leaves == 1:
        return
    feature = arrays["split_feature"]
    if ((feature < 0) | (feature >= n_features)).any():
        raise bad(f"split_feature outside 0..{n_features - 1}")
    categorical = (arrays["decision_type"] & 1).astype(bool)
    if categorical.any():
        if not n_cat:
            raise bad("a categorical split without num_cat")
        bounds, cats = arrays["cat_boundaries"], arrays["cat_threshold"]
        if bounds[0] != 0 or (np.diff(bounds) < 0).any() or bounds[-1] != len(cats):
            raise bad("cat_boundaries do not index cat_threshold")
        index = arrays["threshold"][categorical]
        if ((index != np.round(index)) | (index < 0) | (index >= n_cat)).any():
            raise bad(f"a categorical threshold outside 0..{n_cat - 1}")
    left, right = arrays["left_child"].tolist(), arrays["right_child"].tolist()
    seen_nodes, seen_leaves, stack = {0}, set(), [0]
    while stack:
        node = stack.pop()
        for child in (left[node], right[node]):
            if child >= 0:
                if child >= n_leaves - 1 or child in seen_nodes:
                    raise bad(f"node {node} has child {child}: not a tree")
                seen_nodes.add(child)
                stack.append(child)
            else:
                if ~child >= n_leaves or ~child in seen_leaves:
                    raise bad(f"node {node} has leaf {~child}: not a tree")
                seen_leaves.add(~child)
    if len(seen_nodes) != n_leaves - 1 or len(seen_leaves) != n_leaves:
        raise bad("some nodes or leaves are not reached from the root")


def fit_booster(
    model: lgb.LGBMModel,
    X: Any,
    y: np.ndarray,
    fit_idx: np.ndarray | None,
    hold_idx: np.ndarray | None,
    early_stopping_rounds: int | None,
) -> BoosterModel:
    """Fit ``model`` on the ``fit_idx`` rows, early-stopping on the ``hold_idx`` rows; returns
    the fitted booster (:class:`BoosterModel`).

    Without a hold-out (``hold_idx is None``) the model is fitted on all rows for
    ``n_estimators`` rounds.
    """
    if hold_idx is None:
        return BoosterModel.from_fitted(model.fit(X, y))
    callbacks = (
        [lgb.early_stopping(early_stopping_rounds, verbose=False)]
        if early_stopping_rounds
        else None
    )
    return BoosterModel.from_fitted(model.fit(
        X.iloc[fit_idx],
        y[fit_idx],
        eval_X=(X.iloc[hold_idx],),
        eval_y=(y[hold_idx],),
        callbacks=callbacks,
    ))
