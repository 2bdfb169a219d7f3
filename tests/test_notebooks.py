"""The notebooks in notebooks/ run top to bottom on small data (CHURNML_NOTEBOOK_SMALL=1)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from ceilings import HANG_CEILING_S
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = HANG_CEILING_S  # per cell: a hang, not a slow machine (tests/ceilings.py)
KERNEL = "python3"
CDNOW_HOLDOUT_CHURN = (60.0, 80.0)  # % churned in the holdout; 70.06 % on all customers


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_both_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["cdnow_walkthrough.ipynb", "quickstart.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_saved_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Every notebook executed once in a fresh kernel of this interpreter, on small data."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CHURNML_NOTEBOOK_SMALL", "1")  # the kernel inherits the environment
    mp.setenv("MPLBACKEND", "Agg")
    runs = {}
    try:
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            workdir = tmp_path_factory.mktemp(path.stem)
            NotebookClient(
                nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                resources={"metadata": {"path": str(workdir)}},
            ).execute()
            runs[path.stem] = nb
    finally:
        mp.undo()
    return runs


@pytest.mark.parametrize("name", [p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(executed, name):
    cells = _code_cells(executed[name])
    assert all(c.execution_count is not None for c in cells)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert errors == []


def test_quickstart_scores_and_explains_top_customers(executed):
    last = _code_cells(executed["quickstart"])[-1]
    text = _text(last)
    rows = re.findall(r"^\s*\d+\s+\d+\s+0\.\d+", text, re.M)  # index, customer_id, probability
    assert len(rows) == 10, text
    worded = (r"last (purchase|engagement|purchase or engagement) \d+ days ago|usually buys "
              r"every \d+ days|about one purchase|\d+ purchases? in the last|NPS \d")
    assert re.search(worded, text), text
    assert "unknown" not in text, text  # every driver worded


def test_cdnow_holdout_churn_rate_is_plausible(executed):
    text = "".join(_text(c) for c in _code_cells(executed["cdnow_walkthrough"]))
    share = float(re.search(r"churned in holdout (\d+\.\d+)%", text).group(1))
    assert CDNOW_HOLDOUT_CHURN[0] < share < CDNOW_HOLDOUT_CHURN[1]
