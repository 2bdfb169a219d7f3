"""Exceptions raised by churnml with messages that name what is at fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ChurnmlError(Exception):
    """Base class of churnml's own errors."""


class ConfigError(ChurnmlError):
    """A configuration file or value is invalid."""


class OutputPathError(ChurnmlError):
    """An output file or folder cannot be written (checked before the work starts)."""


class DataValidationError(ChurnmlError, ValueError):
    """An input table breaks the data contract.

    The message names the table, the column and example offending rows, e.g.
    ``transactions.amount: 2 row(s) not numeric; e.g. row 3 ('abc'), row 7 ('n/a')``.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        problem: str,
        rows: Sequence[Any] = (),
        values: Sequence[Any] = (),
        n_rows: int | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        self.rows = list(rows)
        self.values = list(values)
        self.n_rows = len(self.rows) if n_rows is None else n_rows
        where = f"{table}.{column}" if column else table
        msg = f"{where}: {problem}"
        if self.rows:
            shown = []
            for i, r in enumerate(self.rows[:5]):
                if i < len(self.values):
                    shown.append(f"row {r} ({_show(self.values[i])})")
                else:
                    shown.append(f"row {r}")
            count = f"{self.n_rows} row(s)"
            msg += f" [{count}; e.g. " + ", ".join(shown) + "]"
        super().__init__(msg)


def _show(value: Any) -> str:
    """Render an offending value plainly: ``null`` for missing, repr of the Python value."""
    if value is None:
        return "null"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return "null"
    return repr(value)


class DataWarning(UserWarning):
    """The data load but look suspicious (duplicate rows, ids that barely overlap, ...).

    Issued with :func:`warnings.warn`; the CLI prints each as ``warning: ...``.
    """
class ModelSourceError(ChurnmlError, LookupError):
    """A tracking store, registered model, alias or exported model folder was not found; the
    message names the store (or folder) and the model."""


class UntrustedModelError(ChurnmlError):
    """A model file is a pickle, which runs code when loaded, and pickles were not trusted."""


class ModelMismatchError(ChurnmlError):
    """The models found were trained for another config or data source than the one given, or
    the churn and value models are not a pair from one training run."""


class OutputWarning(UserWarning):
    """Something found among the outputs was left alone (e.g. a commit journal naming paths
    outside the run's output set); the CLI prints each as ``warning: ...``."""


class TrainingDataError(ChurnmlError, ValueError):
    """The training data cannot fit a model (e.g. a panel of a single customer)."""
