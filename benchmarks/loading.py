"""Loading a large CSV export: read, one-format timestamp inference, validation.

    python benchmarks/loading.py [ROWS]     # default 1,000,000 rows

Writes ``transactions.csv`` files with ISO 8601 timestamps and with ``dd/mm/YYYY HH:MM``
timestamps (100,000 customers, text ids) to a temporary folder and times
:func:`churnml.data.loaders.load_folder` on each (no ``ts_format``: the format is inferred).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from churnml.data.loaders import load_folder
from churnml.io import atomic_write

RESULTS = Path(__file__).resolve().parent / "results" / "loading.json"
FORMATS = {"ISO 8601": "%Y-%m-%d %H:%M:%S", "dd/mm/YYYY HH:MM": "%d/%m/%Y %H:%M"}


def main(rows: int = 1_000_000) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2022-01-01") + pd.to_timedelta(
        rng.integers(0, 3 * 365 * 86_400, rows), unit="s")
    base = pd.DataFrame({
        "customer_id": [f"C{x:06d}" for x in rng.integers(0, 100_000, rows)],
        "amount": rng.gamma(2, 20, rows).round(2),
    })
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fmt in FORMATS.items():
            folder = Path(tmp) / fmt.replace("/", "-").replace("%", "")
            folder.mkdir()
            base.assign(ts=ts.strftime(fmt)).to_csv(folder / "transactions.csv", index=False)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = load_folder(folder)
            seconds = time.perf_counter() - start
            assert len(data.transactions) == rows
            out.append({"timestamps": label, "rows": rows, "seconds": round(seconds, 1)})
    print("| timestamps | rows | seconds |\n|---|---|---|")
    for r in out:
        print(f"| {r['timestamps']} | {r['rows']:,} | {r['seconds']} |")
    RESULTS.parent.mkdir(exist_ok=True)
    atomic_write(RESULTS, lambda p: p.write_text(json.dumps(out, indent=1)))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
