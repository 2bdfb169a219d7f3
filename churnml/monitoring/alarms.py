"""Monitoring alarms, each tagged with its cause.

A monitor alarm is one piece of evidence that something changed. What to do depends on the
cause, so every alarm carries one of :data:`CAUSES`:

* ``data``: the input looks broken (a missing month of events, a survey on a new scale, a
  vanished event type). Fix the data; retraining on it would learn the break.
* ``population``: the base changed (features or the segment mix drifted) while the data look
  sound. Check segments and targeting before anything else.
* ``performance``: the churn model's realized metrics fell, or left their estimate's interval,
  on sound data. Retrain.
* ``value``: the value side moved (realized vs predicted value, ``value_if_retained`` or
  spend features). Retrain the value model; revisit value-based targeting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd

Cause = Literal["data", "population", "performance", "value"]
CAUSES: tuple[Cause, ...] = ("data", "population", "performance", "value")


@dataclass(frozen=True)
class Alarm:
    """One alarm: its ``cause`` (:data:`CAUSES`), the ``cutoff`` it concerns, the ``check``
    that raised it (e.g. ``"psi"``, ``"realized_auc"``), the ``column`` or table it is about,
    the measured ``value`` against its ``threshold``, and ``text`` for a person."""

    cause: Cause
    cutoff: pd.Timestamp
    check: str
    text: str
    column: str = ""
    value: float = float("nan")
    threshold: float = float("nan")

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"unknown alarm cause {self.cause!r}; expected one of {CAUSES}")

    def __str__(self) -> str:
        return f"{self.cutoff:%Y-%m-%d}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the cutoff as an ISO date, NaN numbers as ``None``."""
        out = asdict(self)
        out["cutoff"] = pd.Timestamp(self.cutoff).isoformat()
        for key in ("value", "threshold"):
            if out[key] != out[key]:
                out[key] = None
        return out
