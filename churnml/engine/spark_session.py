"""The SparkSession churnml starts, sized for the machine, and errors that end a command.

When no session is active, :func:`start_session` starts one on ``features.spark_master``
with these defaults (every key can be overridden by ``features.spark_conf``):

* ``spark.driver.memory``: ``features.spark_driver_memory``; ``auto`` = half the machine's
  physical memory (at least 1 GB, at most :data:`MAX_AUTO_DRIVER_MB`). In local mode the
  driver JVM also runs every task, so this is the memory of the whole job.
* ``spark.driver.maxResultSize``: half the driver memory (results collected to the driver:
  the training rows, the segment summary).
* ``-XX:+ExitOnOutOfMemoryError`` in ``spark.driver.extraJavaOptions``: a JVM out of heap
  exits at once (exit code 3) instead of leaving a dead thread that Python waits on forever.
* ``spark.sql.execution.arrow.pyspark.fallback.enabled`` false: pandas <-> Spark through
  Arrow or an error, never a silent fallback to row-by-row conversion in Python, which is
  orders of magnitude slower and, once the driver has died, spent minutes converting rows
  for a dead JVM (on a busy machine) before the failure surfaced.
* local masters: ``spark.sql.shuffle.partitions`` = 2 x the cores used (Spark's 200 are
  tiny tasks on one machine), no console progress bar.

:func:`spark_errors` turns a failure of the JVM (out of memory, lost executor, lost py4j
connection, result too large) into :class:`SparkJobError`, whose message says which setting
to raise.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from churnml.errors import ChurnmlError

APP_NAME = "churnml"
AUTO = "auto"
DRIVER_MEMORY_SHARE = 0.5  # of physical memory, for spark_driver_memory: auto
MIN_AUTO_DRIVER_MB = 1024
MAX_AUTO_DRIVER_MB = 64 * 1024
RESULT_SIZE_SHARE = 0.5  # of the driver memory, for spark.driver.maxResultSize
PARTITIONS_PER_CORE = 2
OOM_EXIT_CODE = 3  # what the JVM exits with under -XX:+ExitOnOutOfMemoryError
EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"
JVM_EXIT_WAIT_S = 10.0  # after a broken connection, how long to wait for the JVM's exit code
_LOCAL = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")
_SIZE = re.compile(r"^(\d+)([kmgt]?)b?$", re.IGNORECASE)
_UNITS_MB = {"k": 1 / 1024, "": 1 / (1024 * 1024), "m": 1, "g": 1024, "t": 1024 * 1024}


class SparkJobError(ChurnmlError):
    """Spark failed in a way the user fixes with a setting (named in the message)."""


def memory_mb(size: str) -> int:
    """``'512m'``, ``'4g'``, ``'4096'`` (bytes without a unit, as Spark reads it) -> MB."""
    match = _SIZE.match(str(size).strip())
    if match is None:
        raise ChurnmlError(f"not a memory size: {size!r} (e.g. '4g' or '512m')")
    return int(int(match.group(1)) * _UNITS_MB[match.group(2).lower()])


def machine_memory_mb() -> int:
    """Physical memory of this machine, MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 * 1024))


def auto_driver_memory_mb(physical_mb: int | None = None) -> int:
    """Half the physical memory, within [1 GB, 64 GB]."""
    physical = machine_memory_mb() if physical_mb is None else physical_mb
    return int(min(max(physical * DRIVER_MEMORY_SHARE, MIN_AUTO_DRIVER_MB), MAX_AUTO_DRIVER_MB))


def local_cores(master: str) -> int | None:
    """Cores of a ``local[n]`` / ``local[*]`` / ``local`` master; None for a cluster."""
    match = _LOCAL.match(master.strip())
    if match is None:
        return None
    if match.group(2) is None:
        return 1
    return os.cpu_count() or 1 if match.group(2) == "*" else int(match.group(2))


def session_conf(master: str, driver_memory: str = AUTO,
                 overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings of a session churnml starts (module docstring); ``overrides`` win."""
    overrides = dict(overrides or {})
    memory = overrides.get("spark.driver.memory") or (
        f"{auto_driver_memory_mb()}m" if driver_memory == AUTO else driver_memory)
    mb = memory_mb(memory)
    conf = {
        "spark.driver.memory": memory,
        "spark.driver.maxResultSize": f"{int(mb * RESULT_SIZE_SHARE)}m",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    cores = local_cores(master)
    if cores is not None:
        conf["spark.sql.shuffle.partitions"] = str(max(1, PARTITIONS_PER_CORE * cores))
        conf["spark.ui.showConsoleProgress"] = "false"
    conf.update(overrides)
    java = conf.get("spark.driver.extraJavaOptions", "")
    if "OutOfMemoryError" not in java:
        conf["spark.driver.extraJavaOptions"] = f"{java} {EXIT_ON_OOM}".strip()
    return conf


def start_session(master: str = "local[*]", driver_memory: str = AUTO,
                  conf: Mapping[str, str] | None = None) -> tuple[Any, bool]:
    """``(session, created)``: the active SparkSession as it is, or a new one on ``master``
    with :func:`session_conf` (``created`` True: the caller stops it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    builder = SparkSession.builder.master(master).appName(APP_NAME)
    for key, value in session_conf(master, driver_memory, conf).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, a bad setting, a master that does not answer
        raise SparkJobError(f"could not start Spark on {master!r} (needs Java 17+; check "
                            f"features.spark_master / spark_conf): "
                            f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session, True


def stop_session(session: Any) -> None:
    """Stop a session churnml started; a JVM that is already gone is not an error."""
    try:
        session.stop()
    except Exception:  # noqa: BLE001 - the JVM may have died: nothing left to stop
        pass


def _jvm_exit_code(session: Any, wait: float) -> int | None:
    """Exit code of the local driver JVM churnml's Python launched (None: alive/unknown)."""
    try:
        proc = session.sparkContext._gateway.proc
    except AttributeError:
        return None
    if proc is None:
        return None
    try:
        return proc.wait(timeout=wait)
    except Exception:  # noqa: BLE001 - still running (TimeoutExpired) or not waitable
        return None


def _conf(session: Any, key: str, default: str) -> str:
    try:
        return str(session.sparkContext.getConf().get(key, default))
    except Exception:  # noqa: BLE001 - the JVM is gone: report the default
        return default


_CONNECTION_LOST = ("Answer from Java side is empty", "Error while receiving",
                    "Error while sending", "Connection refused", "Broken pipe",
                    "Connection reset", "JAVA_GATEWAY_EXITED", "SparkContext was shut down",
                    "Cannot call methods on a stopped SparkContext")


WATCHED = ("spark.driver.memory", "spark.driver.maxResultSize", "spark.executor.memory")
DEFAULTS = {"spark.driver.memory": "1g", "spark.driver.maxResultSize": "1g",
            "spark.executor.memory": "1g"}


def settings(session: Any) -> dict[str, str]:
    """The memory settings the hints name, read while the JVM is alive."""
    return {key: _conf(session, key, DEFAULTS[key]) for key in WATCHED}


def explain_failure(exc: BaseException, session: Any,
                    known: Mapping[str, str] | None = None) -> SparkJobError | None:
    """A :class:`SparkJobError` with a hint for a JVM-side failure; None for other errors.
    ``known``: the :func:`settings` read before the failure (a dead JVM cannot tell)."""
    known = dict(known or {})

    def setting(key: str) -> str:
        return known.get(key) or _conf(session, key, DEFAULTS[key])

    text = f"{type(exc).__name__}: {exc}"
    connection = isinstance(exc, ConnectionError | EOFError | BrokenPipeError) or any(
        s in text for s in _CONNECTION_LOST) or type(exc).__name__ == "Py4JNetworkError"
    code = _jvm_exit_code(session, JVM_EXIT_WAIT_S if connection else 0.0)
    memory = setting("spark.driver.memory")
    raise_driver = (f"raise features.spark_driver_memory (now {memory}; or spark_conf "
                    f"spark.driver.memory)")
    if code == OOM_EXIT_CODE:
        return SparkJobError(
            f"the Spark driver ran out of memory (java.lang.OutOfMemoryError; the JVM exited): "
            f"{raise_driver}, or read the tables with Spark (data.tables.<t>.table / path) "
            f"rather than from pandas")
    if code is not None:
        return SparkJobError(f"the Spark driver JVM exited (code {code}) during the job; "
                             f"see its log above. If it ran out of memory, {raise_driver}")
    if "maxResultSize" in text:
        return SparkJobError(
            "a result collected to the Spark driver exceeds spark.driver.maxResultSize "
            f"(now {setting('spark.driver.maxResultSize')}): raise it in "
            "features.spark_conf, or lower training.spark_max_panel_rows")
    if "OutOfMemoryError" in text:
        return SparkJobError(
            f"Spark ran out of memory (java.lang.OutOfMemoryError): {raise_driver}; on a "
            f"cluster raise spark.executor.memory (now "
            f"{setting('spark.executor.memory')})")
    if any(s in text for s in ("ExecutorLostFailure", "Executor heartbeat timed out",
                               "exceeding memory limits", "Lost executor")):
        return SparkJobError(
            "a Spark executor was lost during the job (often killed for using too much "
            "memory): raise spark.executor.memory / spark.executor.memoryOverhead in "
            "features.spark_conf, or spark.sql.shuffle.partitions for smaller tasks")
    if connection:
        return SparkJobError(
            "lost the connection to the Spark driver JVM (py4j); if it ran out of memory, "
            f"{raise_driver}")
    return None


@contextmanager
def spark_errors(session: Any) -> Iterator[None]:
    """Re-raise JVM-side failures inside the block as :class:`SparkJobError` (with a hint);
    other exceptions pass unchanged."""
    known = settings(session)
    try:
        yield
    except ChurnmlError:
        raise
    except Exception as exc:
        failure = explain_failure(exc, session, known)
        if failure is None:
            raise
        raise failure from exc
