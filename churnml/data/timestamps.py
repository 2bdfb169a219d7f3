"""Timestamp columns: one format per column, inferred or configured; time zones.

A text column without ``ts_format`` is parsed with **one** format for the whole column. The
format is chosen among :data:`FORMAT_FAMILIES` (ISO 8601, ``dd/mm/YYYY``, ``mm/dd/YYYY``,
``dd.mm.YYYY``, ``YYYY/mm/dd``, ... each with or without a time of day): the family that fits
every value wins. Two families that fit every value but read some value differently (all days
<= 12: ``03/04/2024`` is 3 April or 4 March) are an error, as is a column no single family
fits (mixed formats); both name the column, example rows and the ``ts_format`` to set.

Naive values are local business time (``data.timezone``); aware ones (an offset or ``Z``) are
converted to it. A column mixing naive and aware values is an error naming rows of each kind:
the offset a naive value lacks cannot be guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

ISO = "ISO8601"
_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
_SAMPLE = 1_000  # distinct values a family is first tried on (a misfit is usually found early)
_AWARE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True)
class FormatFamily:
    """Formats sharing one date order, differing only in the time of day."""

    name: str
    date: str  # strftime date part, or ISO for pandas' ISO 8601 parser

    @property
    def formats(self) -> tuple[str, ...]:
        if self.date == ISO:
            return (ISO,)
        return tuple(self.date + t for t in _TIMES)


FORMAT_FAMILIES: tuple[FormatFamily, ...] = (
    FormatFamily("ISO 8601", ISO),
    FormatFamily("dd/mm/YYYY", "%d/%m/%Y"),
    FormatFamily("mm/dd/YYYY", "%m/%d/%Y"),
    FormatFamily("dd/mm/YY", "%d/%m/%y"),
    FormatFamily("mm/dd/YY", "%m/%d/%y"),
    FormatFamily("dd.mm.YYYY", "%d.%m.%Y"),
    FormatFamily("dd-mm-YYYY", "%d-%m-%Y"),
    FormatFamily("mm-dd-YYYY", "%m-%d-%Y"),
    FormatFamily("YYYY/mm/dd", "%Y/%m/%d"),
)
"""Candidate formats of a column without ``ts_format``, as families of one date order."""


class TimestampProblem(ValueError):
    """A column's values cannot be read unambiguously; ``rows`` and ``values`` show examples."""

    def __init__(self, problem: str, rows: Sequence[object] = (),
                 values: Sequence[object] = (), n_rows: int | None = None,
                 family: FormatFamily | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.rows = list(rows)
        self.values = list(values)
        self.n_rows = n_rows
        self.family = family  # mixed formats: the family that reads the most values


def _parse(values: pd.Series, fmt: str, utc: bool = False) -> pd.Series:
    try:
        return pd.to_datetime(values, errors="coerce", format=fmt, utc=utc)
    except (ValueError, TypeError):  # mixed offsets: only as UTC
        return pd.to_datetime(values, errors="coerce", format=fmt, utc=True)


def _parse_family(values: pd.Series, family: FormatFamily) -> pd.Series:
    """Each value parsed by the first format of ``family`` it fits (NaT: none); as UTC for
    aware ISO values, which only fitting matters for here."""
    out = _parse(values, family.formats[0], utc=family.date == ISO)
    for fmt in family.formats[1:]:
        todo = out.isna()
        if not todo.any():
            break
        out[todo] = _parse(values[todo], fmt)
    return out


def format_hint(family: FormatFamily) -> str:
    """The ``ts_format`` value that selects ``family``."""
    return "ISO8601" if family.date == ISO else family.date


def infer_family(values: pd.Series) -> FormatFamily:
    """The one family that reads every (distinct, non-null, text) value of ``values``.

    Raises :class:`TimestampProblem` when none or several do (see the module docstring).
    """
    uniq = pd.Series(pd.unique(values.to_numpy(dtype=object)), dtype=object)
    sample = uniq.iloc[:_SAMPLE]
    fits: list[tuple[FormatFamily, pd.Series]] = []
    for family in FORMAT_FAMILIES:
        if _parse_family(sample, family).isna().any():
            continue
        parsed = _parse_family(uniq, family) if len(uniq) > len(sample) else None
        if parsed is not None and parsed.isna().any():
            continue
        fits.append((family, parsed if parsed is not None else _parse_family(uniq, family)))
    if len(fits) == 1:
        return fits[0][0]
    if not fits:
        raise _mixed(uniq)
    (fam_a, a), (fam_b, b) = fits[0], fits[1]
    differ = a.dt.tz_localize(None) != b.dt.tz_localize(None) if a.dt.tz else a != b
    if not differ.any():  # e.g. every value has day == month: both read the same
        return fam_a
    shown = uniq[differ].iloc[:5].tolist()
    options = " or ".join(repr(format_hint(f)) for f, _ in fits)
    raise TimestampProblem(
        f"ambiguous date format: the values fit both {fam_a.name} and {fam_b.name} (no day "
        f"above 12), e.g. {shown[0]!r} is {a[differ].iloc[0]:%d %B %Y} or "
        f"{b[differ].iloc[0]:%d %B %Y}; set ts_format: {options} for this table",
        values=shown,
    )


def _mixed(uniq: pd.Series) -> TimestampProblem:
    """No family reads every value: name the best family and values it cannot read."""
    best, best_parsed = None, None
    for family in FORMAT_FAMILIES:
        parsed = _parse_family(uniq, family)
        if best_parsed is None or parsed.notna().sum() > best_parsed.notna().sum():
            best, best_parsed = family, parsed
    assert best is not None and best_parsed is not None
    if best_parsed.notna().sum() == 0:
        return TimestampProblem(
            "unparseable timestamp: no known format (ISO 8601, dd/mm/YYYY, mm/dd/YYYY, ...) "
            "reads these values; set ts_format (strftime) for this table", family=best,
        )
    others = [
        f.name for f in FORMAT_FAMILIES
        if f is not best and _parse_family(uniq[best_parsed.isna()], f).notna().any()
    ]
    return TimestampProblem(
        f"unparseable timestamp or mixed formats: {best.name} reads "
        f"{int(best_parsed.notna().sum())} of {len(uniq)} distinct values but not the rows "
        "shown" + (f" (which look like {' / '.join(others)})" if others else "")
        + f"; make the column one format and set ts_format (e.g. {format_hint(best)!r})",
        family=best,
    )


def _as_text(value: object) -> str:
    """A timestamp value as text: datetime / date objects as ISO 8601."""
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime, pd.Timestamp)) or hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


def aware_mask(values: pd.Series) -> pd.Series:
    """True where a text timestamp carries a UTC offset or ``Z`` after its time of day."""
    return values.astype("str").str.strip().str.contains(_AWARE)


def parse_timestamps(raw: pd.Series, fmt: str | list[str] | None, tz: str) -> pd.Series:
    """Naive ``datetime64[us]`` in business time ``tz``: parsed text (``fmt`` or the inferred
    family), or datetime values converted. NaT where a value does not fit (the caller names
    those rows). Raises :class:`TimestampProblem` for an ambiguous, mixed or half-aware
    column."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert(tz).dt.tz_localize(None).astype("datetime64[us]")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.astype("datetime64[us]")
    present = raw.notna()
    text = raw.copy()
    if present.any():
        # datetime / date objects (in-memory frames, Parquet DATE columns) as ISO text
        text = raw.astype(object).where(present)
        text[present] = text[present].map(_as_text).str.strip()
    values = text[present]
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if values.empty:
        return out
    formats: list[str]
    if fmt is None:
        try:
            formats = list(infer_family(values).formats)
        except TimestampProblem as problem:
            if problem.family is None:
                shown = values[values.isin(problem.values)]
                problem.rows, problem.values = list(shown.index[:5]), shown.iloc[:5].tolist()
                problem.n_rows = int(len(shown))
                raise
            bad = _parse_family(values, problem.family).isna()
            problem.rows = list(values.index[bad][:5])
            problem.values = values[bad].iloc[:5].tolist()
            problem.n_rows = int(bad.sum())
            raise
    else:
        formats = [fmt] if isinstance(fmt, str) else list(fmt)
    aware = aware_mask(values) if any(f == ISO or "%z" in f or "%Z" in f for f in formats) \
        else pd.Series(False, index=values.index)
    if aware.any() and not aware.all():
        naive_rows, aware_rows = values.index[~aware], values.index[aware]
        rows = [*naive_rows[:3], *aware_rows[:2]]
        raise TimestampProblem(
            f"mixes {int((~aware).sum())} naive and {int(aware.sum())} timezone-aware value(s): "
            "naive values are local business time (data.timezone) and aware ones are "
            "converted to it, so one column must be all of one kind; add the offset to every "
            "value or remove it from every value",
            rows=rows, values=[values[r] for r in rows], n_rows=int(aware.sum()),
        )
    parsed = pd.Series(pd.NaT, index=values.index, dtype=object)
    todo = pd.Series(True, index=values.index)
    for f in formats:
        if not todo.any():
            break
        part = _parse(values[todo], f)
        if isinstance(part.dtype, pd.DatetimeTZDtype):
            part = part.dt.tz_convert(tz).dt.tz_localize(None)
        part = part.astype("datetime64[us]")
        parsed[todo] = part
        todo = parsed.isna()
    out[values.index] = pd.to_datetime(parsed).astype("datetime64[us]")
    return out
