"""Uplift on the simulator's campaigns: learners vs the oracle, and targeting a fixed budget.

    python benchmarks/uplift_simulated.py             # seeds 11-13; results/*.json
    python benchmarks/uplift_simulated.py --seeds 11  # one seed
    python benchmarks/uplift_simulated.py --quick     # without the churn/value models and X
    python benchmarks/uplift_simulated.py --quick --attempts  # + the revenue-ranking attempts

Data: ``simulate(N_CUSTOMERS)`` with two randomised campaigns (50 % control each) of
:mod:`churnml.data.simulate_campaigns`: a *training* campaign (spring 2024, 80 % of the eligible
customers contacted) and a *test* campaign (autumn 2024, every eligible customer not contacted
in spring). Churn horizon = effect window = 90 days.

1. **Qini as a share of the oracle's.** churnml's S- and X-learners (LightGBM, defaults) fit on
   the spring contacts (features at the contact day, outcome ``retained``) score the autumn
   contacts; the Qini coefficient (scikit-uplift normalisation) on the autumn realised
   retention is divided by the Qini of the true effect ``tau`` (campaign truth) on the same
   rows.
2. **A fixed-budget campaign.** Among the autumn contacts (a random sample of the eligible base),
   contact ``BUDGET_SHARE`` of them, ranked by (a) churn probability, (b) value at risk
   (= churn probability x value if retained; ChurnClassifier and LTVModel fit on a monthly panel
   whose labels end before the autumn campaign), (c) the old default
   ``uplift x value_if_retained - cost`` (X-learner on ``retained``; negative uplift or value is
   never contacted, so it may use less than the budget), (c') the same with the S-learner,
   (c'') the previous default, S-learner on revenue with the L2 loss (``uplift - cost``),
   (c''') the retention part plus the spend part (:func:`two_part`), (d) the shipped default
   (``uplift.learner`` on ``uplift.outcome`` with ``uplift.revenue_objective``, customers
   flagged do-not-contact skipped), (e) the oracle (true expected revenue effect - cost,
   positive only). Reported: the *expected* incremental retained customers and net incremental
   revenue of the chosen set, from the simulator's truth (sum of ``tau`` and of
   ``tau_revenue - cost``): no outcome noise in the comparison, and its share of the oracle's
   net incremental revenue.
   With ``--attempts``, rows (f1)-(f9): attempts at a better revenue ranking than (d) (the
   churn model's outputs as features, bagged refits, the two-part model bagged, X/DR on
   Tweedie outcome models, averages of estimates) and (g), the ranking of a regressor fit on
   the spring contacts' *true* revenue effect (never available: a ceiling of these features).
3. **The do-not-contact flag.** Share of the autumn contacts flagged, the true share of
   sleeping dogs (``uplift_type``), and the precision of the flag (flagged who are sleeping
   dogs), for the old rule (``uplift < 0``) and the shipped one (groups of cross-fitted
   retention effect, :mod:`churnml.uplift.flags`, built as ``campaign train`` builds it); the
   groups with their share of sleeping dogs; and the ceiling of any flag on these features
   (:func:`flag_ceiling`: a classifier of the true label).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quality import N_JOBS, print_table, write_json  # noqa: E402

from churnml.config import ChurnConfig, UpliftConfig, default_config  # noqa: E402
from churnml.data.simulate import SimulatorConfig, simulate  # noqa: E402
from churnml.data.simulate_campaigns import CampaignSpec  # noqa: E402
from churnml.labels import build_panel  # noqa: E402
from churnml.models import ChurnClassifier, LTVModel  # noqa: E402
from churnml.training.train import feature_spec  # noqa: E402
from churnml.uplift import DRLearner, SLearner, TLearner, XLearner  # noqa: E402
from churnml.uplift._base import row_keys  # noqa: E402
from churnml.uplift.campaigns import campaign_frame, treated  # noqa: E402
from churnml.uplift.fitted import UpliftFit  # noqa: E402
from churnml.uplift.flags import GroupFlag, cross_fitted_effects  # noqa: E402
from churnml.uplift.metrics import qini_auc_score  # noqa: E402
from churnml.uplift.workflow import make_learner  # noqa: E402

N_CUSTOMERS = 30_000
SEEDS = (11, 12, 13)
COST = 2.0  # currency per treated contact (the campaign spec's)
BUDGET_SHARE = 0.2
TRAIN = CampaignSpec(campaign_id="spring", date="2024-03-04", contact_share=0.8, cost=COST)
TEST = CampaignSpec(campaign_id="autumn", date="2024-08-05", contact_share=1.0, cost=COST)
LEARNERS = {"s": SLearner, "t": TLearner, "x": XLearner, "dr": DRLearner}
NAMES = {"s": "S-learner", "t": "T-learner", "x": "X-learner", "dr": "DR-learner"}
PREVIOUS = "(c'') previous default: S-learner on revenue (L2) - cost, no flag"
OLD = "(c) old default: X-learner on retained x value_if_retained - cost, flag uplift < 0"


def churn_and_value(data, churn: ChurnConfig, spec, X_test: pd.DataFrame):
    """Churn probability and value if retained of the test contacts from models fit on a
    monthly panel whose label windows end before the test campaign."""
    last = pd.Timestamp(TEST.date) - pd.Timedelta(days=churn.horizon_days)
    cutoffs = pd.date_range("2023-04-01", last, freq="MS")
    panel = build_panel(data, cutoffs, spec, churn)
    feats = [c for c in panel.columns if c not in ("customer_id", "cutoff", "churned", "ltv")]
    groups = panel["customer_id"].to_numpy()
    clf = ChurnClassifier(n_jobs=N_JOBS).fit(panel[feats], panel["churned"], groups=groups)
    ltv = LTVModel(n_jobs=N_JOBS).fit(panel[feats], panel["ltv"], groups=groups,
                                      retained=panel["churned"].to_numpy() == 0)
    p = clf.predict_proba(X_test[feats])[:, 1]
    return p, ltv.predict_if_retained(X_test[feats])


def churn_outputs(data, churn: ChurnConfig, spec, frames: list[pd.DataFrame]
                  ) -> list[pd.DataFrame]:
    """``frames`` with the churn model's outputs as three more features (``churn_probability``,
    ``value_if_retained`` and their product ``value_at_risk``, as ``churnml score`` writes
    them) from a ChurnClassifier and an LTVModel fit on a monthly panel whose label windows
    end before the *training* campaign (no spring outcome enters a spring feature)."""
    last = pd.Timestamp(TRAIN.date) - pd.Timedelta(days=churn.horizon_days)
    panel = build_panel(data, pd.date_range("2023-01-01", last, freq="MS"), spec, churn)
    feats = [c for c in panel.columns if c not in ("customer_id", "cutoff", "churned", "ltv")]
    groups = panel["customer_id"].to_numpy()
    clf = ChurnClassifier(n_jobs=N_JOBS).fit(panel[feats], panel["churned"], groups=groups)
    ltv = LTVModel(n_jobs=N_JOBS).fit(panel[feats], panel["ltv"], groups=groups,
                                      retained=panel["churned"].to_numpy() == 0)
    out = []
    for X in frames:
        p = clf.predict_proba(X[feats])[:, 1]
        v = np.asarray(ltv.predict_if_retained(X[feats]), dtype=float)
        out.append(X.assign(churn_probability=p, value_if_retained=v, value_at_risk=p * v))
    return out


SUBSAMPLE = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8}


def bagged(effect, k: int) -> np.ndarray:
    """Mean of ``effect(params)`` over ``k`` refits (LightGBM seed ``42 + j`` and
    :data:`SUBSAMPLE`: 80 % of the rows and 80 % of the features per tree)."""
    return np.mean([effect({"seed": 42 + j, "lgbm_params": SUBSAMPLE}) for j in range(k)],
                   axis=0)


def attempts(data, churn: ChurnConfig, spec, X_tr: pd.DataFrame, log_tr: pd.DataFrame,
             X_te: pd.DataFrame, tau_default: np.ndarray, tau_two_part: np.ndarray,
             truth_tr: pd.DataFrame) -> dict[str, np.ndarray]:
    """Revenue effects of the autumn contacts by the attempts (f1)-(f9), and the ranking (g)
    of a regressor of the spring contacts' true revenue effect (a ceiling)."""
    arm = log_tr["arm"].to_numpy()
    y = log_tr["revenue"].to_numpy(float)
    ids = (log_tr["customer_id"].astype(str) + "|spring").to_numpy()
    Xc_tr, Xc_te = churn_outputs(data, churn, spec, [X_tr, X_te])

    def s_learner(params=None, Xa=X_tr, Xb=X_te):
        model = SLearner(n_jobs=N_JOBS, continuous_objective="tweedie", **(params or {}))
        return model.fit(Xa, arm, y, ids=ids).predict(Xb)[TEST.arm].to_numpy()

    f1 = s_learner(Xa=Xc_tr, Xb=Xc_te)
    f4 = two_part(Xc_tr, arm, log_tr, Xc_te)
    out = {
        "(f1) S-learner (Tweedie) + churn probability, value if retained, value at risk as "
        "features": f1,
        "(f2) S-learner (Tweedie) bagged: mean of 10 refits, 80 % rows and features per tree":
            bagged(s_learner, 10),
        "(f3) two-part bagged: mean of 5 refits, 80 % rows and features per tree":
            bagged(lambda p: two_part(X_tr, arm, log_tr, X_te, p), 5),
        "(f4) two-part + churn outputs as features": f4,
    }
    for i, key in ((5, "x"), (6, "dr")):
        model = LEARNERS[key](n_jobs=N_JOBS, continuous_objective="tweedie")
        out[f"(f{i}) {NAMES[key]} with Tweedie outcome models"] = model.fit(
            X_tr, arm, y, ids=ids).predict(X_te)[TEST.arm].to_numpy()
    out["(f7) average of (d) and two-part"] = (tau_default + tau_two_part) / 2
    out["(f8) average of (d) and (f4)"] = (tau_default + f4) / 2
    out["(f9) average of (d), (f1), two-part and (f4)"] = np.mean(
        [tau_default, f1, tau_two_part, f4], axis=0)
    ceiling = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=15,
                                min_child_samples=20, n_jobs=N_JOBS, verbose=-1)
    out["(g) ceiling: regressor of the spring contacts' TRUE revenue effect"] = ceiling.fit(
        X_tr, truth_tr["tau_revenue"].to_numpy()).predict(X_te)
    return out


def flag_ceiling(X_tr: pd.DataFrame, dog_tr: np.ndarray, X_te: pd.DataFrame, dog: np.ndarray,
                 shares: dict[str, float]) -> dict[str, float]:
    """How precise can any flag on these features be: a LightGBM classifier fit on the *true*
    sleeping-dog label of the spring contacts (never available in practice), flagging its top
    ``share`` of the autumn contacts; precision per named share, and its ROC AUC."""
    from sklearn.metrics import roc_auc_score

    clf = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15,
                             min_child_samples=100, n_jobs=N_JOBS, verbose=-1)
    p = clf.fit(X_tr, dog_tr).predict_proba(X_te)[:, 1]
    out = {"auc": float(roc_auc_score(dog, p))}
    for name, share in shares.items():
        top = p >= np.quantile(p, 1 - share) if share > 0 else np.zeros(p.size, bool)
        out[f"precision at {name}"] = float(dog[top].mean()) if top.any() else np.nan
    return out


def two_part(X_tr: pd.DataFrame, arm_tr: np.ndarray, log_tr: pd.DataFrame,
             X_te: pd.DataFrame, params: dict | None = None) -> np.ndarray:
    """Revenue effect as the retention part plus the spend part:
    ``E[R | x, a] = P(retained | x, a) m_a(x)`` (no revenue without a purchase), so
    ``tau_R = (P_T - P_C) m_C + P_T (m_T - m_C)``; ``P`` an S-learner classifier,
    ``m_a(x) = E[R | retained, x, a]`` a Tweedie S-learner on the retained contacts;
    ``params``: more arguments of both learners."""
    ret = log_tr["retained"].to_numpy(float) == 1
    params = params or {}
    p = SLearner(n_jobs=N_JOBS, **params).fit(X_tr, arm_tr, ret.astype(float)).predict_outcome(
        X_te)
    m = SLearner(n_jobs=N_JOBS, continuous_objective="tweedie", **params).fit(
        X_tr[ret].reset_index(drop=True), arm_tr[ret],
        log_tr["revenue"].to_numpy(float)[ret]).predict_outcome(X_te)
    c, t = "control", TEST.arm
    return ((p[t] - p[c]) * m[c] + p[t] * (m[t] - m[c])).to_numpy()


def one_seed(seed: int, quick: bool = False, with_attempts: bool = False) -> dict:
    cfg = default_config()
    churn, spec, u = cfg.churn, feature_spec(cfg), UpliftConfig()
    data = simulate(N_CUSTOMERS, seed=seed, config=SimulatorConfig(campaigns=[TRAIN, TEST]))
    X_tr, log_tr = campaign_frame(data, churn, spec, "spring")
    X_te, log_te = campaign_frame(data, churn, spec, "autumn")
    truth = data.campaign_truth.set_index(["campaign_id", "customer_id"]).loc["autumn"]
    truth = truth.loc[log_te["customer_id"].to_numpy()]
    y_te = log_te["retained"].to_numpy(float)
    t_te = treated(log_te["arm"])
    arm_tr = log_tr["arm"].to_numpy()
    print(f"seed {seed}: spring {len(log_tr):,} contacts; autumn {len(log_te):,}; "
          f"true mean tau {truth['tau'].mean():.4f}", flush=True)

    q_oracle = qini_auc_score(y_te, truth["tau"].to_numpy(), t_te)
    qini = {"oracle (true tau)": 1.0}
    tau = {}
    fits = (("s", "revenue"),) if quick else (("s", "retained"), ("x", "retained"),
                                              ("s", "revenue"))
    for key, outcome in fits:
        model = LEARNERS[key](n_jobs=N_JOBS).fit(X_tr, arm_tr, log_tr[outcome].to_numpy(float))
        tau[key, outcome] = model.predict(X_te)[TEST.arm].to_numpy()
        if outcome == "retained":
            qini[f"{NAMES[key]} (retained)"] = qini_auc_score(
                y_te, tau[key, outcome], t_te) / q_oracle
    tau["two-part"] = two_part(X_tr, arm_tr, log_tr, X_te)

    # the shipped default: uplift.learner on uplift.outcome; the flag as train_uplift builds it
    # (fit_group_flag on retention), keeping the cross-fitted effects to show the groups
    def make():
        return make_learner(u, n_jobs=N_JOBS)

    retention = u.model_copy(update={"outcome": "retained"})
    y_def, y_ret = log_tr[u.outcome].to_numpy(float), log_tr["retained"].to_numpy(float)
    ids_tr = (log_tr["customer_id"].astype(str) + "|spring").to_numpy()
    keys_tr = row_keys(ids_tr, len(log_tr), u.seed)
    ret_oof = cross_fitted_effects(lambda: make_learner(retention, n_jobs=N_JOBS), X_tr,
                                   arm_tr, y_ret, TEST.arm, keys_tr, ids=ids_tr)
    group_flag = GroupFlag.measure(ret_oof, y_ret, arm_tr == TEST.arm, u.flag_groups)
    flag_model = (None if u.outcome == "retained" else
                  make_learner(retention, n_jobs=N_JOBS).fit(X_tr, arm_tr, y_ret, ids=ids_tr))
    fit = UpliftFit(make().fit(X_tr, arm_tr, y_def, ids=ids_tr), u.learner, u.outcome,
                    TEST.arm, list(X_tr.columns), ["spring"], len(log_tr), pd.DataFrame(),
                    flag=group_flag, flag_model=flag_model)
    tau_def, p_neg = fit.effects(X_te)
    flag_new = p_neg >= u.flag_level
    truth_tr = data.campaign_truth.set_index(["campaign_id", "customer_id"]).loc["spring"].loc[
        log_tr["customer_id"].to_numpy()]
    dog_tr = truth_tr["uplift_type"].to_numpy() == "sleeping_dog"

    budget = int(BUDGET_SHARE * len(log_te))
    everyone = np.ones(len(log_te), bool)
    rank = {}
    if not quick:  # the value models and the X-learner (rows unchanged since the last run)
        p_churn, value_if_retained = churn_and_value(data, churn, spec, X_te)
        vir = np.asarray(value_if_retained, dtype=float)
        rank = {
            "(a) churn probability": (p_churn, everyone),
            "(b) value at risk": (p_churn * vir, everyone),
            OLD: (tau["x", "retained"] * vir - COST, tau["x", "retained"] >= 0),
            "(c') S-learner on retained x value_if_retained - cost": (
                tau["s", "retained"] * vir - COST, tau["s", "retained"] >= 0),
        }
    value_def = tau_def - COST if u.outcome == "revenue" else tau_def * vir - COST
    default = f"(d) shipped default: {NAMES[u.learner]} on {u.outcome} " \
              f"({u.revenue_objective}) - cost, flag P(<0) >= {u.flag_level} in groups"
    rank |= {
        PREVIOUS: (
            tau["s", "revenue"] - COST, everyone),
        "(c''') retention part + spend part (two-part S-learner) - cost, no flag": (
            tau["two-part"] - COST, everyone),
        default: (value_def, ~flag_new),
    }
    if with_attempts:
        rank |= {name: (tau - COST, everyone) for name, tau in attempts(
            data, churn, spec, X_tr, log_tr, X_te, tau_def, tau["two-part"], truth_tr).items()}
    rank |= {
        "(e) oracle": (truth["tau_revenue"].to_numpy() - COST, everyone),
    }
    true_rev = truth["tau_revenue"].to_numpy() - COST
    true_tau = truth["tau"].to_numpy()
    dog = truth["uplift_type"].to_numpy() == "sleeping_dog"
    rows = {}
    for name, (score, allowed) in rank.items():
        ok = allowed & (score > 0) if name.startswith(("(c", "(d", "(e", "(f", "(g")) \
            else allowed
        idx = np.flatnonzero(ok)[np.argsort(-score[ok], kind="stable")][:budget]
        rows[name] = {"contacts": idx.size, "incremental_retained": float(true_tau[idx].sum()),
                      "net_incremental_revenue": float(true_rev[idx].sum()),
                      "sleeping_dogs": int(dog[idx].sum())}
    oracle_rev = rows["(e) oracle"]["net_incremental_revenue"]
    for r in rows.values():
        r["share_of_oracle"] = r["net_incremental_revenue"] / oracle_rev
    rules = [] if quick else [("old: X-learner on retained, uplift < 0", tau["x", "retained"] < 0)]
    flags = {}
    for name, flagged in (*rules,
                          (f"shipped: {u.flag_groups} groups of cross-fitted retention effect "
                           f"({NAMES[u.learner]}), P(<0) >= {u.flag_level}", flag_new)):
        flags[name] = {"flagged_share": float(flagged.mean()), "true_share": float(dog.mean()),
                       "precision": float(dog[flagged].mean()) if flagged.any() else np.nan,
                       "recall": float(flagged[dog].mean()) if dog.any() else np.nan}
    groups = group_flag.table(u.flag_level)
    groups["sleeping_dog_share"] = pd.Series(dog_tr).groupby(group_flag.group(ret_oof)).mean()
    ceiling = flag_ceiling(X_tr, dog_tr, X_te, dog, {
        "flagged share": float(flag_new.mean()), "true share": float(dog.mean()),
        "true share / 1.5": float(dog.mean()) / 1.5, "5 %": 0.05})
    print(f"seed {seed}: flag groups\n{groups.round(3).to_string()}\nceiling {ceiling}",
          flush=True)
    return {"seed": seed, "contacts_train": len(log_tr), "contacts_test": len(log_te),
            "budget": budget, "qini_share": qini, "budget_rows": rows, "flags": flags,
            "flag_groups": json.loads(groups.to_json(orient="records")),
            "flag_ceiling": ceiling}


def mean_sd(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else f"{v[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--quick", action="store_true",
                        help="skip the churn and value models and the X-learner: rows (a)-(c') "
                        "and the old flag rule")
    parser.add_argument("--attempts", action="store_true",
                        help="also rows (f1)-(f9) and (g): attempts at a better revenue ranking")
    parser.add_argument("--combine", type=Path, nargs="+",
                        help="print the tables of earlier runs' JSON files instead")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.combine:
        runs = [r for p in args.combine for r in json.loads(p.read_text())["runs"]]
        args.seeds = [r["seed"] for r in runs]
    else:
        runs = [one_seed(seed, args.quick, args.attempts) for seed in args.seeds]
    n = len(runs)
    print_table(f"Qini on the autumn campaign (realised retention) as a share of the oracle's, "
                f"{n} seed(s)",
                [{"model": k, "share": mean_sd([r["qini_share"][k] for r in runs])}
                 for k in runs[0]["qini_share"]], {"model": "model", "share": "share of oracle"})
    base = OLD if OLD in runs[0]["budget_rows"] else PREVIOUS  # "seeds beating" this row
    print_table(f"Fixed budget: {BUDGET_SHARE:.0%} of the autumn customers (expected values from "
                f"the truth; cost {COST} per contact), mean ± sd over {n} seed(s)",
                [{"ranking": k, **{c: mean_sd([r["budget_rows"][k][c] for r in runs])
                                   for c in ("contacts", "incremental_retained",
                                             "net_incremental_revenue", "share_of_oracle",
                                             "sleeping_dogs")},
                  "wins": sum(r["budget_rows"][k]["net_incremental_revenue"]
                              > r["budget_rows"][base]["net_incremental_revenue"] for r in runs)}
                 for k in runs[0]["budget_rows"]],
                {"ranking": "ranking", "contacts": "contacts",
                 "incremental_retained": "incremental retained",
                 "net_incremental_revenue": "net incremental revenue",
                 "share_of_oracle": "share of oracle", "sleeping_dogs": "sleeping dogs",
                 "wins": f"seeds beating {base[:base.index(')') + 1]}"})
    print_table("Do-not-contact flag on the autumn contacts (truth: uplift_type sleeping_dog)",
                [{"rule": k, **{c: mean_sd([r["flags"][k][c] for r in runs])
                                for c in ("flagged_share", "true_share", "precision",
                                          "recall")}}
                 for k in runs[0]["flags"]],
                {"rule": "rule", "flagged_share": "flagged share",
                 "true_share": "true sleeping-dog share", "precision": "precision",
                 "recall": "recall"})
    print_table("Ceiling of any flag on these features: a classifier of the true sleeping-dog "
                "label (spring truth), precision of its top share of the autumn contacts",
                [{"measure": k, "value": mean_sd([r["flag_ceiling"][k] for r in runs])}
                 for k in runs[0]["flag_ceiling"]], {"measure": "measure", "value": "value"})
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    name = "uplift_simulated" + ("" if args.seeds == list(SEEDS) else
                                 "_" + "_".join(map(str, args.seeds))) + (
        "_attempts" if args.attempts else "")
    write_json(name, {"n_customers": N_CUSTOMERS, "seeds": args.seeds, "runs": runs,
                      "seconds": seconds})


if __name__ == "__main__":
    main()
