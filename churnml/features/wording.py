"""Value formats of feature descriptions and reason templates, in words people read.

Templates are ``str.format`` strings; besides Python's format specs they accept:

* ``{x:change}`` -- a ratio: 0.2 -> ``"down 80 %"``, 1.25 -> ``"up 25 %"``, 1 -> ``"unchanged"``;
* ``{x:date}`` -- a number of days before the cutoff -> the date, ``"2 May"`` (the year is
  added when it differs from the cutoff's: ``"20 December 2023"``);
* ``{x:every}`` -- a rate per day -> the typical interval between two occurrences,
  ``1 / x`` days in the largest unit that fits: 1/122 -> ``"four months"``, 1/21 ->
  ``"three weeks"``, 1/5 -> ``"five days"``, >= 2/3 -> ``"day"``;
* ``{x:count NOUN}`` -- a count with its noun: 1 -> ``"1 purchase"``, 3 -> ``"3 purchases"``;
* ``{x:diff}`` -- a difference of scores: -2 -> ``"2.0 points below"``, 1.5 ->
  ``"1.5 points above"``, 0 -> ``"equal to"``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

import pandas as pd

PERCENT = 100.0
CHANGE_WORDS = ("down", "up", "unchanged")
COUNT_SPEC = "count "
DAYS_PER_WEEK = 7.0
DAYS_PER_MONTH = 365.25 / 12
DAYS_PER_YEAR = 365.25
# Interval units of ``every``: (unit, days, the interval in days below which it is used).
INTERVAL_UNITS = (
    ("day", 1.0, 10.5),
    ("week", DAYS_PER_WEEK, 3.5 * DAYS_PER_WEEK),
    ("month", DAYS_PER_MONTH, 11.5 * DAYS_PER_MONTH),
    ("year", DAYS_PER_YEAR, math.inf),
)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                "nine", "ten", "eleven", "twelve")
NEVER = "never"


def interval_words(days: float) -> str:
    """An interval of ``days`` in the largest unit that fits, rounded: ``"day"``,
    ``"five days"``, ``"three weeks"``, ``"four months"``, ``"two years"`` (one unit reads
    without a number: ``"month"``, so that ``"every month"`` reads well)."""
    if not math.isfinite(days):
        return NEVER
    for unit, length, below in INTERVAL_UNITS:
        if days < below:
            n = max(1, round(days / length))
            if n == 1:
                return unit
            number = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
            return f"{number} {unit}s"
    raise AssertionError("unreachable: the last unit has no upper bound")


def count_words(value: float, noun: str) -> str:
    """``"1 purchase"``, ``"3 purchases"`` (``noun`` is the singular)."""
    n = round(float(value))
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_value(value: Any, spec: str, cutoff: pd.Timestamp | None = None) -> str:
    """``format(value, spec)`` plus the word formats of this module (see its docstring).
    Without ``cutoff``, ``date`` reads ``"N days before the cutoff"``."""
    if spec == "change":
        pct = (float(value) - 1.0) * PERCENT
        word = CHANGE_WORDS[0] if pct < 0 else CHANGE_WORDS[1]
        return f"{word} {abs(pct):.0f} %" if round(pct) != 0 else CHANGE_WORDS[2]
    if spec == "date":
        if cutoff is None:
            return f"{float(value):.0f} days before the cutoff"
        day = pd.Timestamp(cutoff) - pd.Timedelta(days=float(value))
        year = f" {day.year}" if day.year != pd.Timestamp(cutoff).year else ""
        return f"{day.day} {day:%B}{year}"
    if spec == "every":
        rate = float(value)
        return interval_words(1.0 / rate) if rate > 0 else NEVER
    if spec.startswith(COUNT_SPEC):
        return count_words(value, spec.removeprefix(COUNT_SPEC).strip())
    if spec == "diff":
        d = float(value)
        if round(d, 1) == 0:
            return "equal to"
        return f"{abs(d):.1f} points {'below' if d < 0 else 'above'}"
    return format(value, spec)


class WordFormatter(string.Formatter):
    """``str.format`` with the word formats of :func:`format_value`."""

    def __init__(self, cutoff: pd.Timestamp | None = None) -> None:
        super().__init__()
        self.cutoff = cutoff

    def format_field(self, value: Any, format_spec: str) -> str:
        return format_value(value, format_spec, self.cutoff)


def fill(template: str, values: Mapping[str, Any], cutoff: pd.Timestamp | None = None) -> str:
    """``template`` filled from ``values`` with the word formats."""
    return WordFormatter(cutoff).vformat(template, (), values)
