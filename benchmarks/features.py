"""Benchmark: churnml's feature build (DuckDB) vs an idiomatic vectorized pandas version.

Synthetic transaction and event logs are generated with numpy at run time and written to
Parquet; each contender then runs in its own subprocess, so its wall time and peak resident
memory (``VmHWM`` of ``/proc/self/status``) are its own:

* ``churnml (parquet)``: ``build_features`` over the Parquet files (DuckDB scans them);
* ``churnml (in memory)``: the same over pandas DataFrames loaded first (zero-copy scans);
* ``pandas``: ``read_parquet`` then groupby/agg (no per-customer loops).

Both compute the default feature set of the tables present (recency, frequency, monetary,
engagement, support tickets and trends: 42 features) as of one cutoff, and their outputs are
compared value by value. Prints a table and writes ``benchmarks/results/features.json``.

    python benchmarks/features.py                 # 100k customers, 5M transactions + 5M events
    python benchmarks/features.py --size large    # 1M customers, 50M + 50M
    python benchmarks/features.py --size large --data-dir /tmp/large --only churnml_parquet
        # generate the data into a folder once and reuse it; run some contenders only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SIZES = {  # customers, transactions, events
    "small": (10_000, 500_000, 500_000),
    "medium": (100_000, 5_000_000, 5_000_000),
    "large": (1_000_000, 50_000_000, 50_000_000),
}
START, END = pd.Timestamp("2022-01-01"), pd.Timestamp("2025-01-01")
CUTOFF = pd.Timestamp("2024-10-01")  # rows after it exist and must be ignored
RETURN_SHARE = 0.05  # share of transactions that are returns (negative amounts)
SPEND_SHAPE, SPEND_SCALE = 2.0, 25.0  # Gamma amount of one order, currency units
ACTIVITY_SHAPE = 0.8  # Gamma shape of the customers' activity rates (heterogeneity)
EVENT_TYPES = {"session": 0.6, "email_open": 0.25, "push_click": 0.1, "support_ticket": 0.05}
SUPPORT = "support_ticket"
THREADS = 2
MEMORY_LIMIT = "1300MB"
DAY = pd.Timedelta(days=1)
US_PER_DAY = 86_400_000_000
TOLERANCE = 1e-6  # relative, float sums in a different order
RESULTS = Path(__file__).resolve().parent / "results" / "features.json"


# --------------------------------------------------------------------------- data


CHUNK_ROWS = 10_000_000  # rows generated and written (as row groups) at a time


def activity_cdf(n_customers: int, rng: np.random.Generator) -> np.ndarray:
    """Cumulative Gamma activity rates of the customers (heterogeneous activity)."""
    return np.cumsum(rng.gamma(ACTIVITY_SHAPE, 1.0, n_customers))


def generate(n_rows: int, rng: np.random.Generator, signup_us: np.ndarray,
             cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(customer_id, ts in µs) for ``n_rows`` rows, time-ordered: customers drawn in
    proportion to their activity rates (``cdf``), each row uniform between its customer's
    signup and the end."""
    n_customers = len(cdf)
    idx = np.searchsorted(cdf, rng.random(n_rows) * cdf[-1]).clip(0, n_customers - 1)
    end_us = END.value // 1000
    ts = signup_us[idx] + (rng.random(n_rows) * (end_us - signup_us[idx])).astype("int64")
    order = np.argsort(ts, kind="stable")
    return (idx[order] + 1).astype("int64"), ts[order]


def _chunks(n_rows: int, chunk_rows: int) -> list[int]:
    return [min(chunk_rows, n_rows - i) for i in range(0, n_rows, chunk_rows)] or [0]


def write_data(size: str | tuple[int, int, int], folder: Path, seed: int = 0,
               chunk_rows: int = CHUNK_ROWS, tiles: int = 1) -> dict[str, int]:
    """Write ``transactions.parquet`` and ``events.parquet`` for a named size or
    ``(customers, transactions, events)``; return the row counts.

    Rows are drawn and written ``chunk_rows`` at a time (one Parquet file per table, row
    groups of at most 1 Mi rows), so memory stays flat at any size; each chunk is
    time-ordered (at most one chunk: the whole file is, and the data equal those of
    earlier versions of this generator). ``tiles`` > 1: the data of ``1 / tiles`` of the
    customers and rows are drawn once and written ``tiles`` times, customer ids shifted by
    that many customers each time (disjoint customers with the same per-customer
    distribution; block ``k``'s features are block 0's), which costs one draw and ``tiles``
    writes instead of ``tiles`` draws."""
    counts = SIZES[size] if isinstance(size, str) else size
    if any(c % tiles for c in counts):
        raise ValueError(f"{counts}: not divisible into {tiles} tiles")
    n_customers, n_tx, n_ev = (c // tiles for c in counts)
    rng = np.random.default_rng(seed)
    start_us, end_us = START.value // 1000, END.value // 1000
    signup_us = rng.integers(start_us, end_us - US_PER_DAY, n_customers)

    def write(writer: pq.ParquetWriter, columns: dict[str, pa.Array]) -> None:
        ids = columns.pop("customer_id")
        for k in range(tiles):
            writer.write_table(pa.table({"customer_id": ids + k * n_customers, **columns},
                                        schema=writer.schema))

    cdf = activity_cdf(n_customers, rng)
    schema = pa.schema([("customer_id", pa.int64()), ("ts", pa.timestamp("us")),
                        ("amount", pa.float64())])
    with pq.ParquetWriter(folder / "transactions.parquet", schema) as writer:
        for n in _chunks(n_tx, chunk_rows):
            ids, ts = generate(n, rng, signup_us, cdf)
            amount = np.round(rng.gamma(SPEND_SHAPE, SPEND_SCALE, n), 2)
            amount[rng.random(n) < RETURN_SHARE] *= -1
            write(writer, {"customer_id": ids, "ts": pa.array(ts, pa.timestamp("us")),
                           "amount": pa.array(amount)})
            del ids, ts, amount
    cdf = activity_cdf(n_customers, rng)
    names = pa.array(list(EVENT_TYPES))
    schema = pa.schema([("customer_id", pa.int64()), ("ts", pa.timestamp("us")),
                        ("event_type", pa.dictionary(pa.int8(), pa.string()))])
    with pq.ParquetWriter(folder / "events.parquet", schema) as writer:
        for n in _chunks(n_ev, chunk_rows):
            ids, ts = generate(n, rng, signup_us, cdf)
            codes = rng.choice(len(names), n, p=list(EVENT_TYPES.values())).astype("int8")
            write(writer, {"customer_id": ids, "ts": pa.array(ts, pa.timestamp("us")),
                           "event_type": pa.DictionaryArray.from_arrays(pa.array(codes),
                                                                        names)})
            del ids, ts, codes
    return dict(zip(("customers", "transactions", "events"), counts, strict=True))


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = pd.read_parquet(folder / "transactions.parquet")
    ev = pd.read_parquet(folder / "events.parquet")
    return tx, ev


# --------------------------------------------------------------------------- pandas


def pandas_features(tx: pd.DataFrame, ev: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The same features in idiomatic vectorized pandas (filters, groupby/agg)."""
    tx = tx[tx["ts"] < cutoff]
    ev = ev[ev["ts"] < cutoff]
    ids = pd.Index(np.union1d(tx["customer_id"].unique(), ev["customer_id"].unique()),
                   name="customer_id")
    out = pd.DataFrame(index=ids)

    def put(name: str, series: pd.Series, fill: float | None = 0.0) -> None:
        out[name] = series.reindex(ids) if fill is None else series.reindex(ids).fillna(fill)

    b = tx[tx["amount"] > 0]
    b_age = cutoff - b["ts"]
    for w in (30, 90, 180, 365):
        amounts = b.loc[b_age <= w * DAY, ["customer_id", "amount"]].groupby("customer_id")
        stats = amounts["amount"].agg(["size", "sum", "mean", "max"])
        put(f"purchases_{w}d", stats["size"])
        put(f"spend_{w}d", stats["sum"])
        if w == 365:
            put("avg_order_value_365d", stats["mean"], None)
            put("max_order_value_365d", stats["max"], None)
    prior = b.loc[(b_age > 90 * DAY) & (b_age <= 180 * DAY)].groupby("customer_id")["amount"]
    put("purchases_prior_90d", prior.size())
    put("spend_prior_90d", prior.sum())
    every = b.groupby("customer_id").agg(
        purchases_total=("amount", "size"), spend_total=("amount", "sum"),
        avg_order_value_total=("amount", "mean"), last=("ts", "max"))
    out = out.join(every)
    out[["purchases_total", "spend_total"]] = out[["purchases_total", "spend_total"]].fillna(0)
    out["days_since_last_purchase"] = (cutoff - out.pop("last")) / DAY
    all_tx = tx.groupby("customer_id").agg(first=("ts", "min"), net=("amount", "sum"))
    put("days_since_first_transaction", (cutoff - all_tx["first"]) / DAY, None)
    put("net_revenue_total", all_tx["net"])
    ret = tx[(tx["amount"] < 0) & (tx["ts"] >= cutoff - 365 * DAY)]
    ret = ret.groupby("customer_id")["amount"]
    put("returns_365d", ret.size())
    put("returned_amount_365d", -ret.sum())
    days = pd.DataFrame({"customer_id": b["customer_id"], "day": b["ts"].dt.floor("D")})
    days = days.drop_duplicates()
    put("purchase_days_total", days.groupby("customer_id").size())
    # the cutoff is at midnight, so the window holds whole days
    put("purchase_days_365d", days[days["day"] >= cutoff - 365 * DAY].groupby(
        "customer_id").size())
    gaps = b[["customer_id", "ts"]].sort_values(["customer_id", "ts"], kind="stable")
    gap = gaps["ts"].diff().where(gaps["customer_id"].eq(gaps["customer_id"].shift())) / DAY
    by_gap = gap.groupby(gaps["customer_id"])
    put("purchase_gap_mean_days", by_gap.mean(), None)
    put("purchase_gap_std_days", by_gap.std(), None)
    # events
    ev_age = cutoff - ev["ts"]
    first_last = ev_age.groupby(ev["customer_id"]).agg(["min", "max", "size"])
    put("days_since_last_event", first_last["min"] / DAY, None)
    put("days_since_first_event", first_last["max"] / DAY, None)
    put("events_total", first_last["size"])
    out["tenure_days"] = out[["days_since_first_transaction", "days_since_first_event"]].max(
        axis=1)
    out["days_since_last_activity"] = out[["days_since_last_purchase",
                                           "days_since_last_event"]].min(axis=1)
    exposure = out["tenure_days"].clip(lower=1.0)  # rates over at least one day
    out["purchase_rate_per_day"] = out["purchases_total"] / exposure
    out["activity_rate_per_day"] = (out["purchases_total"] + out["events_total"]) / exposure
    out["activity_silence_probability"] = np.exp(
        -out["activity_rate_per_day"] * out["days_since_last_activity"])
    for w in (30, 90):
        counts = ev[ev_age <= w * DAY].groupby(["customer_id", "event_type"],
                                              observed=True).size().unstack(fill_value=0)
        for t in counts.columns:
            put(f"support_tickets_{w}d" if t == SUPPORT else f"{t}_{w}d", counts[t])
    recent = ev[ev_age <= 30 * DAY]
    put("events_30d", recent.groupby("customer_id").size())
    put("events_prior_30d", ev[(ev_age > 30 * DAY) & (ev_age <= 60 * DAY)].groupby(
        "customer_id").size())
    recent_days = pd.DataFrame({"customer_id": recent["customer_id"],
                                "day": recent["ts"].dt.floor("D")}).drop_duplicates()
    put("event_days_30d", recent_days.groupby("customer_id").size())
    ratio = lambda a, b: out[a] / out[b].where(out[b] != 0)  # noqa: E731
    out["engagement_trend_30d"] = ratio("events_30d", "events_prior_30d")
    out["purchases_trend_90d"] = ratio("purchases_90d", "purchases_prior_90d")
    out["spend_trend_90d"] = ratio("spend_90d", "spend_prior_90d")
    out["recency_vs_usual_gap"] = ratio("days_since_last_purchase", "purchase_gap_mean_days")
    return out.astype("float64").reset_index()


# --------------------------------------------------------------------------- workers


def _rss_gb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (current) of this process, GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def worker(contender: str, folder: Path) -> dict[str, float]:
    """Run one contender in this process; write its features to ``folder``."""
    from churnml.data.customer_data import CustomerData
    from churnml.features import build_features

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime  # CPU seconds of all threads, less the imports
    t0 = time.perf_counter()
    if contender == "pandas":
        tx, ev = load(folder)
        t1 = time.perf_counter()
        out = pandas_features(tx, ev, CUTOFF)
    else:
        if contender == "churnml_memory":
            tx, ev = load(folder)
            # the frames already satisfy the contract: skip validation, register zero-copy
            data = CustomerData(transactions=tx, events=ev)
        else:
            data = {"transactions": str(folder / "transactions.parquet"),
                    "events": str(folder / "events.parquet")}
        t1 = time.perf_counter()
        out = build_features(data, CUTOFF, threads=THREADS, memory_limit=MEMORY_LIMIT)
    t2 = time.perf_counter()
    peak = _rss_gb("VmHWM")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    out.to_parquet(folder / f"out_{contender}.parquet")
    return {"wall_s": t2 - t0, "load_s": t1 - t0, "compute_s": t2 - t1, "cpu_s": cpu,
            "peak_rss_gb": peak,
            "rows": len(out),
            "features": sum(c not in ("customer_id", "cutoff") for c in out.columns)}


def run_worker(contender: str, folder: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", contender, "--data", str(folder)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(folder: Path) -> dict[str, object]:
    """Do churnml and pandas agree on every row and feature?"""
    ours = pd.read_parquet(folder / "out_churnml_parquet.parquet").drop(columns="cutoff")
    ref = pd.read_parquet(folder / "out_pandas.parquet")
    ours = ours.sort_values("customer_id").reset_index(drop=True)
    ref = ref.sort_values("customer_id").reset_index(drop=True)[ours.columns]
    bad = [
        c for c in ours.columns
        if not np.allclose(ours[c], ref[c], rtol=TOLERANCE, atol=TOLERANCE, equal_nan=True)
    ]
    same_ids = bool((ours["customer_id"].to_numpy() == ref["customer_id"].to_numpy()).all())
    return {"match": same_ids and not bad, "mismatched_features": bad}


# --------------------------------------------------------------------------- main


CONTENDERS = {"churnml_parquet": "churnml (parquet)", "churnml_memory": "churnml (in memory)",
              "pandas": "pandas"}
SIZE_FILE = "size.json"  # in a reused data folder: the row counts it was generated with


def prepare_data(size: str, folder: Path) -> tuple[dict[str, int], float | None]:
    """Row counts of the data in ``folder`` and the seconds spent generating them (None when
    data of this size were already there)."""
    marker = folder / SIZE_FILE
    if marker.exists() and json.loads(marker.read_text()).get("size") == size:
        return json.loads(marker.read_text())["rows"], None
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rows = write_data(size, folder)
    marker.write_text(json.dumps({"size": size, "rows": rows}))
    return rows, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--data-dir", help="folder for the generated data, reused when it "
                        "holds data of this size (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS),
                        help="contenders to run (default: all; outputs are compared when "
                        "churnml_parquet and pandas both run)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    contenders = {k: v for k, v in CONTENDERS.items() if not args.only or k in args.only}
    with tempfile.TemporaryDirectory(prefix="churnml-bench-") as tmp:
        folder = Path(args.data_dir or tmp)
        with console.status(f"generating {args.size} data ..."):
            rows, gen_s = prepare_data(args.size, folder)
        runs = {}
        for key, label in contenders.items():
            with console.status(f"running {label} ..."):
                runs[key] = run_worker(key, folder)
        both = {"churnml_parquet", "pandas"} <= set(runs)
        check = compare(folder) if both else {}
    result: dict[str, object] = {
        "size": args.size, **rows, "cutoff": str(CUTOFF), "generate_s": gen_s,
        "features": next(iter(runs.values()))["features"],
        "feature_rows": next(iter(runs.values()))["rows"], "runs": runs, **check,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min": os.getloadavg()[0],
                    "duckdb_threads": THREADS, "duckdb_memory_limit": MEMORY_LIMIT},
    }
    if both:
        base, ours = runs["pandas"], runs["churnml_parquet"]
        result["speedup_vs_pandas"] = base["wall_s"] / ours["wall_s"]
        result["cpu_ratio_vs_pandas"] = base["cpu_s"] / ours["cpu_s"]
        result["memory_ratio_vs_pandas"] = base["peak_rss_gb"] / ours["peak_rss_gb"]
    table = Table(title=f"{result['features']} features, {rows['customers']:,} customers, "
                  f"{rows['transactions']:,} transactions + {rows['events']:,} events")
    for col in ("contender", "wall s", "load s", "compute s", "CPU s", "peak RSS GB"):
        table.add_column(col, justify="right" if col != "contender" else "left")
    for key, label in contenders.items():
        r = runs[key]
        table.add_row(label, f"{r['wall_s']:.1f}", f"{r['load_s']:.1f}", f"{r['compute_s']:.1f}",
                      f"{r['cpu_s']:.1f}", f"{r['peak_rss_gb']:.2f}")
    console.print(table)
    console.print(f"1-minute load average: {os.getloadavg()[0]:.2f}")
    if both:
        console.print(
            f"churnml (parquet) vs pandas: {result['speedup_vs_pandas']:.1f}x faster "
            f"({result['cpu_ratio_vs_pandas']:.1f}x less CPU), "
            f"{result['memory_ratio_vs_pandas']:.1f}x less peak memory; outputs match: "
            f"{check['match']}"
            + (f" (differ: {check['mismatched_features']})" if not check["match"] else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
