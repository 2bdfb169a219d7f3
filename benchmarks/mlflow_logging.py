"""Benchmark: the "MLflow run and registry" step of ``churnml train`` against the fit.

Trains the demo config (``configs/default.yaml``: simulated data, rolling-origin backtest,
LightGBM on one thread) into a new SQLite store in a temporary folder, as ``make demo`` does
on a fresh clone, and reports the seconds of each stage of that one run: the fit (backtest +
final models), the whole logging step and its parts (importing MLflow, creating the store,
logging and registering both models, params and metrics, tables, figures, promotion), and
the import and store creation that ``train`` runs in a background thread during the fit
(off the logging step). The logging step is then repeated on the now existing store (a
routine second ``train``). Wall seconds depend on the machine's load (1-minute load average
in the table); the step's CPU seconds (process time of all threads and child processes) are
about what it takes on a quiet core. Prints a table and writes
``benchmarks/results/mlflow_logging.json``.

    python benchmarks/mlflow_logging.py                     # the demo: 20,000 customers
    python benchmarks/mlflow_logging.py --customers 3000    # quicker; logging barely changes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
TARGET_S = 10.0  # the demo's logging step, on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=None,
                        help="simulated customers (default: the demo config's)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from rich.console import Console

    from churnml.config import load_config
    from churnml.data.loaders import load_data
    from churnml.training.train import (
        BACKGROUND,
        build_training_panel,
        cpu_seconds,
        final_panel,
        log_run,
        promote,
        train,
    )

    cfg = load_config(REPO / "configs" / "default.yaml")
    if args.customers:
        cfg.data.simulated_customers = args.customers
    with tempfile.TemporaryDirectory(prefix="churnml-mlflow-bench-") as tmp:
        cfg.tracking.uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        cfg.output_dir = str(Path(tmp) / "out")
        data = load_data(cfg)
        load_before = os.getloadavg()[0]
        cpu0 = cpu_seconds()
        result = train(cfg, data, console=Console(stderr=True, quiet=True))
        cpu = cpu_seconds() - cpu0
        load_after = os.getloadavg()[0]
        stages = dict(result.seconds)
        fit = sum(v for k, v in stages.items() if k.startswith(("backtest", "final models")))
        logging_s = next(v for k, v in stages.items() if k.startswith("MLflow"))
        parts = dict(result.logging_seconds)
        background = parts.pop(BACKGROUND, 0.0)
        parts["promotion"] = logging_s - sum(parts.values())
        # a routine second run: the store exists, MLflow is imported
        result.logging_seconds = {}
        rows = final_panel(build_training_panel(data, cfg), cfg).tail(200)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        logged = log_run(result, cfg, data, rows[result.models.features])
        promote(cfg, logged, result.backtest.summary, result.run_id, result.backtest.metrics)
        second = time.perf_counter() - start
        second_cpu = cpu_seconds() - cpu_start
    record = {
        "customers": cfg.data.simulated_customers,
        "fit_s": round(fit, 2),
        "logging_s": round(logging_s, 2),
        "logging_cpu_s": round(result.logging_cpu_seconds, 2),
        "logging_over_fit": round(logging_s / fit, 3),
        "logging_parts_s": {k: round(v, 2) for k, v in parts.items()},
        "background_s": round(background, 2),
        "second_logging_s": round(second, 2),
        "second_logging_cpu_s": round(second_cpu, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "train_cpu_s": round(cpu, 1),
        "target_s": TARGET_S,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # at the end
        "load_average_1m_train": [round(load_before, 2), round(load_after, 2)],
        "met_on_cpu": result.logging_cpu_seconds <= TARGET_S,
    }
    print("| customers | fit s | MLflow step s | step CPU s | step / fit | second run s "
          "(CPU s) | train CPU s | load 1 min (start, end of train) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {record['customers']:,} | {fit:.1f} | {logging_s:.1f} | "
          f"{result.logging_cpu_seconds:.1f} | {record['logging_over_fit']:.3f} | "
          f"{second:.1f} ({second_cpu:.1f}) | {cpu:.0f} | {load_before:.1f}, {load_after:.1f} |")
    print()
    print("| MLflow step part | s |")
    print("|---|---|")
    for name, value in parts.items():
        print(f"| {name} | {value:.2f} |")
    print(f"| (import and store creation, overlapped with the fit) | {background:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mlflow_logging.json").write_text(json.dumps(record, indent=1))
    sys.stderr.write(f"wrote {RESULTS / 'mlflow_logging.json'}\n")


if __name__ == "__main__":
    main()
