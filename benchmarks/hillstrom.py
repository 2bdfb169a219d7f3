"""Uplift learners on the Hillstrom e-mail experiment (real randomised campaign).

    python benchmarks/hillstrom.py              # 5 splits, ~20 min on 2 shared cores
    python benchmarks/hillstrom.py --splits 2   # quicker look

Data: ``../shared/data/hillstrom/hillstrom.csv.gz`` (64,000 customers randomly sent a Womens
e-mail, a Mens e-mail or none; see its README). Comparisons: each e-mail arm vs ``No E-Mail``;
outcomes ``visit``, ``conversion`` (0/1) and ``spend`` (dollars). Features: recency, history,
mens, womens, newbie, zip_code, channel — never the outcomes. Protocol: ``--splits`` repeated
50/50 splits stratified on arm x (outcome > 0); metrics on the test half in scikit-uplift
0.5.1's normalisation (:mod:`churnml.uplift.metrics`): Qini coefficient, uplift AUC and
uplift@30 % (``strategy="overall"``), mean ± sd over the splits. For spend (not binary,
which scikit-uplift refuses) the same formulas with the revenue perfect curve.

"churnml best" picks one candidate per split by inner validation on the TRAINING half only
(mean Qini over ``INNER_SPLITS`` stratified 50/50 splits of the training half), then
reports that candidate's test-half scores; the test halves never inform a choice.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quality import print_table, write_json  # noqa: E402

from churnml.uplift import DRLearner, SLearner, TLearner, XLearner, uplift_scores  # noqa: E402

DATA_REL = Path("shared") / "data" / "hillstrom" / "hillstrom.csv.gz"
FEATURES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
OUTCOMES = ("visit", "conversion", "spend")
ARMS = ("Womens E-Mail", "Mens E-Mail")
CONTROL = "No E-Mail"
K = 0.3
INNER_SPLITS = 3
METRICS = ("qini", "uplift_auc", "uplift_at_k")

# The README's measured reference (Womens e-mail vs no e-mail), mean and sd over 5 splits.
REFERENCE = {
    ("visit", "S-learner"): {"qini": (0.062, 0.008), "uplift_at_k": (0.077, 0.008),
                             "uplift_auc": (0.029, 0.004)},
    ("visit", "T-learner"): {"qini": (0.043, 0.011), "uplift_at_k": (0.068, 0.004),
                             "uplift_auc": (0.020, 0.005)},
    ("visit", "random"): {"qini": (-0.011, 0.012), "uplift_at_k": (0.040, 0.005),
                          "uplift_auc": (-0.005, 0.006)},
    ("conversion", "S-learner"): {"qini": (0.071, 0.050)},
    ("conversion", "T-learner"): {"qini": (0.030, 0.049)},
}
TARGET = ("Womens E-Mail", "visit")

# LightGBM settings. REF = the README's reference (200 trees, lr 0.05, 15 leaves, 100 rows
# per leaf, no depth limit); REG = shallower trees with more rows per leaf for the noisy
# first stage of X/DR; EFFECT = small trees for their pseudo-outcome regressions.
REF: dict[str, Any] = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15,
                       "min_child_samples": 100, "max_depth": -1}
REG: dict[str, Any] = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 7,
                       "min_child_samples": 200, "max_depth": -1}
EFFECT: dict[str, Any] = {"n_estimators": 100, "num_leaves": 4, "min_child_samples": 800}

CANDIDATES: dict[str, Callable[[], Any]] = {
    "S-learner": lambda: SLearner(control=CONTROL, **REF),
    "S-learner (regularised)": lambda: SLearner(control=CONTROL, **REG),
    "T-learner": lambda: TLearner(control=CONTROL, **REF),
    "X-learner": lambda: XLearner(control=CONTROL, effect_params=EFFECT, **REG),
    "DR-learner": lambda: DRLearner(control=CONTROL, n_folds=3, effect_params=EFFECT, **REG),
}
BEST = "churnml best (inner selection)"


def default_data() -> Path | None:
    """``shared/data/hillstrom/hillstrom.csv.gz`` next to the checkout or a parent of it."""
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / DATA_REL).is_file():
            return parent / DATA_REL
    return None


def load(path: Path | None) -> pd.DataFrame:
    if path is None or not path.is_file():
        raise SystemExit(f"Hillstrom data not found ({path}); pass --data PATH/hillstrom.csv.gz")
    df = pd.read_csv(path)
    expected = {*FEATURES, "segment", *OUTCOMES}
    missing = expected - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)}")
    return df


def half_split(arm: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """50/50 positions stratified on arm x (outcome > 0)."""
    strata = pd.Series(arm).astype(str) + "|" + pd.Series(y > 0).astype(str)
    return train_test_split(np.arange(arm.size), test_size=0.5, random_state=seed,
                            stratify=strata)


def fit_scores(make: Callable[[], Any], X: pd.DataFrame, arm: np.ndarray, y: np.ndarray,
               fit_idx: np.ndarray, eval_idx: np.ndarray, treated: str) -> dict[str, float]:
    tau = make().fit(X.iloc[fit_idx], arm[fit_idx], y[fit_idx]).predict(X.iloc[eval_idx])
    return uplift_scores(y[eval_idx], tau[treated].to_numpy(), arm[eval_idx] == treated, K)


def inner_choice(X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, train: np.ndarray,
                 treated: str, seed: int) -> tuple[str, dict[str, float]]:
    """Candidate with the best mean Qini over inner 50/50 splits of the training half."""
    inner: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for j in range(INNER_SPLITS):
        a, b = half_split(arm[train], y[train], seed=1000 * (seed + 1) + j)
        for name, make in CANDIDATES.items():
            inner[name].append(fit_scores(make, X, arm, y, train[a], train[b], treated)["qini"])
    means = {name: float(np.mean(v)) for name, v in inner.items()}
    return max(means, key=means.__getitem__), means


def run(n_splits: int, data: Path | None) -> dict[str, Any]:
    df = load(data)
    results: dict[str, Any] = {}
    for treated in ARMS:
        pair = df[df["segment"].isin([treated, CONTROL])].reset_index(drop=True)
        X, arm = pair[FEATURES], pair["segment"].to_numpy().astype(str)
        for outcome in OUTCOMES:
            y = pair[outcome].to_numpy(dtype=float)
            scores: dict[str, list[dict[str, float]]] = {n: [] for n in [*CANDIDATES, BEST,
                                                                          "random"]}
            chosen: list[str] = []
            t0 = time.perf_counter()
            for seed in range(n_splits):
                train, test = half_split(arm, y, seed)
                for name, make in CANDIDATES.items():
                    scores[name].append(fit_scores(make, X, arm, y, train, test, treated))
                pick, _ = inner_choice(X, arm, y, train, treated, seed)
                chosen.append(pick)
                scores[BEST].append(scores[pick][-1])
                noise = np.random.default_rng(seed).uniform(size=test.size)
                scores["random"].append(uplift_scores(y[test], noise, arm[test] == treated, K))
            summary = {
                name: {m: (float(pd.Series([s[m] for s in runs]).mean()),
                           float(pd.Series([s[m] for s in runs]).std(ddof=1)))
                       for m in METRICS}
                for name, runs in scores.items()
            }
            results[f"{treated} | {outcome}"] = {
                "summary": summary, "per_split": scores, "chosen": chosen,
                "seconds": time.perf_counter() - t0,
            }
            print(f"{treated} / {outcome}: {time.perf_counter() - t0:.0f} s, chosen {chosen}",
                  flush=True)
    return results


def fmt(mean_sd: tuple[float, float] | None) -> str:
    return "" if mean_sd is None else f"{mean_sd[0]:.3f} ± {mean_sd[1]:.3f}"


def report(results: dict[str, Any], n_splits: int) -> None:
    rows = []
    for key, res in results.items():
        treated, outcome = key.split(" | ")
        for name, summ in res["summary"].items():
            ref = REFERENCE.get((outcome, name), {}) if treated == TARGET[0] else {}
            rows.append({
                "comparison": f"{treated.split()[0]} / {outcome}", "learner": name,
                **{m: fmt(summ[m]) for m in METRICS},
                "ref_qini": fmt(ref.get("qini")), "ref_at30": fmt(ref.get("uplift_at_k")),
            })
    print_table(
        f"Hillstrom, {n_splits} repeated stratified 50/50 splits (mean ± sd; scikit-uplift "
        "normalisation; ref = README reference)",
        rows,
        {"comparison": "arm / outcome", "learner": "learner", "qini": "Qini",
         "uplift_auc": "uplift AUC", "uplift_at_k": "uplift@30%", "ref_qini": "ref Qini",
         "ref_at30": "ref uplift@30%"},
    )
    best = results[" | ".join(TARGET)]["summary"][BEST]
    ref = REFERENCE[(TARGET[1], "S-learner")]
    for m in ("qini", "uplift_at_k"):
        bar = ref[m][0] + ref[m][1]
        verdict = "met" if best[m][0] > bar else "NOT met"
        print(f"target {m} on Womens/visit: {best[m][0]:.4f} vs S-learner {ref[m][0]} + 1 sd "
              f"{ref[m][1]} = {bar:.3f} -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--data", type=Path, default=default_data())
    args = parser.parse_args()
    results = run(args.splits, args.data)
    report(results, args.splits)
    path = write_json("hillstrom", {"n_splits": args.splits, "k": K, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
