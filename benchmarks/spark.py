"""Benchmark: features and scoring on local Spark (``local[2]``) against DuckDB, same files.

The transaction and event logs of :mod:`benchmarks.features` (numpy, written to Parquet) are
read by both engines from the same files. Four contenders, each in its own subprocess:

* ``duckdb_features`` / ``spark_features``: the default features as of the cutoff, written
  to Parquet (DuckDB: 2 threads; Spark: a session started by churnml with its documented
  defaults on ``local[2]``, tables read by ``spark.read.parquet``);
* ``duckdb_scoring`` / ``spark_scoring``: the whole scoring job (features, both models,
  segments, reasons, Parquet scores and per-segment files) with models trained on a small
  dataset of the same generator (``benchmarks/scoring.py``) and registered in SQLite MLflow.

Measured: wall seconds (the Spark ones with and without starting the JVM), peak memory of the
driver (Python ``VmHWM`` plus the driver JVM's ``VmHWM``; a thread also samples the JVM's and
its Python workers' resident memory every half second, and the JVM heap's peak comes from the
Spark UI), and for Spark the completed stages with their executor times, the bytes shuffled
and spilled (the Spark UI's REST API), plus the 1-minute load average before and after each
contender. Outputs are compared value by value (features to 1e-9 relative, scores to 1e-9
absolute, segments exactly). Prints a table and writes
``benchmarks/results/spark[_<size>|_<rows>].json``.

    python benchmarks/spark.py                 # 100k customers, 5M transactions + 5M events
    python benchmarks/spark.py --size large    # 1M customers, 50M + 50M
    python benchmarks/spark.py --rows 100000000 --tiles 10 --data-dir /tmp/bench \\
        --only duckdb_features spark_features  # 100M + 100M, 2M customers (50 each)

Data of ``--rows`` are generated on disk ``CHUNK_ROWS`` at a time (``features.write_data``),
so the generator's memory does not grow with the rows.
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
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features import CUTOFF, MEMORY_LIMIT, SIZES, THREADS, _rss_gb, write_data  # noqa: E402
from scoring import TRAIN_SIZE, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MASTER = f"local[{THREADS}]"
TARGET_RATIO = 8.0  # Spark within 8x of DuckDB at 5 M rows (issue 13)
FEATURE_RTOL = 1e-9
SCORE_ATOL = 1e-9
ROWS_PER_CUSTOMER = 50  # --rows without --customers: as the named sizes
SAMPLE_S = 0.5  # resident memory sampling interval of the driver JVM and its Python workers
CONTENDERS = {"duckdb_features": "DuckDB features", "spark_features": "Spark features",
              "duckdb_scoring": "DuckDB scoring", "spark_scoring": "Spark scoring"}


def _tables(folder: Path) -> dict[str, str]:
    return {"transactions": str(folder / "transactions.parquet"),
            "events": str(folder / "events.parquet")}


def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of this process or of ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Descendants of ``pid`` (the driver JVM's Python workers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


class RssSampler(threading.Thread):
    """Peak resident memory (GB) of a process and, summed, of its descendants, sampled every
    ``SAMPLE_S`` seconds until :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_gb, self.children_peak_gb, self.samples = pid, 0.0, 0.0, 0
        self.cpu_s = 0.0  # this thread's own CPU seconds (not the measured work's)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_S):
            try:
                self.peak_gb = max(self.peak_gb, _proc_kb(self.pid, "VmRSS") * 1024 / 1e9)
                kids = 0
                for kid in _children(self.pid):
                    try:
                        kids += _proc_kb(kid, "VmRSS")
                    except OSError:
                        pass
                self.children_peak_gb = max(self.children_peak_gb, kids * 1024 / 1e9)
                self.samples += 1
            except OSError:
                return
            finally:
                self.cpu_s = time.thread_time()

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        return {"jvm_sampled_peak_rss_gb": self.peak_gb,
                "python_workers_sampled_peak_rss_gb": self.children_peak_gb,
                "rss_samples": self.samples}


def _rest(sc, path: str) -> list[dict]:
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/{path}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _spark_metrics(session) -> dict[str, object]:
    """Completed stages (with executor seconds, the largest first), shuffled and spilled
    bytes, the driver JVM's peak RSS (``VmHWM``) and its heap's peak (Spark's executor
    metrics: in local mode the driver is the executor)."""
    sc = session.sparkContext
    stages = _rest(sc, "stages?status=complete")
    jvm = sc._gateway.proc.pid
    peaks = [e.get("peakMemoryMetrics", {}) for e in _rest(sc, "executors")
             if e.get("id") == "driver"]
    heap = peaks[0].get("JVMHeapMemory") if peaks else None
    gb = lambda key: sum(s.get(key, 0) for s in stages) / 1e9  # noqa: E731
    top = sorted(stages, key=lambda s: -s.get("executorRunTime", 0))
    return {"stages": len(stages), "shuffle_write_gb": gb("shuffleWriteBytes"),
            "input_gb": gb("inputBytes"), "spill_disk_gb": gb("diskBytesSpilled"),
            "spill_memory_gb": gb("memoryBytesSpilled"),
            "executor_run_s": sum(s.get("executorRunTime", 0) for s in stages) / 1e3,
            "jvm_process": Path(f"/proc/{jvm}/comm").read_text().strip(),
            "jvm_peak_rss_gb": _proc_kb(jvm, "VmHWM") * 1024 / 1e9,
            "jvm_peak_heap_gb": heap / 1e9 if heap else None,
            "stage_times": [{"id": s["stageId"], "name": s.get("name", "")[:60],
                             "tasks": s.get("numTasks"),
                             "executor_run_s": s.get("executorRunTime", 0) / 1e3,
                             "gc_s": s.get("jvmGcTime", 0) / 1e3,
                             "input_gb": s.get("inputBytes", 0) / 1e9,
                             "shuffle_write_gb": s.get("shuffleWriteBytes", 0) / 1e9,
                             "spill_disk_gb": s.get("diskBytesSpilled", 0) / 1e9}
                            for s in top[:8]]}


def worker(contender: str, folder: Path, out: Path, tracking_uri: str,
           spark_conf: dict[str, str] | None = None) -> dict[str, object]:
    """One measured run in this process."""
    t0 = time.perf_counter()
    result: dict[str, object] = {"load_average_before": os.getloadavg()[0]}
    if contender.startswith("spark"):
        from churnml.engine.spark_session import spark_errors, start_session, stop_session

        session, _ = start_session(MASTER, conf=spark_conf)
        sampler = RssSampler(session.sparkContext._gateway.proc.pid)
        sampler.start()
        conf = session.sparkContext.getConf()
        result["driver_memory"] = conf.get("spark.driver.memory")
        result["shuffle_partitions"] = conf.get("spark.sql.shuffle.partitions", "200")
        result["spark_conf"] = spark_conf or {}
        result["session_s"] = time.perf_counter() - t0
        tables = {k: session.read.parquet(v) for k, v in _tables(folder).items()}
        jvm_cpu0 = _cpu_s(sampler.pid)
    cpu0 = _cpu_s()
    t1 = time.perf_counter()
    if contender == "duckdb_features":
        from churnml.features import build_features

        build_features(_tables(folder), CUTOFF, threads=THREADS,
                       memory_limit=MEMORY_LIMIT).to_parquet(out / "features.parquet")
    elif contender == "spark_features":
        from churnml.features import build_features
        from churnml.io import write_spark_table

        with spark_errors(session):
            write_spark_table(build_features(tables, CUTOFF, engine="spark"),
                              out / "features.parquet")
    else:
        from churnml.scoring import load_registered, score, write_scores
        from churnml.training.tracking import CHAMPION, CHURN_MODEL, LTV_MODEL

        models = load_registered(f"models:/{CHURN_MODEL}@{CHAMPION}",
                                 f"models:/{LTV_MODEL}@{CHAMPION}", tracking_uri)
        if contender == "duckdb_scoring":
            scored = score(_tables(folder), models, cutoff=CUTOFF, scored_at=CUTOFF,
                           threads=THREADS, memory_limit=MEMORY_LIMIT, workdir=folder)
            write_scores(scored.scores, out / "scores.parquet", scored.summary,
                         out / "segment_summary.csv", out / "segments")
            result["customers"] = len(scored.scores)
        else:
            from churnml.scoring.spark import score_spark_data

            with spark_errors(session):
                scored = score_spark_data(tables, models, cutoff=CUTOFF, scored_at=CUTOFF,
                                          out_dir=out)
            result["customers"] = scored.n_scored
    result["compute_s"] = time.perf_counter() - t1
    # CPU seconds of the work (less the JVM start): a shared machine's load stretches wall
    # time, much less the CPU time (Python workers of the JVM are not counted)
    result["cpu_s"] = _cpu_s() - cpu0
    if contender.startswith("spark"):
        result["cpu_s"] += _cpu_s(sampler.pid) - jvm_cpu0 - sampler.cpu_s
    result["wall_s"] = time.perf_counter() - t0
    result["python_peak_rss_gb"] = _rss_gb("VmHWM")
    result["load_average_after"] = os.getloadavg()[0]
    if contender.startswith("spark"):
        result.update(sampler.stop())
        result.update(_spark_metrics(session))
        stop_session(session)
    return result


def run_worker(contender: str, folder: Path, out: Path, tracking_uri: str,
               spark_conf: list[str] | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--worker", contender, "--data", str(folder),
           "--worker-out", str(out), "--tracking-uri", tracking_uri,
           *(["--spark-conf", *spark_conf] if spark_conf else [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-3:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_features(duck: Path, spark: Path) -> dict[str, object]:
    keys = ["customer_id"]
    a = pd.read_parquet(duck).sort_values(keys).reset_index(drop=True)
    b = pd.read_parquet(spark).sort_values(keys).reset_index(drop=True)
    same_rows = len(a) == len(b) and bool((a["customer_id"].to_numpy()
                                           == b["customer_id"].to_numpy()).all())
    bad = [c for c in a.columns if c not in ("customer_id", "cutoff") and not (
        same_rows and np.allclose(a[c].astype(float), b[c].astype(float), rtol=FEATURE_RTOL,
                                  atol=0, equal_nan=True))]
    return {"features_match": same_rows and not bad, "features_differ": bad}


def compare_scores(duck: Path, spark: Path) -> dict[str, object]:
    a = pd.read_parquet(duck / "scores.parquet").sort_values("rank").reset_index(drop=True)
    b = pd.read_parquet(spark / "scores.parquet").sort_values("rank").reset_index(drop=True)
    numbers = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    diff = {c: float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()))) for c in numbers}
    same = {c: bool((a[c].fillna("") == b[c].fillna("")).all())
            for c in ("customer_id", "rank", "risk_segment", "reasons")}
    return {"scores_match": all(same.values()) and max(diff.values()) <= SCORE_ATOL,
            "score_max_abs_diff": diff, "scores_same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--rows", type=int, help="transactions (instead of --size)")
    parser.add_argument("--events", type=int, help="events with --rows (default: = --rows)")
    parser.add_argument("--customers", type=int, help="customers with --rows (default: "
                        f"--rows / {ROWS_PER_CUSTOMER})")
    parser.add_argument("--tiles", type=int, default=1, help="with --rows: draw 1/TILES of "
                        "the data and write it TILES times over disjoint customers "
                        "(features.write_data)")
    parser.add_argument("--spark-conf", nargs="+", metavar="KEY=VALUE", default=[],
                        help="Spark settings over churnml's defaults (e.g. "
                        "spark.sql.shuffle.partitions=16)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS))
    parser.add_argument("--data-dir", help="reuse/generate the data here (default: temporary)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spark_conf = dict(kv.split("=", 1) for kv in args.spark_conf)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data), Path(args.worker_out),
                                args.tracking_uri, spark_conf), default=str))
        return
    if args.rows:
        counts = (args.customers or max(1, args.rows // ROWS_PER_CUSTOMER), args.rows,
                  args.rows if args.events is None else args.events)
        size = f"{counts[1] / 1e6:g}M" + (f"_tiles{args.tiles}" if args.tiles > 1 else "")
    elif args.customers or args.events is not None or args.tiles > 1:
        parser.error("--customers, --events and --tiles go with --rows")
    else:
        counts, size = args.size, args.size

    from rich.console import Console
    from rich.table import Table

    console = Console()
    contenders = {k: v for k, v in CONTENDERS.items() if not args.only or k in args.only}
    with tempfile.TemporaryDirectory(prefix="churnml-spark-bench-") as tmp:
        root = Path(args.data_dir or tmp)
        train_dir, data_dir = root / "train", root / f"data_{size}"
        for d in (train_dir, data_dir):
            d.mkdir(parents=True, exist_ok=True)
        trained: dict[str, object] = {}
        if any(k.endswith("scoring") for k in contenders):
            with console.status("training models on the small dataset ..."):
                write_data(TRAIN_SIZE, train_dir, seed=1)
                trained = train(train_dir)
        marker = data_dir / "rows.json"
        wanted = dict(zip(("customers", "transactions", "events"),
                          SIZES[counts] if isinstance(counts, str) else counts, strict=True))
        generate_s = None
        if marker.exists() and json.loads(marker.read_text()) == wanted:
            rows = wanted
        else:
            with console.status(f"generating {size} data ..."):
                t = time.perf_counter()
                rows = write_data(counts, data_dir, tiles=args.tiles)
                generate_s = time.perf_counter() - t
            marker.write_text(json.dumps(rows))
        data_gb = sum(f.stat().st_size for f in data_dir.glob("*.parquet")) / 1e9
        console.print(f"data: {rows} in {data_dir} ({data_gb:.2f} GB)")
        runs = {}
        for key, label in contenders.items():
            with console.status(f"running {label} ..."):
                runs[key] = run_worker(key, data_dir, Path(tmp) / key,
                                       str(trained.get("tracking_uri", "")), args.spark_conf)
            console.print(f"{label}: {runs[key]}")
        check: dict[str, object] = {}
        if {"duckdb_features", "spark_features"} <= set(runs):
            check.update(compare_features(Path(tmp) / "duckdb_features" / "features.parquet",
                                          Path(tmp) / "spark_features" / "features.parquet"))
        if {"duckdb_scoring", "spark_scoring"} <= set(runs):
            check.update(compare_scores(Path(tmp) / "duckdb_scoring",
                                        Path(tmp) / "spark_scoring"))
    ratios = {}
    for task in ("features", "scoring"):
        d, s = runs.get(f"duckdb_{task}", {}), runs.get(f"spark_{task}", {})
        if "compute_s" in d and "compute_s" in s:
            ratios[task] = {"wall": s["wall_s"] / d["wall_s"],
                            "without_jvm_start": s["compute_s"] / d["compute_s"],
                            "cpu": s["cpu_s"] / d["cpu_s"]}
    result = {"size": size, **rows, "generate_s": generate_s, "data_gb": data_gb,
              "cutoff": str(CUTOFF), "master": MASTER,
              "runs": runs, **check, "spark_vs_duckdb": ratios, "target_ratio": TARGET_RATIO,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_1min": os.getloadavg()[0]}}
    table = Table(title=f"{rows['customers']:,} customers, {rows['transactions']:,} "
                  f"transactions + {rows['events']:,} events ({MASTER} vs DuckDB {THREADS} "
                  "threads)")
    for col in ("contender", "wall s", "of which JVM start s", "CPU s",
                "peak driver GB (Python + JVM)", "JVM heap peak GB", "stages", "shuffled GB",
                "spilled GB", "load"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for key, label in contenders.items():
        r = runs[key]
        if "error" in r:
            table.add_row(label, f"failed: {r['error']}", *[""] * 8)
            continue
        jvm = max(r.get("jvm_peak_rss_gb", 0.0), r.get("jvm_sampled_peak_rss_gb", 0.0))
        spark = key.startswith("spark")
        table.add_row(label, f"{r['wall_s']:.1f}", f"{r.get('session_s', 0):.1f}",
                      f"{r['cpu_s']:.0f}",
                      f"{r['python_peak_rss_gb'] + jvm:.2f} ({r['python_peak_rss_gb']:.2f} + "
                      f"{jvm:.2f})", f"{r['jvm_peak_heap_gb'] or 0:.2f}" if spark else "",
                      str(r.get("stages", "")),
                      f"{r['shuffle_write_gb']:.2f}" if spark else "",
                      f"{r['spill_disk_gb']:.2f}" if spark else "",
                      f"{r['load_average_before']:.1f}–{r['load_average_after']:.1f}")
    console.print(table)
    for task, r in ratios.items():
        console.print(f"{task}: Spark / DuckDB = {r['wall']:.1f}x wall, "
                      f"{r['without_jvm_start']:.1f}x without the JVM start, "
                      f"{r['cpu']:.1f}x CPU seconds")
    for key in contenders:
        for stage in runs[key].get("stage_times", [])[:4]:
            console.print(f"  {key} stage {stage['id']} ({stage['tasks']} tasks): "
                          f"{stage['executor_run_s']:.1f} executor s, GC {stage['gc_s']:.1f} s, "
                          f"input {stage['input_gb']:.2f} GB, shuffle write "
                          f"{stage['shuffle_write_gb']:.2f} GB, spill "
                          f"{stage['spill_disk_gb']:.2f} GB — {stage['name']}")
    console.print(f"outputs: {check}")
    console.print(f"1-minute load average: {os.getloadavg()[0]:.2f}")
    out = Path(args.out or RESULTS / ("spark.json" if size == "medium"
                                      else f"spark_{size}.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
