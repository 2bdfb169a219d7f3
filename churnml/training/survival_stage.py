"""Training stage of the time-to-churn model (``survival.enabled``), run by ``churnml train``.

1. :func:`survival_panel`: features at the training cutoffs joined to the durations
   (:func:`churnml.survival.build_survival_panel`, periods of ``survival.period_days``).
2. :func:`survival_backtest`: the rolling origin of the churn model
   (:func:`~churnml.training.backtest.rolling_origin_folds`, same label window) over the
   cutoffs followed for at least the longest score horizon (``max(survival.horizons_days)``,
   so the curves can be checked that far): for each test cutoff ``t`` the models train on
   the earlier cutoffs with their durations *censored at t* (the panel rebuilt with
   ``data_end = t``, so no training duration reads data at or after ``t``) and are scored
   on the customers at risk at ``t``, followed to the end of the data. Candidates:
   :class:`~churnml.survival.DiscreteTimeHazard` (``survival``),
   :class:`~churnml.survival.KaplanMeierBaseline` (``kaplan_meier``) and
   :class:`~churnml.survival.CoxBaseline` (``cox``), all scored by
   :func:`churnml.survival.metrics.survival_scores` on the grid ``1 .. n`` periods
   (``n = survival.grid_periods``, at most the longest training duration of the fold and
   the longest follow-up of its test rows).
3. :func:`fit_hazard`: the hazard model on every training cutoff.
4. :func:`fit_spend`: the spread of spend per period and the Gamma-Gamma population of the
   customers' mean spend at the latest cutoff (:mod:`churnml.survival.spend`), which the
   lifetime-value interval of ``churnml score`` uses.
5. :func:`log_survival` (inside the training run): ``backtest.survival.<model>.<metric>``
   means, per-fold values, the curve grid (``survival_curves``: mean predicted survival per
   model against Kaplan–Meier of the test rows, per fold and period), the spend parameters
   (``survival.spend_cv``, ``survival.spend_q``, ``survival.spend_gamma``,
   ``survival.spend_customers``) and the model,
   registered as ``<name>-survival`` (:func:`survival_model_name`) with alias
   ``challenger``.
6. :func:`promote_survival`: ``champion`` moves to the new version only when the churn/LTV
   pair of the same run was promoted and the hazard model beats Kaplan–Meier, Cox and the
   current survival champion on ``survival.champion_metric`` by more than
   ``tracking.min_improvement`` (the rule of :mod:`churnml.training.champion`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnml.config import Config
from churnml.errors import ConfigError
from churnml.labels import label_window_days
from churnml.survival.durations import CENSOR_DURATION, DURATION, EVENT, TENURE
from churnml.survival.kaplan_meier import kaplan_meier, step_at
from churnml.training.backtest import rolling_origin_folds

TASK = "survival"
MODEL = "survival"  # the hazard model's name in the backtest tables
KAPLAN_MEIER, COX = "kaplan_meier", "cox"
BASELINES = (KAPLAN_MEIER, COX)
SURVIVAL_NAME_SUFFIX = "-survival"
KEYS = ("customer_id", "cutoff")
# metrics where a lower value is better (losses and calibration errors)
LOWER_IS_BETTER = frozenset({"integrated_brier", "integrated_admin_brier", "calibration_ici",
                             "calibration_e50"})
Progress = Callable[[str], None]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of a survival metric is better."""
    return metric not in LOWER_IS_BETTER


def survival_model_name(cfg: Config) -> str:
    """Registered name of the survival model: ``<churn model name minus -churn>-survival``
    (``<name>-survival`` by default), beside ``<name>-churn`` and ``<name>-ltv``."""
    base = str(cfg.tracking.churn_model_name).removesuffix("-churn")
    return f"{base}{SURVIVAL_NAME_SUFFIX}"


@dataclass
class SurvivalTraining:
    """What the survival stage produced."""

    model: Any
    features: list[str]
    metrics: pd.DataFrame  # model, fold, cutoff, rows, <metric>...
    summary: pd.DataFrame  # task, model, metric, mean, std
    curves: pd.DataFrame  # fold, cutoff, period, model, survival (mean predicted / KM)
    calibration: pd.DataFrame  # fold, decile, predicted, observed at t0 (hazard model)
    times: list[float] = field(default_factory=list)
    example: pd.DataFrame | None = None  # feature rows for the logged input example
    spend: Any = None  # churnml.survival.spend.SpendModel fitted at the latest cutoff


def survival_panel(data: Any, cfg: Config, cutoffs: Any, data_end: Any = None) -> pd.DataFrame:
    """Features (the training feature spec) and durations of the customers at risk at
    ``cutoffs``, censored at ``data_end`` (default: the end of the data)."""
    from churnml.survival.durations import build_survival_panel
    from churnml.training.train import PANEL_THREADS, feature_spec

    return build_survival_panel(
        data, cutoffs, feature_spec(cfg), cfg.churn, cfg.survival.period_days,
        threads=PANEL_THREADS, memory_limit=cfg.features.memory_limit, data_end=data_end)


def survival_features(panel: pd.DataFrame) -> list[str]:
    """Model inputs: every feature column plus ``tenure`` (keys and targets dropped)."""
    drop = {*KEYS, DURATION, EVENT, CENSOR_DURATION}
    return [c for c in panel.columns if c not in drop]


def _hazard(cfg: Config, n_periods: int | None) -> Any:
    from churnml.survival.hazard import DiscreteTimeHazard

    t = cfg.training
    params = {k: v for k, v in t.churn_params.items()
              if k in DiscreteTimeHazard().get_params()}
    return DiscreteTimeHazard(n_periods=n_periods, seed=t.seed, n_jobs=t.n_jobs, **params)


def fit_hazard(panel: pd.DataFrame, cfg: Config) -> Any:
    """The hazard model on ``panel``, its grid ``survival.grid_periods`` capped at the longest
    observed duration (later periods follow the tail rule)."""
    longest = int(panel[DURATION].max()) if len(panel) else 0
    n = max(1, min(cfg.survival.grid_periods, longest))
    return _hazard(cfg, n).fit(panel[survival_features(panel)], panel[[DURATION, EVENT]],
                               groups=panel["customer_id"].to_numpy())


def _candidates(train: pd.DataFrame, cfg: Config) -> dict[str, Any]:
    from churnml.survival.cox import CoxBaseline
    from churnml.survival.kaplan_meier import KaplanMeierBaseline

    X, y = train[survival_features(train)], train[[DURATION, EVENT]]
    return {MODEL: fit_hazard(train, cfg), KAPLAN_MEIER: KaplanMeierBaseline().fit(X, y),
            COX: CoxBaseline().fit(X, y)}


def _km_curve(test: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    t, s = kaplan_meier(test[EVENT].to_numpy(bool), test[DURATION].to_numpy(float))
    return step_at(t, s, times)


def _calibration_table(surv_t0: np.ndarray, test: pd.DataFrame, t0: float, fold: int
                       ) -> pd.DataFrame:
    """Predicted survival at ``t0`` against Kaplan–Meier within deciles of predicted risk."""
    q = pd.qcut(pd.Series(1 - surv_t0).rank(method="first"), 10, labels=False)
    rows = []
    for d, idx in pd.Series(np.arange(len(test))).groupby(q.to_numpy()):
        part = test.iloc[idx.to_numpy()]
        t, s = kaplan_meier(part[EVENT].to_numpy(bool), part[DURATION].to_numpy(float))
        rows.append({"fold": fold, "decile": int(d) + 1, "t0": t0,
                     "predicted": float(surv_t0[idx.to_numpy()].mean()),
                     "observed": float(step_at(t, s, [t0])[0])})
    return pd.DataFrame(rows)


def survival_backtest(data: Any, cfg: Config, panel: pd.DataFrame,
                      progress: Progress | None = None) -> SurvivalTraining:
    """Rolling-origin evaluation of the hazard model against Kaplan–Meier and Cox (module
    docstring); ``panel`` is :func:`survival_panel` at every training cutoff."""
    from churnml.survival.metrics import survival_scores

    t, sv = cfg.training, cfg.survival
    need = int(np.ceil(max(sv.horizons_days) / sv.period_days))
    follow = panel.groupby("cutoff")[CENSOR_DURATION].max()
    followed = follow.index[follow >= need]
    if len(followed) == 0:
        raise ConfigError(
            f"survival backtest: no training cutoff is followed for {need} periods of "
            f"{sv.period_days} days (the longest score horizon, {max(sv.horizons_days)} days) "
            f"before the data end (longest follow-up: {int(follow.max())} periods); use more "
            "history or shorter survival.horizons_days")
    panel = panel[panel["cutoff"] <= followed.max()].reset_index(drop=True)
    try:
        folds = rolling_origin_folds(panel["cutoff"], label_window_days(cfg.churn),
                                     t.n_origins, t.origin_step, t.max_train_cutoffs)
    except ValueError as exc:
        raise ConfigError(f"survival backtest: {exc}") from None
    cut = pd.DatetimeIndex(panel["cutoff"])
    metric_rows, curves, calib = [], [], []
    times = np.arange(1.0, cfg.survival.grid_periods + 1)
    for fold in folds:
        origin = cut[fold.test[0]]
        train_cuts = cut[fold.train].unique()
        if progress:
            progress(f"survival fold {fold.fold + 1}/{len(folds)} (test {origin:%Y-%m-%d})")
        train = survival_panel(data, cfg, train_cuts, data_end=origin)
        test = panel.iloc[fold.test].reset_index(drop=True)
        models = _candidates(train, cfg)
        # the grid stops at the model's periods and at the test rows' longest follow-up
        n = max(1, min(len(times), int(models[MODEL].n_periods_),
                       int(test[CENSOR_DURATION].max())))
        grid = times[:n]
        X = test[survival_features(test)]
        observed = _km_curve(test, grid)
        for name, est in models.items():
            surv = np.asarray(est.predict_survival_function(X, grid))
            scores = survival_scores(
                train[EVENT].to_numpy(bool), train[DURATION].to_numpy(float),
                test[EVENT].to_numpy(bool), test[DURATION].to_numpy(float),
                test[CENSOR_DURATION].to_numpy(float), surv, grid)
            metric_rows.append({"model": name, "fold": fold.fold, "cutoff": origin,
                                "rows": len(test), **scores})
            curves.append(pd.DataFrame({"fold": fold.fold, "cutoff": origin, "period": grid,
                                        "model": name, "survival": surv.mean(axis=0)}))
            if name == MODEL:
                calib.append(_calibration_table(surv[:, -1], test, float(grid[-1]),
                                                fold.fold))
        curves.append(pd.DataFrame({"fold": fold.fold, "cutoff": origin, "period": grid,
                                    "model": "observed_km", "survival": observed}))
    metrics = pd.DataFrame(metric_rows)
    names = [c for c in metrics.columns if c not in ("model", "fold", "cutoff", "rows")]
    long = metrics.melt(id_vars=["model"], value_vars=names, var_name="metric").dropna()
    summary = (long.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std"])
               .reset_index().assign(task=TASK)[["task", "model", "metric", "mean", "std"]])
    return SurvivalTraining(model=None, features=survival_features(panel), metrics=metrics,
                            summary=summary, curves=pd.concat(curves, ignore_index=True),
                            calibration=pd.concat(calib, ignore_index=True),
                            times=[float(x) for x in times])


def train_survival(data: Any, cfg: Config, cutoffs: Any,
                   progress: Progress | None = None) -> SurvivalTraining:
    """Panel, backtest and final hazard model on ``cutoffs`` (the churn model's)."""
    from churnml.data.customer_data import CustomerData

    if not isinstance(data, CustomerData):
        raise ConfigError("survival.enabled: the survival model trains on DuckDB tables only "
                          "(not on Spark tables yet); set survival.enabled: false")
    panel = survival_panel(data, cfg, pd.DatetimeIndex(cutoffs))
    result = survival_backtest(data, cfg, panel, progress)
    keep = cfg.training.max_train_cutoffs
    if keep is not None:
        cuts = panel["cutoff"].drop_duplicates().sort_values()
        panel = panel[panel["cutoff"].isin(cuts.iloc[-keep:])]
    result.model = fit_hazard(panel, cfg)
    result.features = survival_features(panel)
    result.example = panel[result.features]
    result.spend = fit_spend(data, cfg, panel)
    return result


def fit_spend(data: Any, cfg: Config, panel: pd.DataFrame) -> Any:
    """The spread of spend of the customers at risk at the latest cutoff of ``panel``
    (:func:`churnml.survival.spend.spend_at_latest_cutoff`, churn look-back)."""
    from churnml.survival.spend import spend_at_latest_cutoff

    return spend_at_latest_cutoff(data.transactions, panel, cfg.survival.period_days,
                                  cfg.churn.lookback_days, TENURE)


SURVIVAL_FILES = {"survival_curves": "survival_curves.csv",
                  "survival_calibration": "survival_calibration.csv",
                  "survival_backtest_metrics": "survival_backtest_metrics.csv"}


def write_survival_outputs(result: SurvivalTraining, out_dir: Any) -> dict[str, Any]:
    """Write the backtest curves, calibration table and metrics (atomically) under
    ``out_dir``; the report's "Time to churn" section reads them."""
    from pathlib import Path

    from churnml.io import write_table

    tables = {"survival_curves": result.curves, "survival_calibration": result.calibration,
              "survival_backtest_metrics": result.metrics}
    return {k: write_table(tables[k], Path(out_dir) / name) for k, name in SURVIVAL_FILES.items()}


def log_survival(result: SurvivalTraining, cfg: Config, prefix: str = "backtest.") -> Any:
    """In the active MLflow run: metrics, per-fold values, curve grid, calibration table and
    the model registered as :func:`survival_model_name` with alias ``challenger``."""
    from churnml.training import tracking as tr

    s = result.summary
    tr.log_metrics({f"{TASK}.{r.model}.{r.metric}": r.mean for r in s.itertuples()},
                   prefix=prefix)
    names = [c for c in result.metrics.columns if c not in ("model", "fold", "cutoff", "rows")]
    for row in result.metrics.itertuples(index=False):
        values = {f"{TASK}.{row.model}.{m}": getattr(row, m) for m in names}
        tr.log_metrics({k: v for k, v in values.items() if pd.notna(v)}, prefix="fold.",
                       step=int(row.fold))
    tr.log_params({"period_days": cfg.survival.period_days,
                   "grid_periods": cfg.survival.grid_periods,
                   "n_periods": int(result.model.n_periods_),
                   "tail_rule": cfg.survival.tail_rule,
                   **(result.spend.params() if result.spend is not None else {})},
                  prefix=f"{TASK}.")
    tr.log_table(result.curves, "survival_curves")
    tr.log_table(result.metrics, "survival_backtest_metrics")
    tr.log_table(result.calibration, "survival_calibration")
    from churnml.survival.person_period import with_time_features

    example = result.example.head(tr.INPUT_EXAMPLE_ROWS)
    example = with_time_features(example, example[TENURE].to_numpy(float), 1)
    return tr.log_model(result.model, example, output=tr.SURVIVAL_OUTPUT,
                        registered_model_name=survival_model_name(cfg), alias=tr.CHALLENGER)


def promote_survival(cfg: Config, logged: Any, result: SurvivalTraining, pair_promoted: bool,
                     run_id: str | None = None) -> tuple[bool, str]:
    """Move ``champion`` to the new survival version when the pair of its run was promoted
    and it beats Kaplan–Meier, Cox and the current survival champion (module docstring).
    Returns ``(promoted, verdict)``; the verdict is tagged on the version and the run."""
    from churnml.training import tracking as tr
    from churnml.training.champion import VERDICT_TAG, summary_value

    metric = cfg.survival.champion_metric
    delta = cfg.tracking.min_improvement
    up = higher_is_better(metric)
    value = summary_value(result.summary, TASK, MODEL, metric)

    def better(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return False
        return a > b + delta if up else a < b - delta

    name, version = logged.name, str(logged.version)
    with tr.tracking(cfg.tracking.uri) as client:
        current = tr._version_by_alias(client, name, tr.CHAMPION)
        champ = None if current is None else tr.run_metric(
            client, current.run_id, f"backtest.{TASK}.{MODEL}.{metric}")
        parts = [f"{b} {_num(summary_value(result.summary, TASK, b, metric))}"
                 for b in BASELINES]
        fails = [b for b in BASELINES
                 if not better(value, summary_value(result.summary, TASK, b, metric))]
        if current is not None and champ is not None and not better(value, champ):
            fails.append(f"champion v{current.version}")
        if not pair_promoted:
            fails.append("the churn/LTV pair of this run (not promoted)")
        promoted = not fails
        verdict = (f"{name} v{version}: {metric} {_num(value)} vs {', '.join(parts)}"
                   + ("" if current is None else f", champion v{current.version} {_num(champ)}")
                   + f" ({'higher' if up else 'lower'} is better, margin {delta:g}): "
                   + ("beats all" if promoted else "does not beat " + ", ".join(fails)))
        client.set_model_version_tag(name, version, VERDICT_TAG, verdict)
        if run_id is not None:
            client.set_tag(run_id, f"{VERDICT_TAG}.{TASK}", verdict)
        if promoted:
            client.set_registered_model_alias(name, tr.CHAMPION, version)
            if tr.CHALLENGER in client.get_model_version(name, version).aliases:
                client.delete_registered_model_alias(name, tr.CHALLENGER)
    return promoted, verdict


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
