"""The score history: every scoring run's scores, kept per cutoff for monitoring.

Layout (a Hive-partitioned Parquet dataset that Spark, DuckDB and pyarrow read as is)::

    <root>/cutoff=2024-06-01/scores.parquet    one row per scored customer
    <root>/cutoff=2024-06-01/run.json          cutoff, horizon, models, aliases, time, rows
    <root>/cutoff=2024-06-01/profile.json      feature profiles (churnml.features.profile)

Scores keep ``customer_id``, the score columns (:data:`COLUMNS` present in the scores), the
segment and, when a campaign assigned one, the ``arm``; features are kept as compact profiles
(a few hundred numbers per feature), not per customer. Re-scoring a cutoff replaces its
partition: the new partition is written under a hidden temporary name and renamed into
place (:class:`churnml.outputs.OutputSet`; ``churnml score`` commits it with its other
outputs as one unit), so a reader sees the old run or the new one, never both or half of
one. Staging folders of a killed run are removed by the next write or monitor run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from churnml.errors import ChurnmlError
from churnml.io import read_json
from churnml.outputs import TMP_SUFFIX, OutputSet, mark, owned

COLUMNS = (
    "customer_id", "churn_probability", "expected_value", "value_if_retained",
    "value_at_risk", "rank", "risk_segment", "arm", "uplift", "targeting_value",
)
SCORES = "scores.parquet"
RUN = "run.json"
PROFILE = "profile.json"
PREFIX = "cutoff="
LITTER = (".tmp-cutoff=", ".old-cutoff=")  # staging folders of releases before the journal


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

    def partition(self, cutoff: Any) -> Path:
        """The folder of a cutoff's run, claimed for churnml when it holds a run written
        before the ownership marker (exactly this layout's files), so a re-score may replace
        it (:func:`churnml.outputs.owned`)."""
        folder = self._dir(cutoff)
        if folder.is_dir() and not owned(folder):
            names = {p.name for p in folder.iterdir()}
            if RUN in names and names <= {SCORES, RUN, PROFILE} and all(
                    (folder / n).is_file() for n in names):
                mark(folder)
        return folder

    @staticmethod
    def write_run(folder: str | Path, scores: pd.DataFrame, run: Mapping[str, Any],
                  profile: Mapping[str, Any] | None = None) -> None:
        """Write one run's files (scores, ``run.json``, ``profile.json``) into ``folder``."""
        kept = scores[[c for c in COLUMNS if c in scores.columns]].reset_index(drop=True)
        ScoreHistory.write_run_with(folder, _pandas_writer(kept), run, profile)

    @staticmethod
    def write_run_with(folder: str | Path, write_scores: Callable[[Path], int],
                       run: Mapping[str, Any], profile: Mapping[str, Any] | None = None
                       ) -> None:
        """:meth:`write_run`, the scores written by ``write_scores(path)`` (returns rows)."""
        folder = Path(folder)
        profile_text = json.dumps(dict(profile or {}))
        rows = write_scores(folder / SCORES)
        meta = {**dict(run), "cutoff": pd.Timestamp(run["cutoff"]).isoformat(), "rows": rows}
        (folder / RUN).write_text(json.dumps(meta, indent=1, default=str))
        (folder / PROFILE).write_text(profile_text)

    def clean(self, keep: Path | None = None) -> list[Path]:
        """Remove staging litter of killed runs (hidden ``.tmp`` folders of this history's
        partitions, and those of releases before the output journal); returns what was
        removed (never ``keep``, the caller's own staging folder). Call it holding the
        history's lock (:func:`churnml.outputs.locked`)."""
        if not self.root.is_dir():
            return []
        litter = [p for p in self.root.iterdir() if p.name.startswith(LITTER)
                  or (p.name.startswith(f".{PREFIX}") and p.name.endswith(TMP_SUFFIX)
                      and p != keep)]
        for path in litter:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        return litter

    def write(self, scores: pd.DataFrame, run: Mapping[str, Any],
              profile: Mapping[str, Any] | None = None) -> Path:
        """Store one scoring run (replacing any earlier run of the same ``run['cutoff']``):
        staged beside its partition and committed (:class:`churnml.outputs.OutputSet`)."""
        kept = scores[[c for c in COLUMNS if c in scores.columns]].reset_index(drop=True)
        return self.write_with(_pandas_writer(kept), run, profile)

    def write_with(self, write_scores: Callable[[Path], int], run: Mapping[str, Any],
                   profile: Mapping[str, Any] | None = None) -> Path:
        """:meth:`write`, the scores written by ``write_scores(path)`` (one Parquet file of
        the :data:`COLUMNS` present; returns its row count), e.g. by Spark."""
        outputs = OutputSet({}, {"run": self.partition(run["cutoff"])}, journal_dir=self.root)
        outputs.check()
        with outputs.locked():
            outputs.recover()
            self.clean()
            try:
                self.write_run_with(outputs.stage("run"), write_scores, run, profile)
            except BaseException:
                outputs.abort()
                raise
            return outputs.commit()["run"]

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
        return _mapping(read_json(path, "run record (run.json)"), path)

    def profile(self, cutoff: Any) -> dict[str, Any]:
        path = self._dir(cutoff) / PROFILE
        return _mapping(read_json(path, "feature profile"), path) if path.exists() else {}

    def scores(self, cutoff: Any) -> pd.DataFrame:
        """The stored scores of one cutoff."""
        path = self._dir(cutoff) / SCORES
        if not path.exists():
            raise LookupError(f"no scoring run for cutoff {pd.Timestamp(cutoff)} in {self.root}")
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise ChurnmlError(f"{path}: not a readable Parquet file ({exc}); the score "
                               "history holds a damaged run: remove its folder or re-score "
                               "the cutoff") from exc

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


def _mapping(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ChurnmlError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _pandas_writer(kept: pd.DataFrame) -> Callable[[Path], int]:
    def write(path: Path) -> int:
        kept.to_parquet(path, index=False)
        return len(kept)

    return write
