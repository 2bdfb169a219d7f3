"""Tables on the terminal that fit its width: long tables are split into column groups.

Headers read as words (``retention_rate`` -> ``retention rate``) and wrap at spaces; cells
never wrap or get cut. When the columns do not fit the width, the table is printed as several
tables, each repeating the first (label) column, e.g. ``period``. The width is the
terminal's, or ``$COLUMNS`` (else :data:`PIPED_WIDTH`) when the output is a pipe or a log.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd
from rich.console import Console
from rich.table import Table

PIPED_WIDTH = 200  # characters, for tables printed to a pipe or a log without $COLUMNS
COLUMN_OVERHEAD = 3  # rich's per-column padding (2) and border (1)
TABLE_OVERHEAD = 1  # the closing border


def output_console() -> Console:
    """A console on stdout: the terminal's width, else ``$COLUMNS`` or :data:`PIPED_WIDTH`."""
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() else PIPED_WIDTH)


def header(name: object) -> str:
    return str(name).replace("_", " ")


def column_width(name: object, cells: list[str]) -> int:
    """Characters a column needs: its widest cell or its longest header word."""
    words = header(name).split() or [""]
    return max([len(w) for w in words] + [len(c) for c in cells])


def column_groups(widths: list[int], width: int) -> list[list[int]]:
    """Column positions packed greedily into groups that fit ``width`` characters, column 0
    (the label) repeated in each; a column wider than the room gets a group of its own."""
    if not widths:
        return [[]]
    label = widths[0] + COLUMN_OVERHEAD
    room = width - TABLE_OVERHEAD - label
    groups: list[list[int]] = []
    used = room + 1  # start a group on the first column
    for i, w in enumerate(widths[1:], start=1):
        need = w + COLUMN_OVERHEAD
        if used + need > room and (not groups or groups[-1][1:]):
            groups.append([0])
            used = 0
        groups[-1].append(i)
        used += need
    return groups or [[0]]


def print_table(df: pd.DataFrame, title: str, cell: Callable[[object], str],
                console: Console | None = None) -> None:
    """Print ``df`` (cells formatted by ``cell``) as one or more tables fitting the width."""
    console = console or output_console()
    cells = {c: [cell(v) for v in df[c]] for c in df.columns}
    widths = [column_width(c, cells[c]) for c in df.columns]
    groups = column_groups(widths, console.width)
    for n, group in enumerate(groups, start=1):
        part = f" ({n}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + part, show_lines=False)
        for i in group:
            c = df.columns[i]
            numeric = pd.api.types.is_numeric_dtype(df[c])
            table.add_column(header(c), justify="right" if numeric else "left",
                             width=widths[i], no_wrap=False)
        for r in range(len(df)):
            table.add_row(*[cells[df.columns[i]][r] for i in group])
        console.print(table)
