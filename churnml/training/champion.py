"""Champion rule: a new churn/LTV pair becomes champion only if each model beats both the
current champion and its naive baseline on the configured backtest metric.

For a task (``churn``: the recency baseline; ``ltv``: the last-value baseline) with metric
``m`` (backtest mean over folds) and ``d = tracking.min_improvement``, the candidate
*qualifies* when

    better(m_candidate, m_baseline) and (no champion or better(m_candidate, m_champion)),
    better(a, b) = a > b + d  (higher is better)   or   a < b - d  (losses: Brier, log loss,
    ECE, MAE, RMSE, decile MAPE).

The pair is promoted when both tasks qualify, else neither (both stay ``challenger``); every
verdict names the numbers. :func:`decide_pair` is pure (backtest tables in, verdicts out);
:func:`promote_pair` applies it to a store: verdicts as tags on the run and the versions,
then :func:`~churnml.training.tracking.set_champions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from churnml.training.backtest import higher_is_better

TASKS = ("churn", "ltv")
BASELINES = {"churn": "recency", "ltv": "last_value"}  # backtest model names
VERDICT_TAG = "churnml.promotion"  # on each model version; on the run: churnml.promotion.<task>
BACKTEST_PREFIX = "backtest."


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
        return self.value is not None and self.baseline_value is not None \
            and self._better(self.baseline_value)

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
            why = f"does not beat the {self.baseline} baseline"
        elif not self.beats_champion:
            why = f"does not beat champion v{self.champion_version}"
        else:
            why = "beats both"
        return (f"{self.name} v{self.version}: {self.metric} {_num(self.value)} vs "
                f"{self.baseline} {_num(self.baseline_value)}, {champion} ({direction} is "
                f"better, margin {self.min_delta:g}): {why}")


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
) -> PairDecision:
    """Verdicts for ``candidates`` (``{task: (name, version)}``) from the candidate run's
    backtest ``summary``, the champion metric per task (``metrics``) and the current
    champions ``{task: (version, backtest value or None)}`` (missing task: no champion)."""
    champions = champions or {}
    verdicts = {}
    for task in TASKS:
        name, version = candidates[task]
        metric = metrics[task]
        champion_version, champion_value = champions.get(task, (None, None))
        verdicts[task] = Verdict(
            task=task, name=name, version=str(version), metric=metric,
            higher_is_better=higher_is_better(metric),
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
        decision = decide_pair(summary, metrics, candidates, champions, min_delta)
        if pair is not None and lineage is not None and not across_configs:
            blocked = foreign_champion(client.get_run(pair.churn.run_id).data.tags, lineage,
                                       f"{pair.churn.name} v{pair.churn.version}")
            if blocked is not None:
                decision = PairDecision(decision.verdicts, blocked)
        for task, verdict in decision.verdicts.items():
            name, version = candidates[task]
            client.set_model_version_tag(name, str(version), VERDICT_TAG, verdict.text)
            if run_id is not None:
                client.set_tag(run_id, f"{VERDICT_TAG}.{task}", verdict.text)
        if run_id is not None:
            client.set_tag(run_id, VERDICT_TAG, "promoted" if decision.promote else "challenger")
            if decision.blocked is not None:
                client.set_tag(run_id, f"{VERDICT_TAG}.blocked", decision.blocked)
        if decision.promote:
            tr.set_champions(client, candidates)
    return decision


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
