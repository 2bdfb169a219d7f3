"""Monitor scored cutoffs: realized and estimated performance, drift, and a retrain signal.

For every cutoff in the score history (:class:`~churnml.monitoring.history.ScoreHistory`):

* **population**: the customers at risk at the cutoff (:func:`churnml.labels.at_risk`, the
  population the model was trained on) minus the *treated*: customers with a campaign
  contact in a treatment arm (not ``control``) in ``[cutoff, cutoff + horizon)``, or given a
  treatment arm in the scores. Their outcome is the campaign's doing, not the model's.
* **estimated** ROC AUC and Brier from the probabilities alone (CBPE,
  :mod:`churnml.monitoring.performance`), recalibrated on the reference's out-of-sample
  outcomes when it holds them, with 95 % intervals — for every cutoff;
* **realized** metrics once ``cutoff + horizon`` is covered by the data: ROC AUC, PR AUC,
  Brier, top-decile lift, calibration table, and the lost-revenue capture of the
  value-at-risk ranking (revenue lost = churned × spend in the horizon before the cutoff,
  :func:`churnml.training.evaluation.revenue_lost`); the same for the naive baselines
  (recency for churn; ``p × prior spend`` and prior spend for value at risk);
* **data checks** first (:mod:`churnml.monitoring.quality`): the input tables over the
  window before the cutoff against the reference's data profile (row and customer counts
  per period, missing and zero shares, categories, scales, distributions);
* **drift**: PSI (:mod:`churnml.monitoring.drift`) of every feature profile, of the churn
  probability and value at risk, and of the segment mix, against the reference (the
  champion's scores of the base as of its last training cutoff).

**Alarms** (:class:`~churnml.monitoring.alarms.Alarm`) carry their cause: a failed data check
is ``data``; realized ROC AUC below the champion's backtest mean by more than
``monitoring.auc_margin``, realized Brier above it by more than ``monitoring.brier_margin``,
or either beyond its estimate's ``monitoring.interval_alarm_level`` interval on the worse
side is ``performance``; a drift statistic above ``monitoring.psi_alarm`` is ``population``
(``value`` for ``value_if_retained``); the value model's checks
(:mod:`churnml.monitoring.value`) are ``value``. A drift or performance alarm that a data
alarm explains is ``data`` too: drift of a feature read from a table with a data alarm at
this cutoff or one of the :data:`ATTRIBUTION_DAYS` before, and drift of the scores or a
performance alarm at a cutoff with a data alarm.
:func:`churnml.monitoring.verdict.decide` turns them into the verdict and the retrain signal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ChurnConfig, MonitoringConfig
from churnml.features.build import build_features
from churnml.features.profile import Profile
from churnml.features.spec import FeatureSpec
from churnml.labels import at_risk, build_labels, label_window_days, observation_end_of
from churnml.monitoring.alarms import Alarm
from churnml.monitoring.drift import drift_table, level, mix_psi
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.performance import CalibrationReference, estimate
from churnml.monitoring.quality import CHECK_COLUMNS, check_quality, data_profile
from churnml.monitoring.value import (
    mean_changes,
    paired_reference,
    paired_spend_alarms,
    paired_spend_shift,
    ratio_alarms,
    shift_alarms,
    shift_limit,
    spend_per_purchase_changes,
    value_metrics,
)
from churnml.monitoring.verdict import Verdict, decide
from churnml.training.evaluation import (
    calibration_table,
    classification_metrics,
    value_at_risk_coverage,
)

ID = "customer_id"
PROBABILITY = "churn_probability"
VAR = "value_at_risk"
RETAINED = "value_if_retained"
SEGMENT = "risk_segment"
CONTROL = "control"
RECENCY = "days_since_last_purchase"
SCORE_COLUMNS = (PROBABILITY, VAR, RETAINED)
VALUE_COLUMNS = (RETAINED,)  # score columns whose drift is the value side's
ATTRIBUTION_DAYS = 365  # a table's data alarm explains its features' drift this long after


@dataclass
class Reference:
    """What the monitored model's scores looked like where it was trained: the scores of
    the base as of its last training cutoff, as profiles, plus its backtest metrics, the
    data profile of the input tables before that cutoff (:func:`~churnml.monitoring.quality.
    data_profile`; None in references made before the data checks: they are skipped),
    ``calibration``: its out-of-sample probabilities with matured outcomes on windows it did
    not train on (None in references made before they were kept: the estimate then takes
    the probabilities as calibrated) and ``value``: the value model's calibration ratios and
    Gini on the latest window (:func:`churnml.monitoring.value.value_metrics`, may be
    empty)."""

    cutoff: pd.Timestamp
    model_version: str
    features: dict[str, Profile]
    scores: dict[str, Profile]
    segments: dict[str, int]
    backtest: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    calibration: CalibrationReference | None = None
    value: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "cutoff": self.cutoff.isoformat(), "model_version": self.model_version,
            "features": self.features, "scores": self.scores, "segments": self.segments,
            "backtest": self.backtest, "data": self.data,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "value": self.value,
        }, indent=1)

    @classmethod
    def from_file(cls, path: str | Path) -> Reference:
        """The reference cached in ``path``; a damaged file is an error naming it."""
        from churnml.errors import ChurnmlError
        from churnml.io import read_json

        raw = read_json(path, "monitoring reference")
        try:
            return cls.from_json(json.dumps(raw))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ChurnmlError(f"{path}: not a monitoring reference ({type(exc).__name__}: "
                               f"{exc}); remove it, it is re-computed") from exc

    @classmethod
    def from_json(cls, text: str) -> Reference:
        raw = json.loads(text)
        calibration = raw.get("calibration")
        return cls(pd.Timestamp(raw["cutoff"]), raw["model_version"], raw["features"],
                   raw["scores"], {k: int(v) for k, v in raw["segments"].items()},
                   {k: float(v) for k, v in raw.get("backtest", {}).items()},
                   raw.get("data"),
                   None if calibration is None else CalibrationReference.from_dict(calibration),
                   {k: float(v) for k, v in (raw.get("value") or {}).items()})


@dataclass
class MonitorResult:
    """Tables of a monitoring run (one row per cutoff / per cutoff and column / per cutoff
    and data check), the ``alarms`` (:class:`~churnml.monitoring.alarms.Alarm`), their
    ``verdict`` (:func:`churnml.monitoring.verdict.decide`) and ``retrain`` (the signal:
    true for a performance or value verdict only)."""

    performance: pd.DataFrame
    drift: pd.DataFrame
    calibration: pd.DataFrame
    alarms: list[Alarm]
    notes: list[str] = field(default_factory=list)
    quality: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHECK_COLUMNS))

    @property
    def verdict(self) -> Verdict:
        return decide(self.alarms)

    @property
    def retrain(self) -> bool:
        return self.verdict.retrain


def segment_counts(scores: pd.DataFrame) -> dict[str, int]:
    if SEGMENT not in scores:
        return {}
    return {str(k): int(v) for k, v in scores[SEGMENT].value_counts().items()}


def treated_customers(data: Any, scores: pd.DataFrame, cutoff: pd.Timestamp,
                      horizon_days: int) -> set[str]:
    """Customers whose outcome window holds a treatment contact (see module docstring)."""
    treated: set[str] = set()
    if "arm" in scores:
        arm = scores["arm"]
        treated |= set(scores.loc[arm.notna() & (arm.astype("str") != CONTROL), ID].astype(str))
    contacts = getattr(data, "campaigns", None)
    if contacts is not None and len(contacts):
        end = cutoff + pd.Timedelta(days=horizon_days)
        hit = (contacts["ts"] >= cutoff) & (contacts["ts"] < end) & (
            contacts["arm"].astype("str") != CONTROL)
        treated |= set(contacts.loc[hit, ID].astype(str))
    return treated


def _baseline_inputs(data: Any, cutoff: pd.Timestamp, churn: ChurnConfig,
                     spec: FeatureSpec) -> pd.DataFrame:
    """Recency and the spend of the horizon before the cutoff, per customer."""
    base = spec.model_copy(update={"groups": ["recency", "monetary"],
                                   "windows_days": [churn.horizon_days], "extra": [],
                                   "exclude": []})
    feats = build_features(data, cutoff, base)
    prior = f"spend_{churn.horizon_days}d"
    keep = [c for c in (ID, RECENCY, prior) if c in feats]
    return feats[keep].rename(columns={prior: "prior_spend"})


def _realized(y: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    p = frame[PROBABILITY].to_numpy(float)
    out = {f"real_{k}": v for k, v in classification_metrics(y, p).items()
           if k in ("roc_auc", "pr_auc", "brier", "top_decile_lift", "base_rate")}
    if RECENCY in frame:
        rec = frame[RECENCY].to_numpy(float)
        rec = np.where(np.isnan(rec), np.nanmax(rec) if np.isfinite(rec).any() else 0.0, rec)
        base = classification_metrics(y, (rec - rec.min()) / max(np.ptp(rec), 1e-12))
        out["recency_roc_auc"] = base["roc_auc"]
        out["recency_top_decile_lift"] = base["top_decile_lift"]
    if "prior_spend" in frame:
        prior = frame["prior_spend"].fillna(0.0).to_numpy(float)
        rankings = {"var": frame[VAR].to_numpy(float) if VAR in frame else None,
                    "p_x_prior": p * np.clip(prior, 0.0, None), "prior": prior}
        for name, score in rankings.items():
            if score is None:
                continue
            cov = value_at_risk_coverage(y, prior, score, shares=(0.1,))
            out[f"{name}_lost_capture_top_10"] = cov["var_coverage_top_10"]
        out["revenue_lost_total"] = cov["revenue_lost_total"]
    return out


def monitor(
    data: Any,
    history: ScoreHistory,
    reference: Reference | None,
    churn: ChurnConfig,
    config: MonitoringConfig,
    spec: FeatureSpec | None = None,
    *,
    data_end: Any = None,
) -> MonitorResult:
    """Monitor every cutoff of ``history`` (module docstring)."""
    spec = spec or FeatureSpec()
    end = observation_end_of(data, data_end)
    window = pd.Timedelta(days=label_window_days(churn))
    perf_rows, drift_rows, calib, checks = [], [], [], []
    alarms: list[Alarm] = []
    notes: list[str] = []
    ref_data = None if reference is None else reference.data
    broken: dict[str, list[pd.Timestamp]] = {}  # table -> cutoffs with a data alarm
    tables = _feature_tables(data, spec, notes) if ref_data else {}
    calibration = None if reference is None else reference.calibration
    paired = _paired_reference(data, reference, config)
    for i, cutoff in enumerate(history.cutoffs()):
        run = history.run(cutoff)
        scores = history.scores(cutoff)
        scores[ID] = scores[ID].astype(str)
        risk = at_risk(data, cutoff, churn)
        treated = treated_customers(data, scores, cutoff, churn.horizon_days)
        pop = scores[scores[ID].isin(set(risk[ID].astype(str))) & ~scores[ID].isin(treated)]
        row: dict[str, Any] = {
            "cutoff": cutoff, "model_version": run.get("model_version", ""),
            "scored": len(scores), "at_risk": int(len(risk)), "treated_excluded": len(treated),
            "matured": bool(cutoff + window <= end),
            # the model learned from these outcomes: realized metrics would be optimistic
            "in_training_labels": bool(reference is not None
                                       and cutoff < reference.cutoff + window),
        }
        row.update(estimate(pop[PROBABILITY].to_numpy(float), config.n_draws,
                            seed=config.seed + i, reference=calibration,
                            alarm_level=config.interval_alarm_level,
                            period_error=None if calibration is None
                            else calibration.period_error(at=cutoff)))
        data_alarms: list[Alarm] = []
        if ref_data:
            current = data_profile(data, cutoff, int(ref_data["window_days"]),
                                   int(ref_data["period_days"]),
                                   column_days=int(ref_data["period_days"]))
            table, data_alarms = check_quality(
                ref_data, current, cutoff, psi_alarm=config.psi_alarm,
                volume_ratio=config.volume_ratio, share_margin=config.share_margin,
                acknowledge=config.acknowledged)
            checks.append(table)
            alarms += data_alarms
            for a in data_alarms:
                broken.setdefault(a.column.split(".", 1)[0], []).append(cutoff)
        row["data_alarms"] = len(data_alarms)
        if row["matured"] and len(pop):
            labels = build_labels(data, cutoff, churn)
            labels[ID] = labels[ID].astype(str)
            frame = pop.merge(labels[[ID, "churned", "ltv"]], on=ID, how="inner")
            frame = frame.merge(_baseline_inputs(data, cutoff, churn, spec).astype({ID: str}),
                                on=ID, how="left")
            y = frame["churned"].to_numpy(int)
            row.update(_realized(y, frame))
            row.update(value_metrics(frame, prefix="real_"))
            table = calibration_table(y, frame[PROBABILITY].to_numpy(float))
            calib.append(table.assign(cutoff=cutoff))
            real = row.get("real_roc_auc", np.nan)
            row["auc_within_interval"] = bool(
                row["est_roc_auc_low"] <= real <= row["est_roc_auc_high"])
            row["brier_within_interval"] = bool(
                row["est_brier_low"] <= row.get("real_brier", np.nan) <= row["est_brier_high"])
            _performance_alarms(row, reference, config, alarms, bool(data_alarms))
            if calibration is not None:  # label noise alone is no interval to alarm on
                alarms += _on_data(_interval_alarms(row), bool(data_alarms))
            if reference is not None:
                found: list[Alarm] = []
                ratio_alarms(row, reference.value, config.value_ratio_margin, found)
                alarms += _on_data(found, bool(data_alarms))
        perf_rows.append(row)
        if reference is not None:
            recent = {t for t, days in broken.items() if any(
                cutoff - pd.Timedelta(days=ATTRIBUTION_DAYS) < d <= cutoff for d in days)}
            drift_rows += _drift_rows(cutoff, history, scores, reference, config, alarms,
                                      _Explained(recent, tables, bool(data_alarms)))
            alarms += _on_data(_value_shift(row, history, scores, reference, config)
                               + _paired_spend(row, data, paired, config),
                               bool(data_alarms) or "transactions" in recent)
    if reference is None:
        notes.append("no reference (the champion's training scores): drift not computed")
    else:
        if not ref_data:
            notes.append("the reference has no data profile (made before the data checks): "
                         "data checks skipped; remove the cached reference.json to rebuild it")
        if calibration is None:
            notes.append("the reference holds no out-of-sample outcomes (made before they were "
                         "kept, or no backtest predictions beside the model): the estimates "
                         "take the probabilities as calibrated, their intervals reflect label "
                         "noise only")
        elif len(calibration.cutoffs) < 2:
            notes.append("the calibration reference has one window: the estimates' intervals "
                         "leave out how calibration moves between periods")
    if seen := [f"{r['cutoff']:%Y-%m-%d}" for r in perf_rows if r["in_training_labels"]]:
        notes.append(f"cutoff(s) {', '.join(seen)} lie before the end of the training label "
                     "window: the model saw those outcomes, realized metrics are optimistic")
    if treated_count := sum(r["treated_excluded"] for r in perf_rows):
        notes.append(f"{treated_count:,} treated customer-cutoffs (campaign contacts in a "
                     "treatment arm within the horizon) excluded from realized churn metrics")
    perf = pd.DataFrame(perf_rows)
    drift = pd.DataFrame(drift_rows, columns=["cutoff", "kind", "column", "psi", "level",
                                              "exempt"])
    calibration = pd.concat(calib, ignore_index=True) if calib else pd.DataFrame()
    quality = (pd.concat(checks, ignore_index=True) if checks
               else pd.DataFrame(columns=CHECK_COLUMNS))
    return MonitorResult(perf, drift, calibration, alarms, notes, quality)


@dataclass(frozen=True)
class _Explained:
    """What a cutoff's data alarms explain: features read from ``tables`` (per
    ``feature_tables``), and the scores when the cutoff itself has a data alarm."""

    tables: set[str]
    feature_tables: Mapping[str, set[str]]
    cutoff_broken: bool

    def cause(self, kind: str, column: str) -> str:
        if kind == "feature":
            return "data" if self.feature_tables.get(column, set()) & self.tables else (
                "population")
        return "data" if self.cutoff_broken else "population"


def _feature_tables(data: Any, spec: FeatureSpec, notes: list[str]) -> dict[str, set[str]]:
    """The tables each feature reads; when the spec cannot be resolved against the data,
    none (drift is then never attributed to a data alarm) and a note says so."""
    from churnml.monitoring.quality import model_feature_tables

    try:
        return model_feature_tables(data, spec)
    except Exception as exc:  # noqa: BLE001 - the data alarms stand; only attribution is lost
        notes.append(f"feature sources unknown ({type(exc).__name__}: {exc}): feature drift "
                     "is not attributed to data alarms")
        return {}


def _performance_alarms(row: dict[str, Any], reference: Reference | None,
                        config: MonitoringConfig, alarms: list[Alarm],
                        data_broken: bool = False) -> None:
    if reference is None:
        return
    cutoff = row["cutoff"]
    cause, note = ("data", " (on data with a data alarm)") if data_broken else (
        "performance", "")
    auc, ref_auc = row.get("real_roc_auc", np.nan), reference.backtest.get("roc_auc", np.nan)
    if np.isfinite(auc) and np.isfinite(ref_auc) and auc < ref_auc - config.auc_margin:
        alarms.append(Alarm(cause, cutoff, "realized_auc",
                            f"realized ROC AUC {auc:.3f} is below the backtest's "
                            f"{ref_auc:.3f} by more than {config.auc_margin}{note}",
                            "roc_auc", float(auc), float(ref_auc - config.auc_margin)))
    brier, ref_brier = row.get("real_brier", np.nan), reference.backtest.get("brier", np.nan)
    if np.isfinite(brier) and np.isfinite(ref_brier) and brier > ref_brier + config.brier_margin:
        alarms.append(Alarm(cause, cutoff, "realized_brier",
                            f"realized Brier {brier:.3f} is above the backtest's "
                            f"{ref_brier:.3f} by more than {config.brier_margin}{note}",
                            "brier", float(brier), float(ref_brier + config.brier_margin)))


def _on_data(found: list[Alarm], data_broken: bool) -> list[Alarm]:
    """``found``, with cause ``data`` when the cutoff's input has a data alarm."""
    if not data_broken:
        return found
    return [replace(a, cause="data", text=f"{a.text} (on data with a data alarm)")
            for a in found]


def _interval_alarms(row: dict[str, Any]) -> list[Alarm]:
    """A realized value beyond its estimate's alarm interval on the worse side: the
    calibration the estimate rests on no longer holds, or P(churn | features) changed."""
    alarms: list[Alarm] = []
    auc, low = row.get("real_roc_auc", np.nan), row["est_roc_auc_alarm_low"]
    if np.isfinite(auc) and np.isfinite(low) and auc < low:
        alarms.append(Alarm("performance", row["cutoff"], "estimate_interval",
                            f"realized ROC AUC {auc:.3f} is below its estimate "
                            f"{row['est_roc_auc']:.3f} (interval bound {low:.3f})",
                            "roc_auc", auc, low))
    brier, high = row.get("real_brier", np.nan), row["est_brier_alarm_high"]
    if np.isfinite(brier) and np.isfinite(high) and brier > high:
        alarms.append(Alarm("performance", row["cutoff"], "estimate_interval",
                            f"realized Brier {brier:.3f} is above its estimate "
                            f"{row['est_brier']:.3f} (interval bound {high:.3f})",
                            "brier", brier, high))
    return alarms


def _value_shift(row: dict[str, Any], history: ScoreHistory, scores: pd.DataFrame,
                 reference: Reference, config: MonitoringConfig) -> list[Alarm]:
    """Relative change of the mean value if retained and of the spend per purchase against
    the reference (:mod:`churnml.monitoring.value`), into ``row``; returns the alarms."""
    from churnml.features.profile import profile_frame

    changes: dict[str, tuple[float, float]] = {}
    if RETAINED in scores:
        changes.update({f"mean {k}": (v, 0.0) for k, v in mean_changes(
            reference.scores, profile_frame(scores, [RETAINED]), [RETAINED]).items()})
    changes.update(spend_per_purchase_changes(reference.features,
                                              history.profile(row["cutoff"])))
    for name, (change, noise) in changes.items():
        row[f"{name.replace(' ', '_')}_change"] = change
        row[f"{name.replace(' ', '_')}_limit"] = shift_limit(config.value_shift_alarm, noise)
    alarms: list[Alarm] = []
    shift_alarms(row["cutoff"], changes, config.value_shift_alarm, alarms)
    return alarms


def _paired_reference(data: Any, reference: Reference | None, config: MonitoringConfig
                      ) -> dict[int, tuple[float, float, int]] | None:
    """The within-customer order value change on the reference windows
    (:func:`churnml.monitoring.value.paired_reference`); None when switched off or there is
    no reference or no transactions."""
    tx = getattr(data, "transactions", None)
    if config.spend_change_z is None or reference is None or tx is None or not len(tx):
        return None
    return paired_reference(tx, reference.cutoff, config.spend_change_windows_days,
                            config.spend_change_earlier_days)


def _paired_spend(row: dict[str, Any], data: Any,
                  paired: dict[int, tuple[float, float, int]] | None,
                  config: MonitoringConfig) -> list[Alarm]:
    """The within-customer order value change at the row's cutoff against ``paired`` (the
    reference's), into ``row``; returns the alarms."""
    alarms: list[Alarm] = []
    if paired is None or config.spend_change_z is None:
        return alarms
    current = {w: paired_spend_shift(data.transactions, [row["cutoff"]], w,
                                     config.spend_change_earlier_days) for w in paired}
    row.update(paired_spend_alarms(row["cutoff"], current, paired, config.spend_change_z,
                                   config.value_shift_alarm, config.spend_change_earlier_days,
                                   alarms))
    return alarms


def reference_outcomes(frame: pd.DataFrame
                       ) -> tuple[CalibrationReference | None, dict[str, float]]:
    """The calibration reference (one window per ``cutoff``) and the value metrics of the
    latest window, of out-of-sample predictions with matured labels (``cutoff``,
    ``churn_probability``, ``churned``, and ``ltv`` with the value columns when there):
    what :class:`Reference` keeps of its reference windows."""
    frame = frame.dropna(subset=[PROBABILITY, "churned"])
    if frame.empty:
        return None, {}
    cutoffs = pd.to_datetime(frame["cutoff"])
    windows = [CalibrationReference.from_labels(part[PROBABILITY], part["churned"],
                                                f"{cutoff:%Y-%m-%d}")
               for cutoff, part in frame.groupby(cutoffs, sort=True)]
    last = frame[cutoffs == cutoffs.max()]
    value = value_metrics(last) if "ltv" in frame else {}
    return (CalibrationReference.combine(windows),
            {k: v for k, v in value.items() if np.isfinite(v)})


def _drift_rows(cutoff: pd.Timestamp, history: ScoreHistory, scores: pd.DataFrame,
                reference: Reference, config: MonitoringConfig, alarms: list[Alarm],
                explained: _Explained | None = None) -> list[dict[str, Any]]:
    from churnml.features.profile import profile_frame

    rows = []
    current_scores = profile_frame(scores, [c for c in SCORE_COLUMNS if c in scores])
    sets = (("feature", reference.features, history.profile(cutoff)),
            ("score", reference.scores, current_scores))
    for kind, ref, cur in sets:
        for r in drift_table(ref, cur):
            rows.append({"cutoff": cutoff, "kind": kind, "column": r["column"], "psi": r["psi"]})
    if reference.segments:
        rows.append({"cutoff": cutoff, "kind": "segment_mix", "column": SEGMENT,
                     "psi": mix_psi(reference.segments, segment_counts(scores))})
    for r in rows:
        r["level"] = level(r["psi"], config.psi_warn, config.psi_alarm)
        r["exempt"] = r["kind"] == "feature" and any(fnmatch(r["column"], pattern)
                                                     for pattern in config.age_features)
        if r["exempt"]:
            r["level"] = f"{r['level']} (age)" if r["level"] != "ok" else "ok"
        if r["level"] == "alarm":
            cause = explained.cause(r["kind"], r["column"]) if explained else "population"
            if cause == "population" and r["kind"] == "score" and r["column"] in VALUE_COLUMNS:
                cause = "value"
            why = " (its input has a data alarm)" if cause == "data" else ""
            alarms.append(Alarm(cause, cutoff, "psi",
                                f"{r['kind']} {r['column']} drifted (PSI {r['psi']:.3f} > "
                                f"{config.psi_alarm}){why}", r["column"], float(r["psi"]),
                                config.psi_alarm))
    return rows


MONITOR_FILES = {"performance": "performance.csv", "drift": "drift.csv",
                 "calibration": "calibration.csv", "quality": "quality.csv",
                 "signal": "signal.json"}


def monitor_outputs(folder: str | Path) -> Any:
    """The :class:`~churnml.outputs.OutputSet` of a monitor run: :data:`MONITOR_FILES` under
    ``folder`` (its journal there too); ``prepare()`` it before the work."""
    from churnml.outputs import OutputSet

    folder = Path(folder)
    return OutputSet({k: folder / v for k, v in MONITOR_FILES.items()}, journal_dir=folder)


def write_monitor_outputs(result: MonitorResult, folder: str | Path,
                          outputs: Any = None) -> dict[str, Path]:
    """``performance.csv``, ``drift.csv``, ``calibration.csv``, ``quality.csv`` (the data
    checks) and ``signal.json`` (:func:`signal`) under ``folder``, staged and committed as
    one unit (a kill leaves the previous run's files or this run's, never a mix;
    :class:`~churnml.outputs.OutputSet`)."""
    from churnml.io import write_table

    outputs = outputs or monitor_outputs(folder)
    outputs.check()
    tables = {"performance": result.performance, "drift": result.drift,
              "calibration": result.calibration, "quality": result.quality}
    with outputs.locked():
        outputs.recover()
        try:
            for name, table in tables.items():
                write_table(table, outputs.stage(name), fmt="csv")
            outputs.stage("signal").write_text(json.dumps(signal(result), indent=1))
        except BaseException:
            outputs.abort()
            raise
        return outputs.commit(["performance", "drift", "calibration", "quality", "signal"])


def signal(result: MonitorResult) -> dict[str, Any]:
    """``signal.json``: the verdict, its action, ``retrain`` (true for a performance or value
    verdict only), the alarms grouped by cause with their top evidence, and the notes."""
    return {**result.verdict.to_dict(), "notes": result.notes}


def summarise(result: MonitorResult) -> pd.DataFrame:
    """The printed table: per cutoff, estimated vs realized AUC and Brier and max drift."""
    perf = result.performance
    if perf.empty:
        return perf
    cols = ["cutoff", "matured", "at_risk", "est_roc_auc", "real_roc_auc",
            "recency_roc_auc", "est_brier", "real_brier"]
    out = perf[[c for c in cols if c in perf]].copy()
    out["matured"] = np.where(out["matured"], "yes", "no")
    if not result.drift.empty:  # age features (exempt from alarms) apart: no contradiction
        exempt = (result.drift["exempt"].astype(bool) if "exempt" in result.drift
                  else result.drift["level"].astype(str).str.endswith("(age)"))
        for rows, names in ((result.drift[~exempt], ("most_drifted", "max_psi")),
                            (result.drift[exempt], ("", "max_psi_age_exempt"))):
            worst = rows.sort_values("psi", ascending=False).groupby("cutoff").head(1)
            keep = {"psi": names[1]} | ({"column": names[0]} if names[0] else {})
            out = out.merge(worst[["cutoff", *keep]].rename(columns=keep), on="cutoff",
                            how="left")
    if not result.quality.empty:
        failed = result.quality[result.quality["level"] == "alarm"].groupby("cutoff").size()
        out["data_alarms"] = out["cutoff"].map(failed).fillna(0).astype(int)
    out["cutoff"] = pd.to_datetime(out["cutoff"]).dt.strftime("%Y-%m-%d %H:%M").str.removesuffix(
        " 00:00")
    return out


def metrics_by_cutoff(result: MonitorResult) -> Mapping[pd.Timestamp, dict[str, float]]:
    """Numeric metrics per cutoff (for MLflow, the cutoff as step)."""
    out: dict[pd.Timestamp, dict[str, float]] = {}
    for row in result.performance.to_dict("records"):
        out[row["cutoff"]] = {k: float(v) for k, v in row.items()
                              if isinstance(v, int | float | np.number) and not isinstance(v, bool)
                              and np.isfinite(v)}
    from churnml.training.tracking import key_part

    for row in result.drift.to_dict("records"):  # columns and segments are named by users
        key = f"psi.{key_part(row['kind'])}.{key_part(row['column'])}"
        out.setdefault(row["cutoff"], {})[key] = float(row["psi"])
    return out
