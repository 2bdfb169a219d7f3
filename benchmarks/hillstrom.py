"""Uplift learners on the Hillstrom e-mail experiment (real randomised campaign).

    python benchmarks/hillstrom.py                         # 10 splits, every arm x outcome
    python benchmarks/hillstrom.py --only "Womens E-Mail|visit" --splits 3   # quicker look

Data: ``../shared/data/hillstrom/hillstrom.csv.gz`` (64,000 customers randomly sent a Womens
e-mail, a Mens e-mail or none; see its README). Comparisons: each e-mail arm vs ``No E-Mail``;
outcomes ``visit``, ``conversion`` (0/1) and ``spend`` (dollars). Features: recency, history,
mens, womens, newbie, zip_code, channel — never the outcomes.

Protocol, fixed before any tuning: ``SPLIT_SEEDS`` (1001-1010) stratified 70/30 splits on
arm x (outcome > 0); every candidate is fit on the 70 % and scored on the 30 %, in
scikit-uplift 0.5.1's normalisation (:mod:`churnml.uplift.metrics`): Qini coefficient, uplift
AUC, uplift@30 % (``strategy="overall"``). For spend (not binary, which scikit-uplift
refuses) the same formulas with the revenue perfect curve. Reported: mean ± sd over the
splits, and the paired difference with scikit-uplift's ``SoloModel`` (LightGBM with the same
trees as churnml's default base models; one-hot features) per split: mean ± sd and the number
of splits won. "shipped default" is ``uplift.learner`` of :class:`churnml.config.UpliftConfig`
with its default parameters. Every booster runs on one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quality import N_JOBS, print_table, write_json  # noqa: E402

from churnml.config import UpliftConfig  # noqa: E402
from churnml.uplift import (  # noqa: E402
    DRLearner,
    SLearner,
    TLearner,
    XLearner,
    _base,  # noqa: E402
    uplift_scores,
)
from churnml.uplift.workflow import make_learner  # noqa: E402

DATA_REL = Path("shared") / "data" / "hillstrom" / "hillstrom.csv.gz"
FEATURES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
OUTCOMES = ("visit", "conversion", "spend")
ARMS = ("Womens E-Mail", "Mens E-Mail")
CONTROL = "No E-Mail"
K = 0.3
TEST_SHARE = 0.3
SPLIT_SEEDS = tuple(range(1001, 1011))
METRICS = ("qini", "uplift_auc", "uplift_at_k")
BASELINE = "SoloModel (scikit-uplift)"
DEFAULT = "shipped default"
LEARNERS = {"s": SLearner, "t": TLearner, "x": XLearner, "dr": DRLearner}

# churnml's default base model, also given to SoloModel so the comparison is of the method.
BASE: dict[str, Any] = {
    "n_estimators": _base.N_ESTIMATORS, "learning_rate": _base.LEARNING_RATE,
    "num_leaves": _base.NUM_LEAVES, "max_depth": _base.MAX_DEPTH,
    "min_child_samples": _base.MIN_CHILD_SAMPLES, "reg_lambda": _base.REG_LAMBDA,
    "random_state": _base.SEED, "n_jobs": N_JOBS, "verbose": -1,
}


class SoloLGBM:
    """scikit-uplift ``SoloModel`` (treatment as a feature) on LightGBM; one-hot features."""

    def __init__(self, treated: str) -> None:
        self.treated = treated

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray) -> SoloLGBM:
        from sklift.models import SoloModel

        self.columns_ = pd.get_dummies(X).columns
        binary = bool(np.isin(y, (0.0, 1.0)).all())
        est = lgb.LGBMClassifier(**BASE) if binary else lgb.LGBMRegressor(**BASE)
        self.model_ = SoloModel(est).fit(self._encode(X), y, (arm == self.treated).astype(int))
        return self

    def _encode(self, X: pd.DataFrame) -> np.ndarray:
        return pd.get_dummies(X).reindex(columns=self.columns_, fill_value=0).to_numpy(float)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({self.treated: self.model_.predict(self._encode(X))}, index=X.index)


class Bagged:
    """Average effect of ``n`` copies of a learner on bootstrap resamples (an attempt)."""

    def __init__(self, make: Callable[[int], Any], n: int = 5) -> None:
        self.make, self.n = make, n

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray) -> Bagged:
        rng = np.random.default_rng(0)
        self.models_ = []
        for i in range(self.n):
            idx = rng.integers(0, len(X), len(X))
            self.models_.append(self.make(i).fit(X.iloc[idx], arm[idx], y[idx]))
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        return sum(m.predict(X) for m in self.models_) / self.n


def candidates(treated: str, outcome: str = "visit") -> dict[str, Callable[[], Any]]:
    """churnml's S, X and DR learners with their defaults (the shipped default marked) and
    SoloModel; the T-learner and the attempts run on Womens/visit only (time). On spend (a
    revenue) the shipped default also brings its revenue loss (``uplift.revenue_objective``)."""
    default = UpliftConfig().learner
    names = {"s": "S-learner", "x": "X-learner", "dr": "DR-learner"}
    out: dict[str, Callable[[], Any]] = {
        f"{name}{' = ' + DEFAULT if key == default else ''}":
            (lambda cls=LEARNERS[key]: cls(control=CONTROL, n_jobs=N_JOBS))
        for key, name in names.items()
    }
    if default not in names:
        out[DEFAULT] = lambda: LEARNERS[default](control=CONTROL, n_jobs=N_JOBS)
    if outcome == "spend" and UpliftConfig().revenue_objective != "regression":
        shipped = UpliftConfig(outcome="revenue")
        out = {k.replace(f" = {DEFAULT}", ""): v for k, v in out.items()}
        out[f"{names.get(default, default)} ({shipped.revenue_objective}) = {DEFAULT}"] = (
            lambda: make_learner(shipped, control=CONTROL, n_jobs=N_JOBS))
    out[BASELINE] = lambda: SoloLGBM(treated)
    return out


TARGET = "Womens E-Mail|visit"
# The T-learner and attempts at beating SoloModel (Womens/visit only, same splits).
ATTEMPTS: dict[str, Callable[[], Any]] = {
    "T-learner": lambda: TLearner(control=CONTROL, n_jobs=N_JOBS),
    "S-learner, 7 leaves x 300 trees, 200 rows/leaf": lambda: SLearner(
        control=CONTROL, n_jobs=N_JOBS, n_estimators=300, num_leaves=7, min_child_samples=200),
    "S-learner bagged x5 (bootstrap)": lambda: Bagged(
        lambda i: SLearner(control=CONTROL, n_jobs=N_JOBS, seed=i)),
}


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
    missing = {*FEATURES, "segment", *OUTCOMES} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)}")
    return df


def split(arm: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """70/30 positions stratified on arm x (outcome > 0)."""
    strata = pd.Series(arm).astype(str) + "|" + pd.Series(y > 0).astype(str)
    return train_test_split(np.arange(arm.size), test_size=TEST_SHARE, random_state=seed,
                            stratify=strata)


def summarise(runs: list[dict[str, float]], base: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in METRICS:
        v = np.array([r[m] for r in runs])
        d = v - np.array([r[m] for r in base])
        out[m] = (float(v.mean()), float(v.std(ddof=1)))
        out[f"diff_{m}"] = (float(d.mean()), float(d.std(ddof=1)))
        out[f"wins_{m}"] = int((d > 0).sum())
    return out


def run(seeds: tuple[int, ...], data: Path | None, only: list[str] | None,
        attempts: bool, learners: list[str] | None = None) -> dict[str, Any]:
    df = load(data)
    results: dict[str, Any] = {}
    for treated in ARMS:
        pair = df[df["segment"].isin([treated, CONTROL])].reset_index(drop=True)
        X, arm = pair[FEATURES], pair["segment"].to_numpy().astype(str)
        for outcome in OUTCOMES:
            key = f"{treated}|{outcome}"
            if only and key not in only:
                continue
            y = pair[outcome].to_numpy(dtype=float)
            makers = candidates(treated, outcome)
            if learners:
                makers = {k: v for k, v in makers.items()
                          if k == BASELINE or any(k.startswith(p) for p in learners)}
            if attempts and key == TARGET:
                makers.update(ATTEMPTS)
            scores: dict[str, list[dict[str, float]]] = {n: [] for n in [*makers, "random"]}
            t0 = time.perf_counter()
            for seed in seeds:
                train, test = split(arm, y, seed)
                t_test = arm[test] == treated
                for name, make in makers.items():
                    model = make().fit(X.iloc[train], arm[train], y[train])
                    tau = model.predict(X.iloc[test])[treated].to_numpy()
                    scores[name].append(uplift_scores(y[test], tau, t_test, K))
                noise = np.random.default_rng(seed).uniform(size=test.size)
                scores["random"].append(uplift_scores(y[test], noise, t_test, K))
            summary = {name: summarise(r, scores[BASELINE]) for name, r in scores.items()}
            results[key] = {"summary": summary, "per_split": scores,
                            "seconds": time.perf_counter() - t0}
            print(f"{key}: {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def fmt(mean_sd: tuple[float, float], digits: int = 3) -> str:
    return f"{mean_sd[0]:+.{digits}f} ± {mean_sd[1]:.{digits}f}".lstrip("+")


def report(results: dict[str, Any], n_splits: int) -> None:
    for key, res in results.items():
        rows = [{"learner": name, **{m: fmt(s[m]) for m in METRICS},
                 "diff": fmt(s["diff_qini"]), "wins": f"{s['wins_qini']}/{n_splits}"}
                for name, s in res["summary"].items()]
        print_table(
            f"Hillstrom {key}, {n_splits} stratified 70/30 splits (mean ± sd; scikit-uplift "
            f"normalisation; paired Qini difference vs {BASELINE})", rows,
            {"learner": "learner", "qini": "Qini", "uplift_auc": "uplift AUC",
             "uplift_at_k": "uplift@30%", "diff": "Qini - SoloModel", "wins": "splits won"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=len(SPLIT_SEEDS))
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--only", action="append", help='e.g. "Womens E-Mail|visit"')
    parser.add_argument("--learners", nargs="+", help='only candidates whose name starts '
                        'so (SoloModel always), e.g. --learners "S-learner"')
    parser.add_argument("--no-attempts", action="store_true",
                        help="skip the attempts at beating SoloModel")
    args = parser.parse_args()
    seeds = SPLIT_SEEDS[: args.splits]
    results = run(seeds, args.data, args.only, not args.no_attempts, args.learners)
    report(results, len(seeds))
    path = write_json("hillstrom", {"split_seeds": list(seeds), "k": K,
                                    "test_share": TEST_SHARE, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
