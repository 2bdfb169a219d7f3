"""The monitor's verdict: what the alarms, taken together, say to do.

Alarms (:class:`~churnml.monitoring.alarms.Alarm`) are grouped by cause and the verdict is
the first cause present in this order of precedence:

1. ``data`` — a data break: fix the data; never retrain on it (it would learn the break);
   ``churnml monitor --retrain`` refuses until the break is fixed or acknowledged
   (``monitoring.acknowledged``);
2. ``performance`` — the churn model's realized performance fell on sound data: retrain;
3. ``value`` — the value side moved: retrain the value model, revisit value-based targeting;
4. ``population`` — the base changed (features or segment mix drifted) but performance holds:
   check segments and targeting; retrain only if performance follows;
5. ``healthy`` — no alarm.

The retrain signal is true for the ``performance`` and ``value`` verdicts only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from churnml.monitoring.alarms import CAUSES, Alarm

PRECEDENCE = ("data", "performance", "value", "population")
HEALTHY = "healthy"
HEADLINES = {
    "data": "data break",
    "performance": "performance decay on sound data",
    "value": "value drift",
    "population": "population shift",
    HEALTHY: "healthy",
}
ACTIONS = {
    "data": "fix the data (the export or the pipeline feeding it) and re-score; do not "
            "retrain on it. A known, intended change can be acknowledged "
            "(`monitoring.acknowledged` or `churnml monitor --acknowledge-data <column>`)",
    "performance": "retrain the churn model (`churnml train`, or `churnml monitor --retrain`)",
    "value": "retrain the value model and revisit value-based targeting",
    "population": "the base changed while the model holds: check segments and targeting; "
                  "retrain only if realized performance follows",
    HEALTHY: "nothing to do",
}
RETRAIN = frozenset({"performance", "value"})
DRIFT = "psi"  # the check of drift alarms
TOP = 3


@dataclass(frozen=True)
class Verdict:
    """``cause`` (one of :data:`PRECEDENCE` or ``healthy``) and the alarms by cause."""

    cause: str
    alarms: dict[str, list[Alarm]] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return ACTIONS[self.cause]

    @property
    def headline(self) -> str:
        return HEADLINES[self.cause]

    @property
    def retrain(self) -> bool:
        return self.cause in RETRAIN

    @property
    def blocks_retraining(self) -> bool:
        return self.cause == "data"

    def evidence(self, cause: str | None = None, top: int = TOP) -> list[str]:
        """The ``top`` pieces of evidence of ``cause`` (default: the verdict's): one per
        check and column; failed checks before drift, then those raised at most cutoffs,
        the latest, the largest value."""
        return [text for text, _ in _ranked(self.alarms.get(cause or self.cause, []))[:top]]

    def to_dict(self) -> dict[str, Any]:
        """The verdict part of ``signal.json``."""
        return {
            "verdict": self.cause, "headline": self.headline, "action": self.action,
            "retrain": self.retrain, "evidence": self.evidence(),
            "alarms": {cause: {"count": len(items), "evidence": self.evidence(cause),
                               "items": [a.to_dict() for a in items]}
                       for cause, items in self.alarms.items()},
        }

    def grouped(self, top: int = TOP) -> list[str]:
        """The alarms grouped by cause, in order of precedence: a count line per cause, then
        its ``top`` pieces of evidence."""
        lines = []
        for cause in PRECEDENCE:
            items = self.alarms.get(cause, [])
            if not items:
                continue
            lines.append(f"{cause} ({HEADLINES[cause]}): {len(items)} alarm(s)")
            shown = self.evidence(cause, top)
            lines += [f"  - {e}" for e in shown]
            if (rest := len(_ranked(items)) - len(shown)) > 0:
                lines.append(f"  - ... and {rest} more check(s) (signal.json)")
        return lines

    def paragraph(self) -> str:
        """A short paragraph for a person: what, the top evidence, what to do."""
        if self.cause == HEALTHY:
            return ("Verdict: healthy. No data check, performance or drift alarm; "
                    "nothing to do.")
        lines = [f"Verdict: {self.headline} ({_counts(self.alarms)})."]
        lines += [f"  evidence: {e}" for e in self.evidence()]
        others = [c for c in PRECEDENCE if c != self.cause and self.alarms.get(c)]
        if others:
            lines.append("  also: " + "; ".join(
                f"{len(self.alarms[c])} {c} alarm(s), e.g. {self.evidence(c, 1)[0]}"
                for c in others))
        lines.append(f"What to do: {self.action}.")
        return "\n".join(lines)


def _counts(alarms: dict[str, list[Alarm]]) -> str:
    return ", ".join(f"{len(alarms[c])} {c}" for c in PRECEDENCE if alarms.get(c)) + " alarm(s)"


def _ranked(alarms: list[Alarm]) -> list[tuple[str, int]]:
    groups: dict[tuple[str, str], list[Alarm]] = {}
    for a in alarms:
        groups.setdefault((a.check, a.column), []).append(a)
    ranked = sorted(groups.values(), key=lambda g: (
        g[0].check == DRIFT,  # a failed check before the drift it explains
        -len({a.cutoff for a in g}), -max(a.cutoff for a in g).value,
        -max((abs(a.value) for a in g if a.value == a.value), default=0.0)))
    out = []
    for group in ranked:
        latest = max(group, key=lambda a: a.cutoff)
        n = len({a.cutoff for a in group})
        out.append((f"{latest}" + (f" (and {n - 1} earlier cutoff(s))" if n > 1 else ""), n))
    return out


def decide(alarms: Iterable[Alarm]) -> Verdict:
    """The :class:`Verdict` of ``alarms`` (module docstring)."""
    by_cause: dict[str, list[Alarm]] = {c: [] for c in CAUSES}
    for a in alarms:
        by_cause[a.cause].append(a)
    by_cause = {c: v for c, v in by_cause.items() if v}
    cause = next((c for c in PRECEDENCE if by_cause.get(c)), HEALTHY)
    return Verdict(cause, by_cause)
