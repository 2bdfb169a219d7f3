"""Write the scores, the segment summary and one marketing list per segment.

A run's files are staged beside their targets and committed together
(:class:`churnml.outputs.OutputSet`): a failed or interrupted run leaves the previous run's
files (or none), never a partial one or a mix; the segment folder is replaced whole. The
scores file is moved last, so a new scores file means the other files of the run are in
place too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from churnml.errors import ConfigError
from churnml.io import file_stem, format_of, write_table
from churnml.outputs import OutputSet
from churnml.scoring.segments import SEGMENT

SCORES_FILE = "scores.parquet"
SUMMARY_FILE = "segment_summary.csv"
SEGMENTS_DIR = "segments"
SEGMENT_SUFFIX = ".csv"


def segment_file_name(segment: str) -> str:
    """A file name for a segment: lower case, runs of other characters as ``_``."""
    return file_stem(segment) + SEGMENT_SUFFIX


def write_segments(scores: pd.DataFrame, folder: str | Path,
                   segments: list[str] | None = None, *, escape: bool = True) -> dict[str, Path]:
    """``<folder>/<segment>.csv`` for each segment (default: each present), rows in rank
    order; a configured segment without customers gets a header-only file. Writes into
    ``folder`` as it is (see :func:`write_scores` for the whole-run swap)."""
    folder = Path(folder)
    names = segments if segments is not None else list(pd.unique(scores[SEGMENT]))
    files = {name: folder / segment_file_name(name) for name in names}
    clash = len(set(files.values())) < len(files)
    if clash:
        raise ConfigError(f"segment names {names} do not map to distinct file names")
    return {name: write_table(scores[scores[SEGMENT] == name], path, escape=escape)
            for name, path in files.items()}


def score_outputs(
    out: str | Path,
    summary_out: str | Path | None = None,
    segments_dir: str | Path | None = None,
    journal_dir: str | Path | None = None,
) -> OutputSet:
    """The :class:`~churnml.outputs.OutputSet` of a scoring run (check it before scoring)."""
    files = {"summary": summary_out} if summary_out is not None else {}
    files["scores"] = out
    if not Path(out).is_dir():  # a folder is reported by OutputSet.check
        format_of(out)
    folders = {"segments": segments_dir} if segments_dir is not None else {}
    return OutputSet(files, folders, journal_dir or Path(out).parent)


def write_scores(
    scores: pd.DataFrame,
    out: str | Path,
    summary: pd.DataFrame | None = None,
    summary_out: str | Path | None = None,
    segments_dir: str | Path | None = None,
    *,
    escape: bool = True,
    outputs: OutputSet | None = None,
    extra: Mapping[str, Callable[[Path], None]] | None = None,
) -> dict[str, Path]:
    """Write the scores (Parquet or CSV, by ``out``'s suffix), optionally the summary CSV
    and the per-segment CSV files (one per row of ``summary``, or per segment present);
    returns ``{"segment:<name>" | "summary" | "scores": path}``.

    All of them are staged and committed as one unit (:class:`~churnml.outputs.OutputSet`):
    the segment folder is replaced whole (no list of an earlier run stays), and a failure
    or kill leaves the previous run's files. CSV text cells are escaped against spreadsheet
    formulas unless ``escape=False`` (:func:`churnml.io.escape_formulas`). ``extra``: more
    folder targets of ``outputs`` (e.g. the score history's partition), each name mapped to
    a function writing its staging folder, committed in the same unit.
    """
    outputs = outputs or score_outputs(out, summary_out if summary is not None else None,
                                       segments_dir)
    outputs.check()
    with outputs.locked():
        return _stage_and_commit(outputs, scores, summary, escape, extra or {})


def _stage_and_commit(outputs: OutputSet, scores: pd.DataFrame, summary: pd.DataFrame | None,
                      escape: bool, extra: Mapping[str, Callable[[Path], None]]
                      ) -> dict[str, Path]:
    outputs.recover()  # a killed run's commit finished, its litter removed
    written: dict[str, Path] = {}
    try:
        for name, write in extra.items():
            write(outputs.stage(name))
            written[name] = outputs.folders[name]
        if "segments" in outputs.folders:
            names = None if summary is None else summary[SEGMENT].tolist()
            staged = outputs.stage("segments")
            files = write_segments(scores, staged, names, escape=escape)
            final = outputs.folders["segments"]
            written.update({f"segment:{k}": final / v.name for k, v in files.items()})
        if summary is not None and "summary" in outputs.files:
            write_table(summary, outputs.stage("summary"), fmt="csv", escape=escape)
            written["summary"] = outputs.files["summary"]
        scores_path = outputs.files["scores"]
        write_table(scores, outputs.stage("scores"), fmt=format_of(scores_path), escape=escape)
        written["scores"] = scores_path
    except BaseException:
        outputs.abort()
        raise
    outputs.commit()  # folders, then the summary, the scores last
    return written
