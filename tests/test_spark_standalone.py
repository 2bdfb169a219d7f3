"""`churnml features` and `churnml score` on a real standalone Spark cluster: a master and a
worker started on 127.0.0.1 with ``spark-class`` from the pyspark install, the commands run
as separate processes against ``spark://127.0.0.1:<port>`` (so executors are other JVMs and
Python workers than the driver's), their outputs equal to the DuckDB run's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churnml.data.simulate import simulate

pyspark = pytest.importorskip("pyspark")

pytestmark = [pytest.mark.spark, pytest.mark.slow]

N_CUSTOMERS = 200
SEED = 11
CUTOFF = "2024-06-01"
SCORED_AT = "2025-01-02T08:00:00Z"
STARTUP_S = 600  # generous: a loaded machine may take minutes to start two JVMs
CHURNML = [str(Path(sys.executable).parent / "churnml")]  # the installed command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(log: Path, text: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{log.name} exited early:\n{log.read_text()[-3000:]}")
        if log.exists() and text in log.read_text():
            return
        time.sleep(1)
    pytest.fail(f"no {text!r} in {log.name} after {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> str:
    """A standalone master and one worker (1 core, 1 GB) on 127.0.0.1; stopped at the end."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+")
    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable,
           "SPARK_WORKER_DIR": str(logs / "work"), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_NO_DAEMONIZE": "1"}
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []

    def stop() -> None:
        for p in reversed(processes):
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    request.addfinalizer(stop)
    spark_class = str(home / "bin" / "spark-class")
    for name, args, ready in (
        ("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(port), "--webui-port", str(_free_port())],
         "I have been elected leader"),
        ("worker", ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                    "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port())],
         "Successfully registered with master"),
    ):
        log = logs / f"{name}.log"
        with log.open("w") as out:
            processes.append(subprocess.Popen([spark_class, *args], env=env, stdout=out,
                                              stderr=subprocess.STDOUT))
        _wait_for(log, ready, processes[-1])
    return url


def _churnml(*args: str) -> None:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run([*CHURNML, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def test_features_and_scores_on_a_standalone_cluster_equal_duckdb(
        cluster, migrated_db, tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, table in simulate(N_CUSTOMERS, seed=SEED).tables().items():
        table.to_parquet(raw / f"{name}.parquet", index=False)
    store = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, store)
    configs = {}
    for engine in ("duckdb", "cluster"):
        features = {"engine": "duckdb"} if engine == "duckdb" else {
            "engine": "spark", "spark_master": cluster, "spark_driver_memory": "1g",
            "spark_conf": {"spark.executor.memory": "512m", "spark.cores.max": "1",
                           "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}}
        cfg = {"name": "standalone", "data": {"dir": str(raw)}, "features": features,
               "tracking": {"uri": f"sqlite:///{store}"},
               "training": {"n_origins": 1, "ltv_candidates": [{"kind": "hurdle"}]},
               "output_dir": str(tmp_path / engine)}
        configs[engine] = tmp_path / f"{engine}.yaml"
        configs[engine].write_text(yaml.safe_dump(cfg))
    _churnml("train", "--config", str(configs["duckdb"]))
    for path in configs.values():
        _churnml("features", "--config", str(path), "--cutoff", CUTOFF)
        _churnml("score", "--config", str(path), "--cutoff", CUTOFF, "--scored-at", SCORED_AT)
    out = {e: tmp_path / e for e in configs}
    assert (out["cluster"] / "features.parquet").is_dir()  # written by the executors
    keys = ["cutoff", "customer_id"]
    features = {e: pd.read_parquet(out[e] / "features.parquet").sort_values(keys)
                .reset_index(drop=True) for e in out}
    assert len(features["duckdb"]) > 50
    assert list(features["cluster"].columns) == list(features["duckdb"].columns)
    pd.testing.assert_frame_equal(features["cluster"].astype(features["duckdb"].dtypes),
                                  features["duckdb"], rtol=1e-9)
    scores = {e: pd.read_parquet(out[e] / "scores.parquet").sort_values("rank")
              .reset_index(drop=True) for e in out}
    a, b = scores["cluster"], scores["duckdb"]
    assert a["customer_id"].tolist() == b["customer_id"].tolist() and len(b) > 50
    for col in ("churn_probability", "expected_value", "value_if_retained", "value_at_risk"):
        np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-9, err_msg=col)
    for col in ("rank", "risk_segment", "suggested_action"):
        assert a[col].tolist() == b[col].tolist(), col
    assert a["reasons"].fillna("").tolist() == b["reasons"].fillna("").tolist()
