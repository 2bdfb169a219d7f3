"""The campaign loop as plain functions (the CLI's ``churnml campaign ...`` calls these):

plan (contact lists with a random control group) -> run (outside churnml) -> evaluate (once the
horizon has passed) -> train (an uplift model on the campaign log) -> target (score customers by
incremental value) -> plan the next campaign.

Files, under ``<output_dir>``: ``campaigns/<id>/{contacts.csv, campaign_log.csv, to_contact/,
evaluation.csv}``, ``campaign_evaluations.csv`` and ``campaign_outcomes.parquet`` (every
evaluated campaign, read by the report), ``uplift/model.json`` (code-free,
:mod:`churnml.uplift.fitted`; + ``uplift/validation.csv`` and its held-out predictions,
``uplift/flag_groups.csv``),
``targeting.parquet``.
Evaluation and training runs are logged to MLflow (``tracking.uri``).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.config import Config, UpliftConfig, check_campaign_settings
from churnml.data.customer_data import CustomerData
from churnml.data.schema import CONTROL_ARM
from churnml.errors import ChurnmlError, ConfigError
from churnml.features.build import build_features
from churnml.features.definitions import CUTOFF
from churnml.io import file_stem, write_table
from churnml.labels import UnlabelledCutoffError
from churnml.uplift._base import row_keys
from churnml.uplift.campaigns import campaign_frame, contact_outcomes, contacts
from churnml.uplift.control import TEXT_CSV, CampaignPlan, plan_campaign, write_plan
from churnml.uplift.drlearner import DRLearner
from churnml.uplift.evaluation import OVERALL, evaluate_campaign
from churnml.uplift.fitted import UpliftFit, add_uplift, fit_bootstrap, read_uplift, save_uplift
from churnml.uplift.flags import fit_group_flag
from churnml.uplift.metrics import uplift_intervals
from churnml.uplift.slearner import SLearner
from churnml.uplift.targeting import TARGETING_VALUE, fallback_targeting
from churnml.uplift.tlearner import TLearner
from churnml.uplift.xlearner import XLearner

LEARNERS = {"s": SLearner, "t": TLearner, "x": XLearner, "dr": DRLearner}
CAMPAIGNS_DIR = "campaigns"
EVALUATION_FILE = "evaluation.csv"
ALL_EVALUATIONS_FILE = "campaign_evaluations.csv"  # every evaluated campaign (the report's)
ALL_OUTCOMES_FILE = "campaign_outcomes.parquet"
OUTCOME_COLUMNS = ["customer_id", "campaign_id", "ts", "arm", "cost", "segment", "score",
                   "retained", "revenue"]
MODEL_FILE = Path("uplift") / "model.json"
MODEL_SHA_TAG = "churnml.uplift.sha256"  # the saved model file, recorded in the trusted store
VALIDATION_FILE = Path("uplift") / "validation.csv"
VALIDATION_PREDICTIONS_FILE = Path("uplift") / "validation_predictions.parquet"
FLAG_GROUPS_FILE = Path("uplift") / "flag_groups.csv"  # measured effect per group (the flag)
TARGETING_FILE = "targeting.parquet"
SCORES_FILE = "scores.parquet"  # the default output of `churnml score`
VALIDATION_SHARE = 0.3  # contacts held out to report the model's Qini before the final fit
__all__ = ["UpliftFit"]  # re-exported: the fitted model lives in churnml.uplift.fitted


def campaign_dir(cfg: Config, campaign_id: str) -> Path:
    """``<output_dir>/campaigns/<id>``: the id (user input) as a safe file stem plus a short
    hash of the id itself, so ``../x`` cannot leave the folder and ``A b`` / ``a-b`` do not
    share one."""
    text = str(campaign_id)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return Path(cfg.output_dir) / CAMPAIGNS_DIR / f"{file_stem(text, 'campaign')}-{digest}"


def experiment_name(cfg: Config) -> str:
    return cfg.uplift.experiment or f"{cfg.name}-campaigns"


# --------------------------------------------------------------------------- plan


def plan(cfg: Config, scores: pd.DataFrame, campaign_id: str, *,
         segments: list[str] | None = None, contact_ts: Any = None,
         log_path: str | Path | None = None) -> tuple[CampaignPlan, dict[str, Path]]:
    """Plan a campaign from ``scores`` with the config's control share, arm, cost and budget;
    write its files under ``campaigns/<id>/`` (and append its log to ``log_path``).

    Checked before anything is written (:mod:`churnml.uplift.control`): the settings, the
    ids, the controls per segment, the campaign id against the folder and the log, and that
    targeting values are not older than the current scores (:func:`check_targeting_age`)."""
    u = check_campaign_settings(**cfg.uplift.model_dump())  # also after flag overrides
    check_targeting_age(cfg, scores)
    result = plan_campaign(
        scores, campaign_id, segments=segments, control_share=u.control_share,
        treatment=u.arm, seed=u.seed, contact_ts=contact_ts, channel=u.channel,
        cost_per_contact=u.cost_per_contact, budget_contacts=u.budget_contacts,
        budget_cost=u.budget_cost, min_control_per_segment=u.min_control_per_segment,
    )
    return result, write_plan(result, campaign_dir(cfg, campaign_id), log_path,
                              escape=cfg.csv_escape_formulas)


def check_targeting_age(cfg: Config, scores: pd.DataFrame,
                        current: str | Path | None = None) -> None:
    """Refuse targeting values (a frame with ``targeting_value``, e.g. ``targeting.parquet``)
    computed at an earlier cutoff than the current scores (``current``, default
    ``<output_dir>/scores.parquet``): they rank customers by a past state. The error names
    both cutoffs."""
    path = Path(current) if current is not None else Path(cfg.output_dir) / SCORES_FILE
    if TARGETING_VALUE not in scores or CUTOFF not in scores or not path.is_file():
        return
    try:
        latest = pd.read_parquet(path, columns=[CUTOFF])[CUTOFF].max()
    except (OSError, ValueError, KeyError) as exc:
        raise ChurnmlError(f"{path}: cannot read the scores' cutoff to check the targeting "
                           f"values against ({type(exc).__name__}: {exc})") from exc
    used = pd.Timestamp(scores[CUTOFF].max())
    if pd.notna(latest) and used < pd.Timestamp(latest):
        raise ChurnmlError(
            f"the targeting values are from cutoff {used} but the current scores ({path}) "
            f"are from cutoff {pd.Timestamp(latest)}: re-run `churnml campaign target` on the "
            "current scores (or pass --scores for the file to plan from)")


# --------------------------------------------------------------------------- evaluate


@dataclass
class CampaignEvaluation:
    campaign_id: str
    table: pd.DataFrame
    outcomes: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None


def evaluate(cfg: Config, data: CustomerData, campaign_id: str, *,
             log_mlflow: bool = True) -> CampaignEvaluation:
    """Realized retention and revenue, treatment vs control, of one campaign whose horizon
    has passed for every contact; written to ``campaigns/<id>/evaluation.csv`` and logged to
    MLflow (metrics of the overall row of each arm, the table as an artifact)."""
    out = contact_outcomes(data, cfg.churn, campaign_id)
    if not out["matured"].all():
        pending = out.loc[~out["matured"], "ts"].max()
        due = pending + pd.Timedelta(days=cfg.churn.horizon_days)
        raise ChurnmlError(
            f"campaign {campaign_id!r}: the horizon ({cfg.churn.horizon_days} days) has not "
            f"passed for {int((~out['matured']).sum())} of {len(out)} contacts; the data must "
            f"reach {due} (evaluate after that date with fresh data)")
    table = evaluate_campaign(out, cfg.uplift.interval_level)
    result = CampaignEvaluation(str(campaign_id), table, out)
    out_dir = Path(cfg.output_dir)
    kept = [c for c in OUTCOME_COLUMNS if c in out]
    merged = {  # every file read and merged before the first write
        "evaluations": (out_dir / ALL_EVALUATIONS_FILE, _replace_rows(
            out_dir / ALL_EVALUATIONS_FILE, table.assign(campaign_id=str(campaign_id)),
            str(campaign_id))),
        "outcomes": (out_dir / ALL_OUTCOMES_FILE, _replace_rows(
            out_dir / ALL_OUTCOMES_FILE,
            out[kept].assign(campaign_id=out["campaign_id"].astype(str)), str(campaign_id))),
    }
    result.files["evaluation"] = write_table(
        table, campaign_dir(cfg, campaign_id) / EVALUATION_FILE)
    for name, (path, rows) in merged.items():
        result.files[name] = write_table(rows, path, escape=False)
    if log_mlflow:
        result.run_id = _log_evaluation(cfg, result)
    return result


def _replace_rows(path: Path, rows: pd.DataFrame, campaign_id: str) -> pd.DataFrame:
    """The all-campaigns file at ``path`` with ``rows`` in place of that campaign's.

    A data table churnml reads back: a CSV is read with every cell as its text (and is
    written without spreadsheet escaping), so other campaigns' rows (ids such as ``007``)
    stay as they were, byte for byte."""
    rows = rows[["campaign_id", *[c for c in rows if c != "campaign_id"]]]
    csv = path.suffix != ".parquet"
    if csv:
        rows = pd.read_csv(io.StringIO(rows.to_csv(index=False)), **TEXT_CSV)
    if path.exists():
        try:
            old = pd.read_csv(path, **TEXT_CSV) if csv else pd.read_parquet(path)
            old = old[old["campaign_id"].astype(str) != campaign_id]
        except (OSError, ValueError, KeyError) as exc:  # pandas' and pyarrow's read errors
            raise ChurnmlError(f"{path}: not a table of evaluated campaigns written by "
                               f"churnml ({type(exc).__name__}: {exc}); move it away to start "
                               "it afresh") from exc
        rows = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    return rows


def _log_evaluation(cfg: Config, ev: CampaignEvaluation) -> str:
    from churnml.training.tracking import (
        key_part,
        log_figure,
        log_metrics,
        log_params,
        log_table,
        start_run,
    )

    with start_run(experiment_name(cfg), run_name=f"evaluate {ev.campaign_id}",
                   tracking_uri=cfg.tracking.uri,
                   tags={"churnml.kind": "campaign_evaluation",
                         "campaign_id": ev.campaign_id}) as run:
        log_params({"campaign_id": ev.campaign_id, "horizon_days": cfg.churn.horizon_days,
                    "contacts": len(ev.outcomes),
                    "interval_level": cfg.uplift.interval_level})
        for _, row in ev.table[ev.table["segment"] == OVERALL].iterrows():
            metrics = {k: v for k, v in row.items()
                       if k not in ("arm", "segment", "retention_interval") and pd.notna(v)}
            log_metrics(metrics, prefix=f"{key_part(row['arm'])}.")  # a name is data
        log_table(ev.table, "campaign_evaluation")
        figure = _score_qini_figure(ev)
        if figure is not None:
            log_figure(figure, "campaign_qini")
        return run.info.run_id


def _score_qini_figure(ev: CampaignEvaluation) -> Any:
    """Qini curve (retention) of the score recorded in the log, with its bootstrap band."""
    from churnml.uplift.metrics import curve_band
    from churnml.uplift.plots import plot_qini_curve

    rows = ev.outcomes
    if "score" not in rows or rows["score"].isna().any():
        return None
    y = rows["retained"].to_numpy(float)
    t = (rows["arm"] != CONTROL_ARM).to_numpy().astype(int)
    if np.unique(y).size < 2 or np.unique(t).size < 2:
        return None
    band = curve_band(y, rows["score"].to_numpy(float), t)
    return plot_qini_curve({"targeting score": band},
                           title=f"Campaign {ev.campaign_id}: Qini of the targeting score")


# --------------------------------------------------------------------------- train


def _learner(cfg: Config) -> Any:
    return make_learner(cfg.uplift)


def make_learner(u: UpliftConfig, **overrides: Any) -> Any:
    """A fresh ``u.learner`` with ``u.params`` (and ``overrides``); on the revenue outcome its
    outcome models use ``u.revenue_objective`` unless the params set
    ``continuous_objective``."""
    params = {**u.params, **overrides}
    if u.outcome == "revenue":
        params.setdefault("continuous_objective", u.revenue_objective)
    try:
        return LEARNERS[u.learner](**params)
    except TypeError as exc:
        raise ConfigError(f"uplift.params: {exc}") from exc


def _campaign_ids(cfg: Config, data: CustomerData) -> list[str]:
    ids = sorted(contacts(data)["campaign_id"].astype(str).unique())
    wanted = cfg.uplift.train_campaigns
    if wanted is None:
        return ids
    unknown = sorted(set(wanted) - set(ids))
    if unknown:
        raise ConfigError(f"uplift.train_campaigns: {unknown} not in the campaigns table "
                          f"(campaigns: {ids})")
    return list(wanted)


def train_uplift(cfg: Config, data: CustomerData, *, log_mlflow: bool = True) -> UpliftFit:
    """Fit ``uplift.learner`` on the matured contacts of ``uplift.train_campaigns`` with the
    outcome ``uplift.outcome``: first on 70 % of the contacts (by a hash of customer and
    campaign id, per arm) to report the held-out Qini, uplift AUC and uplift@30 % with
    bootstrap intervals (``uplift/validation.csv``), then on all, plus the do-not-contact
    flag's evidence: ``uplift.flag_groups`` groups of cross-fitted retention effect with their
    measured effect on retention (``uplift/flag_groups.csv``, :mod:`churnml.uplift.flags`;
    a revenue model brings a retention model to place customers in them) or ``uplift.flag_boot``
    bootstrap refits (``uplift.flag_method``); saves ``uplift/model.json``
    and logs the run to MLflow.

    Order-free: the contacts are put in the order of that hash first and the learners'
    folds follow it, so the same contacts in any row order give the same model. Pooled
    campaigns keep their own propensity (``groups`` = campaign id)."""
    from churnml.training.train import feature_spec

    ids, frames = [], []
    for cid in _campaign_ids(cfg, data):
        try:
            frames.append(campaign_frame(data, cfg.churn, feature_spec(cfg), cid))
            ids.append(cid)
        except UnlabelledCutoffError:
            if cfg.uplift.train_campaigns is not None:  # asked for by name: say why not
                raise
    if not frames:
        raise UnlabelledCutoffError(
            f"no campaign has contacts whose {cfg.churn.horizon_days}-day outcome window has "
            "passed: nothing to learn from yet")
    X = pd.concat([f[0] for f in frames], ignore_index=True)
    log = pd.concat([f[1] for f in frames], ignore_index=True)
    treatment = _treatment(cfg, log)
    keep = log["arm"].isin([CONTROL_ARM, treatment]).to_numpy()
    X, log = X[keep].reset_index(drop=True), log[keep].reset_index(drop=True)
    contact = log["customer_id"].astype(str) + "|" + log["campaign_id"].astype(str)
    keys = row_keys(contact, len(log), cfg.uplift.seed)
    order = np.argsort(keys, kind="stable")
    X, log = X.iloc[order].reset_index(drop=True), log.iloc[order].reset_index(drop=True)
    contact, keys = contact.to_numpy()[order], keys[order]
    y = log[cfg.uplift.outcome].to_numpy(float)
    arm = log["arm"].astype(str).to_numpy()
    groups = log["campaign_id"].astype(str).to_numpy()
    va_mask = (keys % np.uint64(1000)) < np.uint64(round(1000 * VALIDATION_SHARE))
    tr, va = np.flatnonzero(~va_mask), np.flatnonzero(va_mask)
    model = _learner(cfg).fit(X.iloc[tr], arm[tr], y[tr], ids=contact[tr], groups=groups[tr])
    tau = model.predict(X.iloc[va])[treatment].to_numpy()
    validation = validation_table(log.iloc[va], tau, treatment, cfg.uplift.interval_level,
                                  cfg.uplift.validation_boot, cfg.uplift.seed)
    model = _learner(cfg).fit(X, arm, y, ids=contact, groups=groups)
    boots, flag, flag_model = [], None, None
    if cfg.uplift.flag_method == "groups":  # measured on retention: is the customer driven away?
        y_ret = log["retained"].to_numpy(float)
        retention = cfg.uplift.model_copy(update={"outcome": "retained"})
        flag = fit_group_flag(lambda: make_learner(retention), X, arm, y_ret, treatment, keys,
                              cfg.uplift.flag_groups, ids=contact, groups=groups)
        if cfg.uplift.outcome != "retained":
            flag_model = make_learner(retention).fit(X, arm, y_ret, ids=contact, groups=groups)
    else:
        boots = fit_bootstrap(lambda: _learner(cfg), X, arm, y, cfg.uplift.flag_boot,
                              cfg.uplift.seed, groups=groups)
    fit = UpliftFit(model, cfg.uplift.learner, cfg.uplift.outcome, treatment,
                    list(X.columns), ids, len(log), validation, boots, flag, flag_model)
    out = Path(cfg.output_dir)
    fit.files["model"] = save_uplift(fit, out / MODEL_FILE)
    fit.files["validation"] = write_table(validation, out / VALIDATION_FILE)
    if flag is not None:
        fit.files["flag_groups"] = write_table(flag.table(cfg.uplift.flag_level),
                                               out / FLAG_GROUPS_FILE)
    held_out = log.loc[va, ["customer_id", "campaign_id", "arm", "retained", "revenue"]]
    fit.files["validation_predictions"] = write_table(
        held_out.assign(uplift=tau), out / VALIDATION_PREDICTIONS_FILE)
    if log_mlflow:
        fit.run_id = _log_training(cfg, fit)
    return fit


def validation_table(held_out: pd.DataFrame, tau: np.ndarray, treatment: str, level: float,
                     n_boot: int, seed: int) -> pd.DataFrame:
    """Held-out Qini, uplift AUC and uplift@30 % of ``tau`` on retention and on revenue, with
    stratified-bootstrap percentile intervals at ``level``
    (:func:`churnml.uplift.metrics.uplift_intervals`): columns ``outcome, metric, value,
    lower, upper``."""
    t = (held_out["arm"].astype(str).to_numpy() == treatment).astype(int)
    rows = []
    for outcome in ("retained", "revenue"):
        y = held_out[outcome].to_numpy(float)
        iv = uplift_intervals(y, tau, t, n_boot=n_boot, level=level, seed=seed)
        rows += [{"outcome": outcome, "metric": m, "value": r.estimate, "lower": r.lower,
                  "upper": r.upper} for m, r in iv.iterrows()]
    return pd.DataFrame(rows)


def _treatment(cfg: Config, log: pd.DataFrame) -> str:
    arms = sorted(set(log["arm"].astype(str)) - {CONTROL_ARM})
    if cfg.uplift.treatment is not None:
        if cfg.uplift.treatment not in arms:
            raise ConfigError(f"uplift.treatment {cfg.uplift.treatment!r} is not an arm of "
                              f"the campaigns learned from ({arms})")
        return cfg.uplift.treatment
    if len(arms) != 1:
        raise ConfigError(f"the campaigns have {len(arms)} treatment arms {arms}: set "
                          "uplift.treatment to the one to target with")
    return arms[0]


def _log_training(cfg: Config, fit: UpliftFit) -> str:
    import mlflow

    from churnml.training.tracking import log_metrics, log_params, log_table, start_run

    with start_run(experiment_name(cfg), run_name=f"uplift {fit.learner} ({fit.outcome})",
                   tracking_uri=cfg.tracking.uri,
                   tags={"churnml.kind": "uplift_training"}) as run:
        log_params({"learner": fit.learner, "outcome": fit.outcome, "treatment": fit.treatment,
                    "campaigns": ",".join(fit.campaigns), "contacts": fit.n_contacts,
                    **{f"params.{k}": v for k, v in cfg.uplift.params.items()}})
        log_metrics({f"validation.{r.outcome}.{r.metric}{suffix}": value
                     for r in fit.validation.itertuples()
                     for suffix, value in (("", r.value), (".lower", r.lower),
                                           (".upper", r.upper)) if pd.notna(value)})
        log_table(fit.validation, "uplift_validation")
        mlflow.log_artifact(str(fit.files["model"]), artifact_path="uplift")
        mlflow.set_tag(MODEL_SHA_TAG, _sha256(fit.files["model"]))
        return run.info.run_id


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_uplift(cfg: Config, path: str | Path | None = None) -> UpliftFit | None:
    """The model saved by :func:`train_uplift` (None if there is none). The file is
    code-free (JSON and LightGBM text, :mod:`churnml.uplift.fitted`): reading it runs
    nothing, so it needs no trusted store."""
    path = Path(path) if path is not None else Path(cfg.output_dir) / MODEL_FILE
    if not path.exists():
        return None
    return read_uplift(path)


# --------------------------------------------------------------------------- target


def target(cfg: Config, data: CustomerData, scores: pd.DataFrame,
           fit: UpliftFit | None) -> pd.DataFrame:
    """``scores`` with ``uplift``, ``targeting_value``, ``negative_uplift`` and
    ``targeting_basis``: from the uplift model on the features at the scores' cutoff, or —
    without a model — value at risk (the basis column says which)."""
    if fit is None:
        return fallback_targeting(scores)
    from churnml.training.train import feature_spec

    cutoff = pd.Timestamp(scores[CUTOFF].max()) if CUTOFF in scores else None
    if cutoff is None:
        raise ChurnmlError("scores have no cutoff column: cannot build features for targeting")
    feats = build_features(data, cutoff, feature_spec(cfg))
    X = scores[["customer_id"]].merge(feats, on="customer_id", how="left")
    missing = [c for c in fit.features if c not in X]
    if missing:
        raise ChurnmlError(f"the uplift model needs feature(s) {missing[:5]} that the data "
                           "lack; retrain with `churnml campaign train`")
    extra = X[[c for c in fit.features if c not in scores]].set_index(scores.index)
    out = add_uplift(pd.concat([scores, extra], axis=1), fit,
                     cost=cfg.uplift.cost_per_contact, flag_level=cfg.uplift.flag_level)
    return out.drop(columns=list(extra.columns))
