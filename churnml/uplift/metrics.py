"""Uplift evaluation: Qini and uplift curves, their normalised areas, uplift@k, intervals.

One normalisation throughout, the one of scikit-uplift 0.5.1 (Radcliffe 2007, "Using control
groups to target on predicted lift", Direct Marketing Analytics Journal 3:14-21). Rows are
sorted by predicted uplift, highest first (reversed stable sort, as scikit-uplift does);
curves are evaluated at the last row of each run of tied scores, plus the origin. With
``t`` the 0/1 treatment indicator and the first ``n`` rows of the ranking:

* Qini curve ``Q(n) = Y_T(n) - Y_C(n) * N_T(n) / N_C(n)`` — incremental outcome (responders,
  or revenue in currency) among the targeted, on the treated group's scale.
* Uplift curve ``U(n) = (Y_T(n) / N_T(n) - Y_C(n) / N_C(n)) * n`` — incremental outcome if
  all ``n`` were treated (a ratio with an empty group counts as 0).
* Qini coefficient ``(A(Q) - A(R)) / (A(Q*) - A(R))`` and uplift AUC
  ``(A(U) - A(R)) / (A(U*) - A(R))``: trapezoid area ``A`` above the random-targeting chord
  ``R`` (origin to the curve's end point), divided by the same for the perfect curve ``*``.
  1 = perfect ranking, 0 = random, negative = worse than random. Unitless.
* ``uplift_at_k``: mean outcome of treated minus control among the top ``int(k * n)`` rows
  of the whole ranking (scikit-uplift's ``strategy="overall"``), in outcome units.

Perfect curves: the perfect Qini ranking is the score ``y * (2t - 1)`` (treated by outcome
descending, controls by outcome ascending; scikit-uplift's ``negative_effect=True``). The
perfect uplift ranking for a 0/1 outcome is scikit-uplift's (treated responders, control
non-responders, then control responders before treated non-responders when there are more of
them, else after); for a non-binary outcome (revenue) it is the perfect Qini ranking.

These numbers equal ``sklift.metrics.qini_auc_score``, ``uplift_auc_score`` and
``uplift_at_k(k, strategy="overall")`` on binary outcomes (tested). scikit-uplift refuses
non-binary outcomes; the curves and uplift@k are linear in ``y``, so on revenue they equal the
sum of scikit-uplift's values over the indicators ``1[y >= j]`` (tested). causalml and H2O do
not divide by the perfect curve: their numbers are on another scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

K_DEFAULT = 0.3
METRICS = ("qini", "uplift_auc", "uplift_at_k")


def _check(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays ``(y, uplift, t)`` of equal length; ``t`` is 0/1 with both groups present."""
    y_arr = np.asarray(y, dtype=float).ravel()
    u_arr = np.asarray(uplift, dtype=float).ravel()
    t_raw = np.asarray(treatment).ravel()
    if not (y_arr.shape[0] == u_arr.shape[0] == t_raw.shape[0]):
        raise ValueError(
            f"y, uplift and treatment differ in length: {y_arr.shape[0]}, {u_arr.shape[0]}, "
            f"{t_raw.shape[0]}"
        )
    if t_raw.dtype == bool:
        t_arr = t_raw.astype(int)
    else:
        t_arr = pd.to_numeric(pd.Series(t_raw), errors="coerce").to_numpy(dtype=float)
        if not np.isin(t_arr, (0.0, 1.0)).all():
            raise ValueError(
                "treatment must be 0/1 (1 = treated); for arm names use "
                "treatment_indicator(arms, arm, control)"
            )
        t_arr = t_arr.astype(int)
    if t_arr.min(initial=1) != 0 or t_arr.max(initial=0) != 1:
        raise ValueError("treatment needs both treated (1) and control (0) rows")
    for name, arr in (("y", y_arr), ("uplift", u_arr)):
        if not np.isfinite(arr).all():
            n_bad = int((~np.isfinite(arr)).sum())
            raise ValueError(f"{name} has {n_bad} missing or infinite value(s)")
    return y_arr, u_arr, t_arr


def treatment_indicator(
    treatment: Any, arm: str, control: str = "control"
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask of the rows in ``arm`` or ``control`` and the 0/1 indicator on them.

    Returns ``(rows, t)``: ``rows`` selects the two groups from an array of arm names, ``t`` is
    1 for ``arm`` and 0 for ``control`` on those rows.
    """
    arms = np.asarray(treatment).astype(str)
    rows = np.isin(arms, [arm, control])
    return rows, (arms[rows] == arm).astype(int)


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


def _sorted_cumsums(
    y: np.ndarray, uplift: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (n, N_T, Y_T, N_C, Y_C) at the last row of each tied run of scores."""
    order = np.argsort(uplift, kind="mergesort")[::-1]
    y, uplift, t = y[order], uplift[order], t[order]
    ends = np.r_[np.flatnonzero(np.diff(uplift)), uplift.size - 1]
    n_t = np.cumsum(t, dtype=float)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    n = (ends + 1).astype(float)
    return n, n_t, y_t, n - n_t, y_c


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _from_origin(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0 or x[0] != 0 or v[0] != 0:
        return np.r_[0.0, x], np.r_[0.0, v]
    return x, v


def qini_curve(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve ``(n, Q(n))``: rows targeted and incremental outcome (module docstring)."""
    y, uplift, t = _check(y, uplift, treatment)
    n, n_t, y_t, n_c, y_c = _sorted_cumsums(y, uplift, t)
    return _from_origin(n, y_t - y_c * _ratio(n_t, n_c))


def uplift_curve(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve ``(n, U(n))``: rows targeted and ``(mean_T - mean_C) * n``."""
    y, uplift, t = _check(y, uplift, treatment)
    n, n_t, y_t, n_c, y_c = _sorted_cumsums(y, uplift, t)
    return _from_origin(n, (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n)


def perfect_qini_curve(y: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve of the perfect ranking ``y * (2t - 1)``."""
    y, _, t = _check(y, np.zeros(np.shape(y)[0]), treatment)
    return qini_curve(y, y * (2 * t - 1), t)


def perfect_uplift_curve(y: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve of the perfect ranking (scikit-uplift's for 0/1 outcomes, else Qini's)."""
    y, _, t = _check(y, np.zeros(np.shape(y)[0]), treatment)
    if not _is_binary(y):
        return uplift_curve(y, y * (2 * t - 1), t)
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    tie_break = y if control_responders > treated_non_responders else t
    return uplift_curve(y, 2.0 * (y == t) + tie_break, t)


def _area_above_chord(x: np.ndarray, v: np.ndarray, x_end: float, v_end: float) -> float:
    return float(np.trapezoid(v, x) - 0.5 * x_end * v_end)


def _normalised_area(
    curve: Callable[..., tuple[np.ndarray, np.ndarray]],
    perfect: Callable[..., tuple[np.ndarray, np.ndarray]],
    y: Any,
    uplift: Any,
    treatment: Any,
) -> float:
    x, v = curve(y, uplift, treatment)
    xp, vp = perfect(y, treatment)
    best = _area_above_chord(xp, vp, xp[-1], vp[-1])
    if best == 0:
        return float("nan")
    return _area_above_chord(x, v, xp[-1], vp[-1]) / best


def qini_auc_score(y: Any, uplift: Any, treatment: Any) -> float:
    """Qini coefficient: area between Qini curve and random chord over the perfect one's.

    Equals ``sklift.metrics.qini_auc_score(y, uplift, treatment)`` (``negative_effect=True``).
    """
    return _normalised_area(qini_curve, perfect_qini_curve, y, uplift, treatment)


def uplift_auc_score(y: Any, uplift: Any, treatment: Any) -> float:
    """Uplift AUC (AUUC): area between uplift curve and random chord over the perfect one's.

    Equals ``sklift.metrics.uplift_auc_score(y, uplift, treatment)`` on 0/1 outcomes.
    """
    return _normalised_area(uplift_curve, perfect_uplift_curve, y, uplift, treatment)


def uplift_at_k(y: Any, uplift: Any, treatment: Any, k: float = K_DEFAULT) -> float:
    """Treated minus control mean outcome among the top ``int(k * n)`` rows (``k`` in (0, 1)).

    Equals ``sklift.metrics.uplift_at_k(y, uplift, treatment, strategy="overall", k=k)``; NaN
    when the top rows hold no treated or no control row.
    """
    y, uplift, t = _check(y, uplift, treatment)
    if not 0.0 < k < 1.0:
        raise ValueError(f"k must be a share in (0, 1), got {k}")
    top = np.argsort(uplift, kind="mergesort")[::-1][: int(y.size * k)]
    y_top, t_top = y[top], t[top]
    if t_top.sum() == 0 or t_top.sum() == t_top.size:
        return float("nan")
    return float(y_top[t_top == 1].mean() - y_top[t_top == 0].mean())


def uplift_scores(y: Any, uplift: Any, treatment: Any, k: float = K_DEFAULT) -> dict[str, float]:
    """``{"qini", "uplift_auc", "uplift_at_k"}`` of one ranking."""
    return {
        "qini": qini_auc_score(y, uplift, treatment),
        "uplift_auc": uplift_auc_score(y, uplift, treatment),
        "uplift_at_k": uplift_at_k(y, uplift, treatment, k),
    }


def _bootstrap_rows(t: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_boot`` resamples, drawn within treated and control separately."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(t == g) for g in (0, 1)]
    return [np.concatenate([rng.choice(g, g.size) for g in groups]) for _ in range(n_boot)]


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    return (
        float(np.nanquantile(values, alpha, axis=0)),
        float(np.nanquantile(values, 1.0 - alpha, axis=0)),
    )


def uplift_intervals(
    y: Any,
    uplift: Any,
    treatment: Any,
    k: float = K_DEFAULT,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Point estimates and stratified-bootstrap percentile intervals of :func:`uplift_scores`.

    Rows are resampled with replacement within the treated and the control group (group sizes
    fixed, as in the experiment). Returns one row per metric with columns ``estimate, lower,
    upper, sd`` (sd = bootstrap standard deviation).
    """
    y, uplift, t = _check(y, uplift, treatment)
    point = uplift_scores(y, uplift, t, k)
    boots = np.array(
        [list(uplift_scores(y[i], uplift[i], t[i], k).values()) for i in
         _bootstrap_rows(t, n_boot, seed)]
    )
    rows = []
    for j, name in enumerate(METRICS):
        lo, hi = _interval(boots[:, j], level)
        rows.append(
            {"metric": name, "estimate": point[name], "lower": lo, "upper": hi,
             "sd": float(np.nanstd(boots[:, j], ddof=1))}
        )
    return pd.DataFrame(rows).set_index("metric")


CURVES = {"qini": qini_curve, "uplift": uplift_curve}


def curve_band(
    y: Any,
    uplift: Any,
    treatment: Any,
    kind: str = "qini",
    n_points: int = 101,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """A curve on a grid of targeted shares with a stratified-bootstrap band.

    ``kind`` is ``"qini"`` or ``"uplift"``. Columns: ``share`` (0..1 of rows targeted),
    ``value`` (curve, linearly interpolated), ``lower``, ``upper`` (percentile band), and
    ``random`` (the random-targeting chord of the observed curve). Curve values are divided by
    the number of rows so that they read as incremental outcome per customer of the base.
    """
    if kind not in CURVES:
        raise ValueError(f"kind must be one of {sorted(CURVES)}, got {kind!r}")
    curve = CURVES[kind]
    y, uplift, t = _check(y, uplift, treatment)
    grid = np.linspace(0.0, 1.0, n_points)

    def on_grid(yy: np.ndarray, uu: np.ndarray, tt: np.ndarray) -> np.ndarray:
        x, v = curve(yy, uu, tt)
        return np.interp(grid, x / x[-1], v / x[-1])

    value = on_grid(y, uplift, t)
    boots = np.array([on_grid(y[i], uplift[i], t[i]) for i in _bootstrap_rows(t, n_boot, seed)])
    alpha = (1.0 - level) / 2.0
    return pd.DataFrame(
        {
            "share": grid,
            "value": value,
            "lower": np.quantile(boots, alpha, axis=0),
            "upper": np.quantile(boots, 1.0 - alpha, axis=0),
            "random": grid * value[-1],
        }
    )

