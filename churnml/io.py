"""Atomic table writers: a failed write never leaves a partial file behind.

CSV files are for people as much as for programs: a text cell beginning with ``=``, ``+``,
``-``, ``@``, a tab, CR or LF would run as a formula when the file is opened in a spreadsheet,
so :func:`write_table` prefixes such cells with a single quote (OWASP's CSV-injection rule,
:func:`escape_formulas`) unless told not to. Numbers are never changed (a negative amount
stays a number); Parquet and JSON are written as they are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_object_dtype, is_string_dtype

from churnml.outputs import check_replaceable, mark

FORMATS = ("parquet", "csv", "json")
FILE_MODE = 0o666  # before the umask, as open() creates files
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")  # OWASP CSV injection
FORMULA_ESCAPE = "'"


def file_stem(name: str, fallback: str = "segment") -> str:
    """A file name stem for a user-given name: lower case, each run of characters other than
    ``a-z0-9`` as one ``_`` (``"VIP at risk"`` and ``"vip-at-risk"`` both give
    ``vip_at_risk``)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_") or fallback


def format_of(path: str | Path) -> str:
    """Output format from a file name: ``.parquet``, ``.csv`` or ``.json``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported output format {suffix!r} (use one of {FORMATS})")
    return suffix


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The JSON value in ``path``; a file that is not JSON (truncated, not UTF-8) is a
    :class:`~churnml.errors.ChurnmlError` naming the file, not a bare decoder error."""
    from churnml.errors import ChurnmlError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ChurnmlError(f"{path}: not a valid {what} ({exc}); the file is damaged "
                           "(e.g. a run killed while writing it): remove it or re-create it"
                           ) from exc


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX file systems, so readers see the old file or the new one,
    never half of one; on any exception the temporary file is removed and ``path`` untouched.
    """
    path = Path(path)
    if path.is_dir():
        from churnml.errors import OutputPathError

        raise OutputPathError(f"{path} is a folder; give a file name (the folder and "
                              "its files are left as they are)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the usual umask mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _default_mode() -> int:
    """File mode a plain ``open(path, "w")`` would give: 0o666 minus the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return FILE_MODE & ~umask


def _escape_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return FORMULA_ESCAPE + value
    return value


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell (and column name) that a spreadsheet would read as a
    formula prefixed by ``'``; numeric columns and non-text cells are left as they are."""
    out = df.rename(columns=_escape_cell)
    for i in range(out.shape[1]):
        s = out.iloc[:, i]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        elif not (is_object_dtype(s.dtype) or is_string_dtype(s.dtype)):
            continue
        escaped = s.map(_escape_cell, na_action="ignore")
        if not escaped.equals(s):
            out.isetitem(i, escaped)
    return out


def write_table(df: pd.DataFrame, path: str | Path, *, fmt: str | None = None,
                escape: bool = True) -> Path:
    """Write ``df`` atomically as Parquet, CSV or JSON records (by the file suffix, or
    ``fmt``); CSV text cells are escaped (:func:`escape_formulas`) unless ``escape=False``."""
    fmt = fmt or format_of(path)
    if fmt == "parquet":
        return atomic_write(path, lambda p: df.to_parquet(p, index=False))
    if fmt == "csv":
        table = escape_formulas(df) if escape else df
        return atomic_write(path, lambda p: table.to_csv(p, index=False))
    return atomic_write(
        path, lambda p: df.to_json(p, orient="records", date_format="iso", indent=1)
    )


# --------------------------------------------------------------------------- Spark
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
SPARK_CSV_OPTIONS = {"header": "true", "timestampNTZFormat": "yyyy-MM-dd HH:mm:ss",
                     "timestampFormat": "yyyy-MM-dd HH:mm:ssXXX"}


def is_local(path: str | Path) -> bool:
    """A path on this machine (not ``s3://``, ``dbfs:/``, ...; ``file:`` is local)."""
    text = str(path)
    return text.startswith("file:") or not _URI.match(text)


def _local(path: str | Path) -> Path:
    return Path(str(path).removeprefix("file://").removeprefix("file:"))


def escape_spark_formulas(sdf: Any) -> Any:
    """:func:`escape_formulas` as a Spark projection: string cells starting with one of
    :data:`FORMULA_PREFIXES` get a leading ``'`` (on the executors)."""
    from pyspark.sql import functions as F

    def cell(name: str, kind: str) -> Any:
        col = F.col(f"`{name}`")
        if kind != "string":
            return col
        risky = F.substring(col, 1, 1).isin(*FORMULA_PREFIXES)
        return F.when(risky, F.concat(F.lit(FORMULA_ESCAPE), col)).otherwise(col).alias(name)

    return sdf.select(*[cell(n, k) for n, k in sdf.dtypes])


def write_spark_table(sdf: Any, path: str | Path, *, escape: bool = True,
                      fmt: str | None = None) -> str:
    """Write a Spark DataFrame by the path's suffix, from the executors: ``.parquet`` -> a
    Parquet folder (part files); ``.csv`` -> one CSV file with a header (one task writes
    it; text cells escaped as by :func:`write_table` unless ``escape=False``). Local targets
    are replaced atomically (written beside, then renamed); remote ones
    (URIs) are overwritten by Spark. ``fmt``: the format when the path's suffix does not
    say it (e.g. a staging path)."""
    fmt = fmt or format_of(path)
    if fmt == "json":
        raise ValueError(f"{path}: the Spark route writes .parquet or .csv")
    if fmt == "csv" and escape:
        sdf = escape_spark_formulas(sdf)
    if not is_local(path):
        writer = sdf.write.mode("overwrite")
        if fmt == "csv":
            writer = sdf.coalesce(1).write.mode("overwrite").options(**SPARK_CSV_OPTIONS)
        getattr(writer, fmt)(str(path))
        return str(path)
    target = _local(path)
    check_spark_target(target, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        out = tmp / "out"
        if fmt == "parquet":
            sdf.write.parquet(str(out.resolve()))
            mark(out)  # readers skip hidden files; the next run may replace the folder
            _replace(out, target)
        else:
            sdf.coalesce(1).write.options(**SPARK_CSV_OPTIONS).csv(str(out.resolve()))
            _place_single_part(out, "part-*", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _place_single_part(out: Path, pattern: str, target: Path) -> None:
    """Move the one part file a single Spark task wrote under ``out`` to ``target``
    atomically, with the default file mode (Spark writes parts owner-only)."""
    (part,) = out.glob(pattern)
    os.chmod(part, _default_mode())
    _replace(part, target)


def write_spark_file(sdf: Any, path: str | Path) -> str:
    """One Parquet file at the local ``path``, written by one Spark task (rows in the
    DataFrame's order), placed atomically."""
    target = _local(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        out = tmp / "out"
        sdf.coalesce(1).write.parquet(str(out.resolve()))
        _place_single_part(out, "part-*.parquet", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def check_spark_target(path: str | Path, fmt: str | None = None) -> None:
    """Before any work: a local Spark output (a Parquet folder or a CSV file) may replace
    what is at ``path`` only when that is a file or a folder churnml wrote (its marker,
    :func:`churnml.outputs.owned`); a folder of other files is an
    :class:`~churnml.errors.OutputPathError` naming it. Remote targets are not checked."""
    if not is_local(path):
        return
    target = _local(path)
    if target.is_dir() and (fmt or format_of(target)) == "csv":
        from churnml.errors import OutputPathError

        raise OutputPathError(f"{target} is a folder; give a .csv file name")
    if target.is_dir():
        check_replaceable(target)


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an old folder is moved aside first, then removed."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if target.exists() and new.is_dir():
            target.unlink()
        os.replace(new, target)
