"""Benchmark: end-to-end batch scoring of a large customer base.

Synthetic transaction and event logs come from :mod:`benchmarks.features` (numpy, at run
time, written to Parquet). Churn and value models with the default hyper-parameters (up to
300 trees, 31 leaves, depth 6, early stopping) are trained on a small dataset from the same
generator and registered in a SQLite MLflow store. The scoring run -- load the champions,
features as of the cutoff (DuckDB over the Parquet files), both models, reasons in words for
every customer of an explained segment (path attribution), segments, and the Parquet write
of the scores plus the segment summary -- runs in its own subprocess, so its wall time and
peak resident memory (``VmHWM``) are its own. Prints a table and writes
``benchmarks/results/scoring.json`` (``scoring_large.json`` for ``--size large``).

With ``--survival`` a :class:`~churnml.survival.hazard.DiscreteTimeHazard` (defaults, single
threaded, the churn model's features plus ``tenure``, 30-day periods, grid up to 24) is
fitted on the same small dataset, logged in the same run as its survival champion, and the
scoring run is measured twice on the same data in the same process tree: without it and with
it (curves, ``p_active_*``, remaining lifetime, median, lifetime value with its 80 %
interval, the tenure query); the ratio of wall times is reported (``_survival`` in the JSON
name).

    python benchmarks/scoring.py                 # 100k customers, 5M transactions + 5M events
    python benchmarks/scoring.py --size large    # 1M customers, 50M + 50M
    python benchmarks/scoring.py --size large --survival   # off vs on, same data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features import CUTOFF, MEMORY_LIMIT, SIZES, THREADS, _rss_gb, write_data  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_SIZE = "small"  # models are trained on this size of the same generator
TRAIN_CUTOFFS = ["2024-03-01", "2024-06-01"]
TOP_SHARE = 0.2  # the top 20 % by value at risk must all have reasons
TARGET_S, TARGET_GB = 90.0, 4.0


SURVIVAL_NAME = "churnml-survival"
TARGET_SURVIVAL_RATIO = 1.5  # scoring with survival columns / without, wall time


def train(folder: Path, survival: bool = False) -> dict[str, object]:
    """Fit both models on the small dataset and register them as champions (and the hazard
    model, logged in the same run, with ``survival``)."""
    from churnml.labels import build_panel
    from churnml.models import ChurnClassifier, LTVModel
    from churnml.training.tracking import (
        CHAMPION,
        CHURN_MODEL,
        CHURN_OUTPUT,
        LTV_MODEL,
        LTV_OUTPUT,
        log_model,
        start_run,
    )

    data = {"transactions": str(folder / "transactions.parquet"),
            "events": str(folder / "events.parquet")}
    panel = build_panel(data, TRAIN_CUTOFFS)
    X = panel.drop(columns=["customer_id", "cutoff", "churned", "ltv"])
    churn = ChurnClassifier().fit(X, panel["churned"], groups=panel["customer_id"])
    ltv = LTVModel().fit(X, panel["ltv"], groups=panel["customer_id"])
    hazard, Xs = None, None
    if survival:
        from churnml.survival.durations import build_survival_panel
        from churnml.survival.hazard import DiscreteTimeHazard

        sp = build_survival_panel(data, TRAIN_CUTOFFS, period_days=30)
        Xs = sp[[*X.columns, "tenure"]]
        n_periods = max(1, min(24, int(sp["duration"].max())))
        hazard = DiscreteTimeHazard(n_periods=n_periods, n_jobs=1).fit(
            Xs, sp[["duration", "event"]], groups=sp["customer_id"])
        # the spread of spend, fitted as training fits it (latest cutoff, churn look-back)
        import pandas as pd

        from churnml.config import ChurnConfig
        from churnml.survival.spend import spend_at_latest_cutoff

        spread = spend_at_latest_cutoff(pd.read_parquet(folder / "transactions.parquet"), sp,
                                        30, ChurnConfig().lookback_days)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with start_run("churnml-benchmark", tracking_uri=uri):
        log_model(churn, X, output=CHURN_OUTPUT, registered_model_name=CHURN_MODEL,
                  alias=CHAMPION)
        log_model(ltv, X, output=LTV_OUTPUT, registered_model_name=LTV_MODEL, alias=CHAMPION)
        if hazard is not None:  # as the survival stage of training logs it
            from churnml.survival.person_period import with_time_features
            from churnml.survival.spend import PARAM_PREFIX
            from churnml.training.tracking import INPUT_EXAMPLE_ROWS, SURVIVAL_OUTPUT, log_params

            example = Xs.head(INPUT_EXAMPLE_ROWS)
            example = with_time_features(example, example["tenure"].to_numpy(float), 1)
            log_model(hazard, example, output=SURVIVAL_OUTPUT,
                      registered_model_name=SURVIVAL_NAME, alias=CHAMPION)
            log_params(spread.params(), prefix=PARAM_PREFIX)
    out: dict[str, object] = {"tracking_uri": uri, "train_rows": len(panel),
                              "features": X.shape[1], "churn_trees": churn.n_iter_,
                              "ltv_kind": ltv.kind}
    if hazard is not None:
        out.update(survival_rows=len(Xs), survival_trees=hazard.n_iter_,
                   survival_periods=hazard.n_periods_)
    return out


def worker(folder: Path, tracking_uri: str, out: Path, survival: bool = False
           ) -> dict[str, object]:
    """The measured run: load, score, explain, segment and write."""
    from churnml.config import SurvivalConfig
    from churnml.scoring import load_registered, score, write_scores
    from churnml.training.tracking import CHAMPION, CHURN_MODEL, LTV_MODEL

    t0 = time.perf_counter()
    models = load_registered(f"models:/{CHURN_MODEL}@{CHAMPION}",
                             f"models:/{LTV_MODEL}@{CHAMPION}", tracking_uri)
    if survival:
        from churnml.scoring.loading import with_survival

        models, note = with_survival(models, SURVIVAL_NAME, CHAMPION, tracking_uri)
        if note:
            raise RuntimeError(note)
    load_s = time.perf_counter() - t0
    data = {"transactions": str(folder / "transactions.parquet"),
            "events": str(folder / "events.parquet")}
    result = score(data, models, cutoff=CUTOFF, scored_at=CUTOFF, threads=THREADS,
                   memory_limit=MEMORY_LIMIT, workdir=folder,
                   survival=SurvivalConfig(enabled=True) if survival else None)
    t1 = time.perf_counter()
    write_scores(result.scores, out / "scores.parquet", result.summary,
                 out / "segment_summary.csv")
    write_s = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    s = result.scores
    top = s["rank"] <= TOP_SHARE * len(s)
    return {
        "wall_s": wall, "load_models_s": load_s, **result.timings, "write_s": write_s,
        "peak_rss_gb": _rss_gb("VmHWM"), "customers": len(s), "reasons": result.n_reasons,
        "reasons_per_s": result.n_reasons / result.timings["reasons_s"],
        "reason_share": result.n_reasons / len(s),
        "top_20pct_all_explained": bool(s.loc[top, "reasons"].notna().all()),
        "survival_columns": [c for c in s.columns if c.startswith(("p_active_", "lifetime_"))],
        "summary": result.summary.to_dict(orient="records"),
        "example_reasons": s["reasons"].dropna().head(5).tolist(),
    }


def run_worker(folder: Path, tracking_uri: str, out: Path, survival: bool = False
               ) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", str(folder), "--tracking-uri", tracking_uri,
           "--worker-out", str(out), *(["--survival"] if survival else [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the scoring worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--survival", action="store_true",
                        help="also score with the survival model and compare (off vs on)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.tracking_uri, Path(args.worker_out),
                                args.survival), default=str))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with tempfile.TemporaryDirectory(prefix="churnml-score-bench-") as tmp:
        train_dir, data_dir = Path(tmp) / "train", Path(tmp) / "data"
        train_dir.mkdir()
        data_dir.mkdir()
        with console.status("training models on the small dataset ..."):
            write_data(TRAIN_SIZE, train_dir, seed=1)
            trained = train(train_dir, args.survival)
        with console.status(f"generating {args.size} data ..."):
            t = time.perf_counter()
            rows = write_data(args.size, data_dir)
            gen_s = time.perf_counter() - t
        with console.status("scoring ..."):
            run = run_worker(data_dir, str(trained["tracking_uri"]), Path(tmp))
        run_on = None
        if args.survival:
            with console.status("scoring with the survival model ..."):
                run_on = run_worker(data_dir, str(trained["tracking_uri"]), Path(tmp), True)
    result = {
        "size": args.size, **rows, "cutoff": str(CUTOFF), "generate_s": gen_s,
        "models": {k: v for k, v in trained.items() if k != "tracking_uri"},
        "attribution": "path", "run": run,
        "meets_targets": run["wall_s"] <= TARGET_S and run["peak_rss_gb"] <= TARGET_GB,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "duckdb_threads": THREADS, "duckdb_memory_limit": MEMORY_LIMIT,
                    "load_average_1m": os.getloadavg()[0]},
    }
    table = Table(title=f"Scoring {rows['customers']:,} customers ({rows['transactions']:,} "
                  f"transactions + {rows['events']:,} events)")
    for col in ("step", "seconds"):
        table.add_column(col, justify="right" if col != "step" else "left")
    if run_on is not None:
        table.add_column("with survival", justify="right")
        result["run_survival"] = run_on
        ratio = run_on["wall_s"] / run["wall_s"]
        result["survival_ratio"] = ratio
        result["meets_survival_targets"] = (ratio <= TARGET_SURVIVAL_RATIO
                                            and run_on["peak_rss_gb"] <= TARGET_GB)
    steps = ("load_models_s", "features_s", "tenure_s", "predict_s", "segment_s", "reasons_s",
             "write_s")
    for r in (run, run_on) if run_on is not None else (run,):
        r["other_s"] = r["wall_s"] - sum(r[k] for k in steps)  # finish, summary, profile
    for key in (*steps, "other_s", "wall_s"):
        table.add_row(key.removesuffix("_s"), f"{run[key]:.1f}",
                      *([f"{run_on[key]:.1f}"] if run_on is not None else []))
    console.print(table)
    if run_on is not None:
        console.print(
            f"with survival: wall {run_on['wall_s']:.1f} s = {result['survival_ratio']:.2f} x "
            f"without (target <= {TARGET_SURVIVAL_RATIO}); peak RSS "
            f"{run_on['peak_rss_gb']:.2f} GB; columns {', '.join(run_on['survival_columns'])}")
    console.print(
        f"peak RSS {run['peak_rss_gb']:.2f} GB; reasons for {run['reasons']:,} customers "
        f"({run['reason_share']:.0%}) at {run['reasons_per_s']:,.0f}/s; top 20 % all "
        f"explained: {run['top_20pct_all_explained']}; targets (<= {TARGET_S:.0f} s, "
        f"<= {TARGET_GB:.0f} GB) met: {result['meets_targets']}")
    suffix = "_survival" if args.survival else ""
    out = Path(args.out) if args.out else RESULTS / (
        f"scoring{suffix}.json" if args.size == "medium" else
        f"scoring_{args.size}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
