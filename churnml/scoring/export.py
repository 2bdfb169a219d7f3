"""Write the scores, the segment summary and one marketing list per segment.

Every file is written atomically (:func:`churnml.io.atomic_write`): a failed or interrupted
write leaves the previous file (or none), never a partial one. The scores file is written
last, so a new scores file means the other files of the run are in place too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnml.io import file_stem, write_table
from churnml.scoring.segments import SEGMENT

SCORES_FILE = "scores.parquet"
SUMMARY_FILE = "segment_summary.csv"
SEGMENTS_DIR = "segments"
SEGMENT_SUFFIX = ".csv"


def segment_file_name(segment: str) -> str:
    """A file name for a segment: lower case, runs of other characters as ``_``."""
    return file_stem(segment) + SEGMENT_SUFFIX


def write_segments(scores: pd.DataFrame, folder: str | Path,
                   segments: list[str] | None = None) -> dict[str, Path]:
    """``<folder>/<segment>.csv`` for each segment (default: each present), rows in rank
    order; a configured segment without customers gets a header-only file."""
    folder = Path(folder)
    names = segments if segments is not None else list(pd.unique(scores[SEGMENT]))
    return {
        name: write_table(scores[scores[SEGMENT] == name], folder / segment_file_name(name))
        for name in names
    }


def write_scores(
    scores: pd.DataFrame,
    out: str | Path,
    summary: pd.DataFrame | None = None,
    summary_out: str | Path | None = None,
    segments_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Write the scores (Parquet or CSV, by ``out``'s suffix), optionally the summary CSV
    and the per-segment CSV files (one per row of ``summary``, or per segment present);
    returns ``{"segment:<name>" | "summary" | "scores": path}``."""
    written: dict[str, Path] = {}
    if segments_dir is not None:
        names = None if summary is None else summary[SEGMENT].tolist()
        files = write_segments(scores, segments_dir, names)
        written.update({f"segment:{k}": v for k, v in files.items()})
    if summary is not None and summary_out is not None:
        written["summary"] = write_table(summary, summary_out)
    written["scores"] = write_table(scores, out)
    return written
