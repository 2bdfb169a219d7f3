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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

ISO = "ISO8601"
_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
_SAMPLE = 1_000  # distinct values a family is first tried on (a misfit is usually found early)
_AWARE = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"


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


def infer_family(values: pd.Series, quick: bool = False) -> FormatFamily:
    """The one family that reads every (distinct, non-null, text) value of ``values``.

    Raises :class:`TimestampProblem` when none or several do (see the module docstring).
    ``quick``: when one family alone reads the first distinct values, return it unverified.
    """
    head = pd.Series(pd.unique(values.iloc[:_SAMPLE * 10].to_numpy(dtype=object)),
                     dtype=object).iloc[:_SAMPLE]
    on_head = [f for f in FORMAT_FAMILIES if not _parse_family(head, f).isna().any()]
    if quick and len(on_head) == 1:
        return on_head[0]  # unverified: the caller checks that it reads every value
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


def _parse_formats(values: pd.Series, formats: list[str], tz: str) -> pd.Series:
    """``values`` parsed by the first of ``formats`` each fits, naive in ``tz``; NaT: none."""
    out: pd.Series | None = None
    for f in formats:
        todo = None if out is None else out.isna().to_numpy()
        if todo is not None and not todo.any():
            break
        part = _parse(values if todo is None else values[todo], f)
        if isinstance(part.dtype, pd.DatetimeTZDtype):
            part = part.dt.tz_convert(tz).dt.tz_localize(None)
        part = part.astype("datetime64[us]")
        if out is None:
            out = part
        else:
            arr = out.to_numpy().copy()
            arr[todo] = part.to_numpy()
            out = pd.Series(arr, index=values.index)
    assert out is not None
    return out


def _as_text(value: object) -> str:
    """A timestamp value as text: datetime / date objects as ISO 8601."""
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime, pd.Timestamp)) or hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


def aware_mask(values: pd.Series) -> pd.Series:
    """True where a text timestamp carries a UTC offset or ``Z`` after its time of day."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = values.array
    arrow = (pa.array(arr) if hasattr(arr, "__arrow_array__")
             else pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True))
    found = pc.match_substring_regex(arrow, _AWARE).fill_null(False)
    return pd.Series(np.asarray(found), index=values.index, dtype=bool)


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
    if pd.api.types.is_string_dtype(raw.dtype) and (
        not pd.api.types.is_object_dtype(raw.dtype)
        or pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty")
    ):
        text = raw.astype("str").str.strip()
    else:  # datetime / date objects (in-memory frames, Parquet DATE columns), numbers
        text = raw.astype(object).where(present).map(_as_text, na_action="ignore")
        text = text.astype("str").str.strip()
    values = text[present]
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if values.empty:
        return out
    formats: list[str]
    if fmt is None:
        formats = _by_fit(_infer(values, quick=True).formats, values)
    else:
        formats = [fmt] if isinstance(fmt, str) else list(fmt)
    _check_awareness(values, formats)
    parsed = _parse_formats(values, formats, tz)
    if fmt is None and parsed.isna().any():  # the quick guess does not read every value
        again = _by_fit(_infer(values, quick=False).formats, values)
        if again != formats:
            _check_awareness(values, again)
            parsed = _parse_formats(values, again, tz)
    if bool(present.all()):
        return pd.Series(parsed.to_numpy(), index=raw.index, dtype="datetime64[us]")
    out.iloc[np.flatnonzero(present.to_numpy())] = parsed.to_numpy()
    return out


def _by_fit(formats: tuple[str, ...], values: pd.Series) -> list[str]:
    """``formats`` ordered by how many of the first values each reads (most first): values
    are parsed by the first format that fits, and a misfit is the slow case."""
    if len(formats) == 1:
        return list(formats)
    head = values.iloc[:_SAMPLE]
    fits = {f: int(_parse(head, f).notna().sum()) for f in formats}
    return sorted(formats, key=lambda f: -fits[f])


def _infer(values: pd.Series, quick: bool) -> FormatFamily:
    """:func:`infer_family`, its problems located in ``values`` (rows and examples)."""
    try:
        return infer_family(values, quick=quick)
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


def _check_awareness(values: pd.Series, formats: list[str]) -> None:
    """Refuse a column mixing naive and aware values (see the module docstring)."""
    if not any(f == ISO or "%z" in f or "%Z" in f for f in formats):
        return
    aware = aware_mask(values)
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


def parse_iso_timestamp(text: str, option: str, timezone: str = "UTC") -> pd.Timestamp:
    """A date or timestamp given by a user (a command-line flag, a function argument): ISO
    8601 only (``2024-02-01``, ``2024-02-01T08:30``, ``2024-02-01 08:30:00+01:00``); day/month
    orders such as ``01/02/2024`` are refused, never guessed. An aware value is converted to
    ``timezone`` (business time) and made naive."""
    try:
        value = pd.Timestamp(datetime.fromisoformat(str(text).strip()))
    except ValueError as exc:
        raise ValueError(
            f"{option} {text!r}: not an ISO 8601 date or timestamp; write YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM[:SS] (e.g. 2024-02-01), never a day/month order like "
            "01/02/2024, which is ambiguous"
        ) from exc
    if value.tzinfo is not None:
        value = value.tz_convert(timezone).tz_localize(None)
    return value
