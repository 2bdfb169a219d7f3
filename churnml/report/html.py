"""Self-contained HTML: figures embedded as base64 PNG, inline CSS, no script, no URLs."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

FIGURE_DPI = 110  # PNG resolution: sharp on screen, ~50-150 kB per chart
# the page may load nothing but its inline style and data: images (no script, no network)
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
NUMERIC_CLASS = ' class="num"'
CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --accent: #1f6feb; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); margin: 0; background: #f5f7fa; }
header { background: #102a43; color: #fff; padding: 1.5rem 2rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
header p { margin: 0; color: #bcccdc; }
nav { display: flex; flex-wrap: wrap; gap: .2rem 1.1rem; padding: .6rem 2rem;
      background: #fff; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
main { max-width: 1060px; margin: 0 auto; padding: 1rem 2rem 3rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 1rem 1.5rem; margin: 1.2rem 0; }
section h2 { margin: .2rem 0 .5rem; font-size: 1.25rem; }
p.intro { color: var(--muted); margin-top: 0; }
figure { margin: .8rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
.notice { background: #fff8e1; border-left: 4px solid #f0b429; padding: .6rem 1rem; }
.notice code { background: #fff3c4; padding: 0 .3rem; }
.scroll { overflow-x: auto; margin: .6rem 0; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f0f4f8; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
footer { color: var(--muted); font-size: .8rem; text-align: center; padding: 1rem; }
"""


@dataclass(frozen=True)
class Section:
    """One rendered report section: anchor ``id``, title and HTML body."""

    id: str
    title: str
    body: str


def figure_data_uri(fig: Figure, dpi: int = FIGURE_DPI) -> str:
    """``data:image/png;base64,...`` of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig: Figure, alt: str) -> str:
    """An ``<img>`` with the figure embedded, inside a ``<figure>``."""
    return f'<figure><img src="{figure_data_uri(fig)}" alt="{html.escape(alt)}"></figure>'


def paragraph(text: str, css_class: str = "intro") -> str:
    return f'<p class="{css_class}">{html.escape(text)}</p>'


def notice(message: str, command: str) -> str:
    """The box shown instead of a section whose input is missing."""
    return (f'<div class="notice">not available: {html.escape(message)} &mdash; run '
            f"<code>{html.escape(command)}</code></div>")


def table_html(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """An escaped HTML table (scrolls sideways when wide); ``formats`` maps a column to a
    ``str.format`` spec such as ``"{:.1%}"``; numeric columns are right-aligned; headers
    read ``churn probability`` for ``churn_probability``."""
    formats = formats or {}
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    head = "".join(
        f"<th{NUMERIC_CLASS if is_num else ''}>{html.escape(str(c).replace('_', ' '))}</th>"
        for c, is_num in zip(df.columns, numeric, strict=True)
    )
    rows = []
    for values in df.itertuples(index=False):
        cells = []
        for col, value, is_num in zip(df.columns, values, numeric, strict=True):
            text = "–" if _missing(value) else formats.get(col, "{}").format(value)
            cls = NUMERIC_CLASS if is_num else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _missing(value: object) -> bool:
    return value is None or (np.ndim(value) == 0 and not isinstance(value, str)
                             and bool(pd.isna(value)))


def page(title: str, subtitle: str, sections: Sequence[Section], footer: str) -> str:
    """The whole document: header, a table of contents, the sections, a footer."""
    toc = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{toc}</nav><main>{body}</main>"
        f"<footer>{html.escape(footer)}</footer></body></html>\n"
    )
