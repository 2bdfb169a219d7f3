"""The score history: every scoring run's scores, kept per cutoff for monitoring.

Layout (a Hive-partitioned Parquet dataset that Spark, DuckDB and pyarrow read as is)::

    <root>/cutoff=2024-06-01/scores.parquet    one row per scored customer
    <root>/cutoff=2024-06-01/run.json          cutoff, horizon, models, aliases, time, rows
    <root>/cutoff=2024-06-01/profile.json      feature profiles (churnml.features.profile)

Scores keep ``customer_id``, the score columns (:data:`COLUMNS` present in the scores), the
segment and, when a campaign assigned one, the ``arm``; features are kept as compact profiles
(a few hundred numbers per feature), not per customer. Re-scoring a cutoff replaces its
partition: the new partition is written under a hidden temporary name and renamed into
place, so a reader sees the old run or the new one, never both or half of one.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = (
    "customer_id", "churn_probability", "expected_value", "value_if_retained",
    "value_at_risk", "rank", "risk_segment", "arm", "uplift", "targeting_value",
)
SCORES = "scores.parquet"
RUN = "run.json"
PROFILE = "profile.json"
PREFIX = "cutoff="


def partition_name(cutoff: Any) -> str:
    """``cutoff=2024-06-01`` (a midnight) or ``cutoff=2024-06-01T12-30-00``."""
    ts = pd.Timestamp(cutoff)
    text = ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%dT%H-%M-%S")
    return PREFIX + text


def _parse_partition(name: str) -> pd.Timestamp:
    text = name.removeprefix(PREFIX)
    if "T" in text:
        day, clock = text.split("T", 1)
        return pd.Timestamp(f"{day} {clock.replace('-', ':')}")
    return pd.Timestamp(text)


class ScoreHistory:
    """The score history under folder ``root`` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, cutoff: Any) -> Path:
        return self.root / partition_name(cutoff)

    def write(self, scores: pd.DataFrame, run: Mapping[str, Any],
              profile: Mapping[str, Any] | None = None) -> Path:
        """Store one scoring run (replacing any earlier run of the same ``run['cutoff']``)."""
        kept = scores[[c for c in COLUMNS if c in scores.columns]].reset_index(drop=True)

        def write_scores(path: Path) -> int:
            kept.to_parquet(path, index=False)
            return len(kept)

        return self.write_with(write_scores, run, profile)

    def write_with(self, write_scores: Callable[[Path], int], run: Mapping[str, Any],
                   profile: Mapping[str, Any] | None = None) -> Path:
        """:meth:`write`, the scores written by ``write_scores(path)`` (one Parquet file of
        the :data:`COLUMNS` present; returns its row count), e.g. by Spark."""
        cutoff = pd.Timestamp(run["cutoff"])
        self.root.mkdir(parents=True, exist_ok=True)
        final = self._dir(cutoff)
        tmp = self.root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            rows = write_scores(tmp / SCORES)
            meta = {**dict(run), "cutoff": cutoff.isoformat(), "rows": rows}
            (tmp / RUN).write_text(json.dumps(meta, indent=1, default=str))
            (tmp / PROFILE).write_text(json.dumps(dict(profile or {})))
            old = None
            if final.exists():
                old = self.root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
                final.rename(old)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def cutoffs(self) -> list[pd.Timestamp]:
        """Stored cutoffs, oldest first (hidden temporary folders ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(_parse_partition(p.name) for p in self.root.iterdir()
                      if p.is_dir() and p.name.startswith(PREFIX) and (p / RUN).exists())

    def run(self, cutoff: Any) -> dict[str, Any]:
        """The ``run.json`` of a cutoff."""
        path = self._dir(cutoff) / RUN
        if not path.exists():
            raise LookupError(f"no scoring run for cutoff {pd.Timestamp(cutoff)} in {self.root}")
        return json.loads(path.read_text())

    def profile(self, cutoff: Any) -> dict[str, Any]:
        path = self._dir(cutoff) / PROFILE
        return json.loads(path.read_text()) if path.exists() else {}

    def scores(self, cutoff: Any) -> pd.DataFrame:
        """The stored scores of one cutoff."""
        path = self._dir(cutoff) / SCORES
        if not path.exists():
            raise LookupError(f"no scoring run for cutoff {pd.Timestamp(cutoff)} in {self.root}")
        return pd.read_parquet(path)

    def read(self, cutoffs: Iterable[Any] | None = None) -> pd.DataFrame:
        """Scores of several cutoffs (default: all) with a ``cutoff`` column."""
        wanted = self.cutoffs() if cutoffs is None else [pd.Timestamp(c) for c in cutoffs]
        parts = [self.scores(c).assign(cutoff=c) for c in wanted]
        if not parts:
            return pd.DataFrame(columns=["cutoff"])
        out = pd.concat(parts, ignore_index=True)
        out["cutoff"] = out["cutoff"].astype("datetime64[us]")
        return out

    def runs(self) -> pd.DataFrame:
        """One row per stored run: its ``run.json`` fields."""
        rows = [self.run(c) for c in self.cutoffs()]
        return pd.DataFrame(rows)
