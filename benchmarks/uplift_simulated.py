"""Uplift on the simulator's campaigns: learners vs the oracle, and targeting a fixed budget.

    python benchmarks/uplift_simulated.py   # two tables; results/uplift_simulated.json

Data: ``simulate(N_CUSTOMERS)`` with two randomised campaigns (50 % control each) of
:mod:`churnml.data.simulate_campaigns`: a *training* campaign (spring 2024, 80 % of the eligible
customers contacted) and a *test* campaign (autumn 2024, every eligible customer not contacted
in spring). Churn horizon = effect window = 90 days.

1. **Qini as a share of the oracle's.** churnml's S/T/X/DR learners (LightGBM, defaults) fit on
   the spring contacts (features at the contact day, outcome ``retained``) score the autumn
   contacts; the Qini coefficient (scikit-uplift normalisation) on the autumn realised
   retention is divided by the Qini of the true effect ``tau`` (campaign truth) on the same
   rows. Bootstrap sd from :func:`churnml.uplift.metrics.uplift_intervals` (200 resamples).
2. **A fixed-budget campaign.** Among the autumn contacts (a random sample of the eligible base),
   contact ``BUDGET_SHARE`` of them, ranked by (a) churn probability, (b) value at risk
   (= churn probability x value if retained; ChurnClassifier and LTVModel fit on a monthly panel
   whose labels end before the autumn campaign), (c) churnml's targeting value
   ``uplift x value_if_retained - cost`` (X-learner on ``retained``; negative uplift or value is
   never contacted, so it may use less than the budget), (c') the X-learner on revenue directly
   (``uplift - cost``), (d) the oracle (true expected revenue effect - cost, positive only).
   Reported: the *expected* incremental retained customers and net incremental revenue of the
   chosen set, from the simulator's truth (sum of ``tau`` and of ``tau_revenue - cost``): no
   outcome noise in the comparison.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quality import N_JOBS, print_table, write_json  # noqa: E402

from churnml.config import ChurnConfig, default_config  # noqa: E402
from churnml.data.simulate import SimulatorConfig, simulate  # noqa: E402
from churnml.data.simulate_campaigns import CampaignSpec  # noqa: E402
from churnml.labels import build_panel  # noqa: E402
from churnml.models import ChurnClassifier, LTVModel  # noqa: E402
from churnml.training.train import feature_spec  # noqa: E402
from churnml.uplift import DRLearner, SLearner, TLearner, XLearner  # noqa: E402
from churnml.uplift.campaigns import campaign_frame, treated  # noqa: E402
from churnml.uplift.metrics import uplift_intervals  # noqa: E402

N_CUSTOMERS = 30_000
SEED = 11
COST = 2.0  # currency per treated contact (the campaign spec's)
BUDGET_SHARE = 0.2
TRAIN = CampaignSpec(campaign_id="spring", date="2024-03-04", contact_share=0.8, cost=COST)
TEST = CampaignSpec(campaign_id="autumn", date="2024-08-05", contact_share=1.0, cost=COST)
LEARNERS = {"S-learner": SLearner, "T-learner": TLearner, "X-learner": XLearner,
            "DR-learner": DRLearner}
N_BOOT = 200


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


def main() -> None:
    t0 = time.perf_counter()
    cfg = default_config()
    churn, spec = cfg.churn, feature_spec(cfg)
    data = simulate(N_CUSTOMERS, seed=SEED,
                    config=SimulatorConfig(campaigns=[TRAIN, TEST]))
    X_tr, log_tr = campaign_frame(data, churn, spec, "spring")
    X_te, log_te = campaign_frame(data, churn, spec, "autumn")
    truth = data.campaign_truth.set_index(["campaign_id", "customer_id"]).loc["autumn"]
    truth = truth.loc[log_te["customer_id"].to_numpy()]
    y_te = log_te["retained"].to_numpy(float)
    t_te = treated(log_te["arm"])
    arm_tr = log_tr["arm"].to_numpy()
    print(f"spring: {len(log_tr):,} contacts; autumn: {len(log_te):,} contacts; "
          f"true mean tau {truth['tau'].mean():.4f}")

    oracle = uplift_intervals(y_te, truth["tau"].to_numpy(), t_te, n_boot=N_BOOT, seed=1)
    q_oracle = oracle.loc["qini", "estimate"]
    rows = [{"model": "oracle (true tau)", "qini": q_oracle, "sd": oracle.loc["qini", "sd"],
             "share": 1.0}]
    tau_hat = {}
    for name, cls in LEARNERS.items():
        model = cls(n_jobs=N_JOBS).fit(X_tr, arm_tr, log_tr["retained"].to_numpy(float))
        tau_hat[name] = model.predict(X_te)[TEST.arm].to_numpy()
        iv = uplift_intervals(y_te, tau_hat[name], t_te, n_boot=N_BOOT, seed=1)
        rows.append({"model": f"churnml {name} (retained)", "qini": iv.loc["qini", "estimate"],
                     "sd": iv.loc["qini", "sd"],
                     "share": iv.loc["qini", "estimate"] / q_oracle})
    print_table("Qini on the autumn campaign (realised retention), learners fit on spring",
                rows, {"model": "model", "qini": "Qini", "sd": "bootstrap sd",
                       "share": "share of oracle"})

    rev_model = XLearner(n_jobs=N_JOBS).fit(X_tr, arm_tr, log_tr["revenue"].to_numpy(float))
    tau_rev = rev_model.predict(X_te)[TEST.arm].to_numpy()
    p_churn, value_if_retained = churn_and_value(data, churn, spec, X_te)
    budget = int(BUDGET_SHARE * len(log_te))
    rank = {
        "(a) churn probability": (p_churn, np.ones(len(p_churn), bool)),
        "(b) value at risk": (p_churn * value_if_retained, np.ones(len(p_churn), bool)),
        "(c) targeting value (X-learner on retained)": (
            tau_hat["X-learner"] * value_if_retained - COST, tau_hat["X-learner"] > 0),
        "(c') X-learner on revenue": (tau_rev - COST, tau_rev > 0),
        "(d) oracle": (truth["tau_revenue"].to_numpy() - COST, truth["tau"].to_numpy() > -1),
    }
    true_rev = truth["tau_revenue"].to_numpy() - COST
    true_tau = truth["tau"].to_numpy()
    budget_rows = []
    for name, (score, allowed) in rank.items():
        ok = allowed & (score > 0) if name.startswith(("(c", "(d")) else allowed
        idx = np.flatnonzero(ok)[np.argsort(-score[ok], kind="stable")][:budget]
        budget_rows.append({
            "ranking": name, "contacts": idx.size,
            "incremental_retained": float(true_tau[idx].sum()),
            "net_incremental_revenue": float(true_rev[idx].sum()),
            "sleeping_dogs": int((truth["uplift_type"].to_numpy()[idx] == "sleeping_dog").sum()),
        })
    print_table(f"Fixed budget: {budget:,} of {len(log_te):,} autumn customers (expected values "
                f"from the truth; cost {COST} per contact)", budget_rows,
                {"ranking": "ranking", "contacts": "contacts",
                 "incremental_retained": "incremental retained",
                 "net_incremental_revenue": "net incremental revenue",
                 "sleeping_dogs": "sleeping dogs contacted"})
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    write_json("uplift_simulated", {
        "n_customers": N_CUSTOMERS, "seed": SEED, "contacts_train": len(log_tr),
        "contacts_test": len(log_te), "budget": budget, "qini": rows, "budget_rows": budget_rows,
        "seconds": seconds,
    })


if __name__ == "__main__":
    main()
