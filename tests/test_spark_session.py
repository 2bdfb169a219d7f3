"""Sessions churnml starts are sized for the machine, and a driver out of memory ends the
command with a clear error instead of hanging (the old failures: the JVM's serve-Arrow thread
died of OutOfMemoryError and Python waited forever; later, pyspark fell back from Arrow to
row-by-row conversion after the driver had died and spent minutes on a busy machine before
the error surfaced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ceilings import HANG_CEILING_S

from churnml.engine.spark_session import (
    EXIT_ON_OOM,
    SparkJobError,
    auto_driver_memory_mb,
    local_cores,
    memory_mb,
    session_conf,
)
from churnml.errors import ChurnmlError

ROOT = Path(__file__).resolve().parents[1]


def test_memory_sizes_and_auto_driver() -> None:
    assert memory_mb("512m") == 512 and memory_mb("4g") == 4096 and memory_mb("2G") == 2048
    assert memory_mb(str(3 * 1024 * 1024)) == 3
    with pytest.raises(ChurnmlError, match="not a memory size"):
        memory_mb("lots")
    assert auto_driver_memory_mb(24 * 1024) == 12 * 1024  # half
    assert auto_driver_memory_mb(1024) == 1024  # at least 1 GB
    assert auto_driver_memory_mb(1024 * 1024) == 64 * 1024  # at most 64 GB
    assert local_cores("local[2]") == 2 and local_cores("local") == 1
    assert local_cores("local[*]") == os.cpu_count()
    assert local_cores("spark://host:7077") is None and local_cores("yarn") is None


def test_session_conf_defaults_and_overrides() -> None:
    conf = session_conf("local[2]", "2g")
    assert conf["spark.driver.memory"] == "2g"
    assert conf["spark.driver.maxResultSize"] == "1024m"
    assert conf["spark.sql.shuffle.partitions"] == "4"
    assert conf["spark.driver.extraJavaOptions"] == EXIT_ON_OOM
    assert conf["spark.sql.execution.arrow.pyspark.fallback.enabled"] == "false"
    auto = session_conf("local[2]")
    assert memory_mb(auto["spark.driver.memory"]) == auto_driver_memory_mb()
    user = session_conf("yarn", "2g", {"spark.driver.memory": "8g",
                                       "spark.driver.extraJavaOptions": "-Dx=1",
                                       "spark.sql.shuffle.partitions": "400"})
    assert user["spark.driver.memory"] == "8g" and user["spark.driver.maxResultSize"] == "4096m"
    assert user["spark.driver.extraJavaOptions"] == f"-Dx=1 {EXIT_ON_OOM}"
    assert user["spark.sql.shuffle.partitions"] == "400"
    assert "spark.ui.showConsoleProgress" not in user  # cluster: left to Spark


# The old hang: pandas tables shipped into a small driver through Arrow, then results
# collected; the driver heap runs out. Run in a subprocess so its JVM is its own.
OOM_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np, pandas as pd
    from churnml.engine.spark_session import SparkJobError, spark_errors, start_session
    session, created = start_session("local[1]", "512m", {"spark.ui.enabled": "false"})
    assert created
    n = 4_000_000
    frame = pd.DataFrame({"customer_id": np.arange(n), "amount": np.random.rand(n),
                          "label": np.arange(n).astype(str)})
    start = time.perf_counter()
    try:
        with spark_errors(session):
            sdf = session.createDataFrame(frame)
            for _ in range(4):
                sdf = sdf.unionByName(session.createDataFrame(frame))
            sdf.toPandas()
    except SparkJobError as exc:
        print(f"CAUGHT after {time.perf_counter() - start:.1f}s: {exc}")
        sys.exit(7)
    print("NO ERROR")
""")


@pytest.mark.slow
@pytest.mark.spark
def test_driver_out_of_memory_ends_with_a_clear_error_not_a_hang(tmp_path) -> None:
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+")
    pytest.importorskip("pyspark")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # bound by the event (the script ends with SparkJobError); the ceiling only catches a hang
    proc = subprocess.run([sys.executable, "-c", OOM_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=HANG_CEILING_S)
    assert proc.returncode == 7, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "the Spark driver ran out of memory" in proc.stdout
    assert "raise features.spark_driver_memory (now 512m" in proc.stdout
    assert "Attempting non-optimization" not in proc.stderr  # no row-by-row fallback


def test_spark_job_error_is_a_churnml_error() -> None:
    assert issubclass(SparkJobError, ChurnmlError)
