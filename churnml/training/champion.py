"""Champion rule: a new churn/LTV pair becomes champion only if each model beats both the
current champion and its naive baseline on the configured backtest metric.

For a task (``churn``: the recency baseline; ``ltv``: the last-value baseline) with metric
``m`` (backtest mean over folds) and ``d = tracking.min_improvement``, the candidate
*qualifies* when

    better(m_candidate, m_baseline) and (no champion or better(m_candidate, m_champion)),
    better(a, b) = a > b + d  (higher is better)   or   a < b - d  (losses: Brier, log loss,
    ECE, MAE, RMSE, decile MAPE).

Against the baseline, ``tracking.promotion_rule`` chooses how "better" is read:

* ``strict``: ``better(m_candidate, m_baseline)`` on the backtest means, as above.
* ``paired`` (default): the per-fold differences ``d_f = s (m_candidate,f - m_baseline,f)``
  (``s = +1`` if higher is better, else ``-1``) over the folds both were scored on; the
  candidate holds up unless it is worse by more than the folds' spread,
  ``mean(d) < -k sd(d) - d_min`` with ``k = tracking.promotion_tolerance_sd`` (sd with
  ``n - 1``). A backtest means over a handful of folds whose spread exceeds the margin
  (e.g. ROC AUC 0.876 vs recency 0.887, folds +-0.02) is noise, not a loss. With fewer than
  two paired folds the strict rule applies.

Against the champion the strict rule always applies (no swap on noise). The pair is promoted
when both tasks qualify, else neither (both stay ``challenger``); every verdict names the
numbers. :func:`decide_pair` is pure (backtest tables in, verdicts out);
:func:`promote_pair` applies it to a store: verdicts as tags on the run and the versions,
then :func:`~churnml.training.tracking.set_champions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from churnml.training.backtest import higher_is_better

TASKS = ("churn", "ltv")
BASELINES = {"churn": "recency", "ltv": "last_value"}  # backtest model names
VERDICT_TAG = "churnml.promotion"  # on each model version; on the run: churnml.promotion.<task>
BACKTEST_PREFIX = "backtest."
RULES = ("paired", "strict")
Rule = Literal["paired", "strict"]


@dataclass(frozen=True)
class Paired:
    """Per-fold differences candidate - baseline, signed so that positive is better."""

    folds: int
    mean: float
    sd: float

    @classmethod
    def of(cls, folds: pd.DataFrame | None, task: str, metric: str,
           higher: bool) -> Paired | None:
        """From a per-fold metrics table (``model, fold, <metric>``); None with fewer than
        two folds scored for both the candidate (model ``task``) and its baseline."""
        if folds is None or metric not in folds:
            return None
        wide = folds.pivot_table(index="fold", columns="model", values=metric, aggfunc="first")
        if task not in wide or BASELINES[task] not in wide:
            return None
        diff = (wide[task] - wide[BASELINES[task]]).dropna() * (1 if higher else -1)
        if len(diff) < 2:
            return None
        return cls(len(diff), float(diff.mean()), float(diff.std(ddof=1)))


@dataclass(frozen=True)
class Verdict:
    """One model's standing against its baseline and the champion (values: backtest means)."""

    task: str
    name: str
    version: str
    metric: str
    higher_is_better: bool
    value: float | None
    baseline: str
    baseline_value: float | None
    champion_version: str | None = None
    champion_value: float | None = None
    min_delta: float = 0.0
    rule: Rule = "strict"
    paired: Paired | None = None
    tolerance_sd: float = 1.0

    @property
    def _paired(self) -> bool:
        return self.rule == "paired" and self.paired is not None

    def _better(self, other: float | None) -> bool:
        if self.value is None:
            return False
        if other is None:
            return True
        if self.higher_is_better:
            return self.value > other + self.min_delta
        return self.value < other - self.min_delta

    @property
    def beats_baseline(self) -> bool:
        """Holds up against the baseline: strictly better (rule ``strict``), or not worse by
        more than the folds' spread (rule ``paired``, module docstring)."""
        if self.value is None or self.baseline_value is None:
            return False
        if self._paired:
            p = self.paired
            return bool(p.mean >= -self.tolerance_sd * p.sd - self.min_delta)
        return self._better(self.baseline_value)

    @property
    def beats_champion(self) -> bool:
        return self.champion_version is None or self._better(self.champion_value)

    @property
    def qualifies(self) -> bool:
        return self.beats_baseline and self.beats_champion

    @property
    def text(self) -> str:
        """E.g. ``churnml-churn v3: roc_auc 0.8760 vs recency 0.8870, champion v2 0.8700
        (higher is better): does not beat the recency baseline``."""
        direction = "higher" if self.higher_is_better else "lower"
        champion = ("no champion" if self.champion_version is None
                    else f"champion v{self.champion_version} {_num(self.champion_value)}")
        if self.value is None:
            why = f"no backtest {self.metric}"
        elif self.baseline_value is None:
            why = f"the {self.baseline} baseline has no backtest {self.metric} to beat"
        elif not self.beats_baseline:
            why = (f"worse than the {self.baseline} baseline by more than the folds' spread"
                   if self._paired else f"does not beat the {self.baseline} baseline")
        elif not self.beats_champion:
            why = f"does not beat champion v{self.champion_version}"
        elif self._paired and not self._better(self.baseline_value):
            why = (f"within the folds' noise of the {self.baseline} baseline"
                   + ("" if self.champion_version is None else
                      f", beats champion v{self.champion_version}"))
        else:
            why = "beats both"
        paired = ""
        if self._paired:
            p = self.paired
            paired = (f"; paired over {p.folds} folds: mean difference {p.mean:+.4f}, sd "
                      f"{p.sd:.4f}, tolerance {self.tolerance_sd:g} sd")
        return (f"{self.name} v{self.version}: {self.metric} {_num(self.value)} vs "
                f"{self.baseline} {_num(self.baseline_value)}, {champion} ({direction} is "
                f"better, margin {self.min_delta:g}{paired}): {why}")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class PairDecision:
    """Verdicts of both tasks and whether the pair is promoted."""

    verdicts: dict[str, Verdict]
    blocked: str | None = None  # why the pair may not replace the champion at all

    @property
    def promote(self) -> bool:
        return self.blocked is None and all(v.qualifies for v in self.verdicts.values())

    @property
    def message(self) -> str:
        lines = [v.text for v in self.verdicts.values()]
        if self.blocked is not None:
            return f"registered as challenger (pair not promoted: {self.blocked}): " \
                + "; ".join(lines)
        if self.promote:
            return "promoted to champion (pair): " + "; ".join(lines)
        failed = [v.name for v in self.verdicts.values() if not v.qualifies]
        return (f"registered as challenger (pair not promoted: {', '.join(failed)} did not "
                "qualify): " + "; ".join(lines))


def summary_value(summary: pd.DataFrame, task: str, model: str, metric: str) -> float | None:
    """Backtest mean of ``model`` and ``metric`` for ``task`` in a summary table (columns
    ``task, model, metric, mean``); None when absent or NaN."""
    rows = summary[(summary["task"] == task) & (summary["model"] == model)
                   & (summary["metric"] == metric)]
    if rows.empty or pd.isna(rows["mean"].iloc[0]):
        return None
    return float(rows["mean"].iloc[0])


def decide_pair(
    summary: pd.DataFrame,
    metrics: Mapping[str, str],
    candidates: Mapping[str, tuple[str, str]],
    champions: Mapping[str, tuple[str, float | None]] | None = None,
    min_delta: float = 0.0,
    rule: Rule = "strict",
    folds: pd.DataFrame | None = None,
    tolerance_sd: float = 1.0,
) -> PairDecision:
    """Verdicts for ``candidates`` (``{task: (name, version)}``) from the candidate run's
    backtest ``summary``, the champion metric per task (``metrics``) and the current
    champions ``{task: (version, backtest value or None)}`` (missing task: no champion).
    ``rule`` ``paired`` reads the per-fold metrics ``folds`` (``model, fold, <metric>``,
    :attr:`~churnml.training.backtest.BacktestResult.metrics`; module docstring)."""
    if rule not in RULES:
        raise ValueError(f"promotion rule {rule!r}: one of {RULES}")
    champions = champions or {}
    verdicts = {}
    for task in TASKS:
        name, version = candidates[task]
        metric = metrics[task]
        higher = higher_is_better(metric)
        champion_version, champion_value = champions.get(task, (None, None))
        verdicts[task] = Verdict(
            task=task, name=name, version=str(version), metric=metric,
            higher_is_better=higher, rule=rule, tolerance_sd=tolerance_sd,
            paired=Paired.of(folds, task, metric, higher) if rule == "paired" else None,
            value=summary_value(summary, task, task, metric),
            baseline=BASELINES[task],
            baseline_value=summary_value(summary, task, BASELINES[task], metric),
            champion_version=None if champion_version is None else str(champion_version),
            champion_value=champion_value, min_delta=min_delta,
        )
    return PairDecision(verdicts)


def promote_pair(
    summary: pd.DataFrame,
    metrics: Mapping[str, str],
    candidates: Mapping[str, tuple[str, str]],
    tracking_uri: str,
    run_id: str | None = None,
    min_delta: float = 0.0,
    rule: Rule = "strict",
    folds: pd.DataFrame | None = None,
    tolerance_sd: float = 1.0,
    lineage: Mapping[str, str] | None = None,
    across_configs: bool = False,
) -> PairDecision:
    """Judge ``candidates`` against the champion pair in the store (values from the
    champions' runs, ``backtest.<task>.<metric>``) and their baselines, record the verdicts
    as tags (run: ``churnml.promotion.<task>``; version: ``churnml.promotion``) and move both
    ``champion`` aliases if the pair qualifies (:func:`set_champions`).

    With the candidates' ``lineage`` (:func:`churnml.training.lineage.lineage`): a champion
    whose run recorded another lineage (data source, churn definition or features: another
    config sharing the name) is not replaced unless ``across_configs``
    (``tracking.promote_across_configs``); the verdict names the differing parts."""
    from mlflow.entities import RunTag

    from churnml.training import tracking as tr

    with tr.tracking(tracking_uri) as client:
        champions: dict[str, tuple[str, float | None]] = {}
        try:
            pair = tr.resolve_pair(candidates["churn"][0], candidates["ltv"][0], tr.CHAMPION,
                                   tracking_uri, client)
        except LookupError:
            pair = None
        if pair is not None:
            for task, mv in (("churn", pair.churn), ("ltv", pair.ltv)):
                key = f"{BACKTEST_PREFIX}{task}.{metrics[task]}"
                champions[task] = (str(mv.version), tr.run_metric(client, mv.run_id, key))
        decision = decide_pair(summary, metrics, candidates, champions, min_delta, rule,
                               folds, tolerance_sd)
        if pair is not None and lineage is not None and not across_configs:
            blocked = foreign_champion(client.get_run(pair.churn.run_id).data.tags, lineage,
                                       f"{pair.churn.name} v{pair.churn.version}")
            if blocked is not None:
                decision = PairDecision(decision.verdicts, blocked)
        run_tags = {VERDICT_TAG: "promoted" if decision.promote else "challenger"}
        for task, verdict in decision.verdicts.items():
            name, version = candidates[task]
            client.set_model_version_tag(name, str(version), VERDICT_TAG, verdict.text)
            run_tags[f"{VERDICT_TAG}.{task}"] = verdict.text
        if decision.blocked is not None:
            run_tags[f"{VERDICT_TAG}.blocked"] = decision.blocked
        if run_id is not None:  # one store transaction
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in run_tags.items()])
        if decision.promote:
            tr.set_champions(client, candidates)
    return decision


SCORE_CHALLENGER = "churnml score --alias challenger"  # the command a no-champion message names


def no_champion_hint(client: Any, churn_name: str, ltv_name: str, alias: str) -> str | None:
    """Why no pair holds ``alias`` and how to score anyway, from the latest ``challenger``
    pair's run: its verdicts (tags ``churnml.promotion.<task>``, with the backtest numbers
    of each model and its baseline) and :data:`SCORE_CHALLENGER`. None when ``alias`` is
    ``challenger`` itself or no version holds ``challenger``."""
    from churnml.training.tracking import CHALLENGER

    if alias == CHALLENGER:
        return None
    try:
        aliases = client.get_registered_model(churn_name).aliases
    except Exception:  # noqa: BLE001 - no such model: the caller's message says so
        return None
    if CHALLENGER not in aliases:
        return None
    mv = client.get_model_version_by_alias(churn_name, CHALLENGER)
    tags = client.get_run(mv.run_id).data.tags
    verdicts = [tags[f"{VERDICT_TAG}.{task}"] for task in TASKS
                if f"{VERDICT_TAG}.{task}" in tags]
    why = ("; ".join(verdicts) if verdicts
           else "no promotion verdict was recorded for its run")
    strict = not verdicts or any("; paired over" not in v for v in verdicts)
    return (f"no {churn_name}/{ltv_name} pair has become {alias!r}: the latest pair "
            f"({churn_name} v{mv.version}, run {mv.run_id}) stayed challenger because its "
            f"backtest did not pass the champion rule ({why}). To score with it anyway: "
            f"`{SCORE_CHALLENGER}` (or scoring.model_alias: challenger in the config)"
            + ("; to let a model within the folds' noise of its baseline become champion, "
               "retrain with tracking.promotion_rule: paired" if strict else ""))


LINEAGE_PARTS = ("data_hash", "churn", "features")  # what tells two configs apart


def foreign_champion(champion_tags: Mapping[str, str], lineage: Mapping[str, str],
                     champion: str) -> str | None:
    """Why a champion (its run's tags) belongs to another config than ``lineage``, or None
    when the recorded lineage matches (or the champion predates lineage tags)."""
    from churnml.training.lineage import trained_lineage

    theirs = trained_lineage(champion_tags)
    differ = [p for p in LINEAGE_PARTS if p in theirs and p in lineage
              and theirs[p] != lineage[p]]
    if not differ:
        return None
    shown = "; ".join(f"{p}: champion {theirs[p]!r}, this run {lineage[p]!r}" for p in differ)
    return (f"champion {champion} was trained for another config of the same name ({shown}); "
            "give this config its own name, or set tracking.promote_across_configs: true to "
            "replace it")
