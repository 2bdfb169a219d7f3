"""User SQL expressions from configs: parsed with SQLGlot and checked against one allow-list.

Every SQL text a user writes (feature ``column`` / ``where`` / ``expr``, ``purchase_where``,
segment rules, reason-template ``when`` conditions, column-mapping expressions) goes through
:func:`parse_expression`; the package only ever splices the SQL that
:func:`render_expression` regenerates from the checked tree (every identifier quoted), never
the user's text. An expression may contain:

* column references (unqualified names; quote odd ones: ``"unit price"``) and literals
  (numbers, strings, ``TRUE``/``FALSE``, ``NULL``, ``DATE '2024-01-31'``,
  ``INTERVAL 30 DAY``);
* arithmetic (``+ - * / // % **``, unary minus, ``||``), comparisons (``= <> < <= > >=``,
  ``IS [NOT] DISTINCT FROM``), boolean logic (``AND OR NOT``), ``IN (list)``, ``BETWEEN``,
  ``IS [NOT] NULL`` / ``TRUE`` / ``FALSE``, ``LIKE`` / ``ILIKE``, ``CASE``;
* ``CAST`` / ``TRY_CAST`` / ``::`` to the types of :data:`ALLOWED_TYPES`;
* the scalar functions of :data:`ALLOWED_FUNCTIONS`.

Anything else — subqueries, statements, table functions (``read_csv``, ``read_text``, ...),
aggregates, window functions, unknown functions, parameters, qualified names ``t.x``, ``*`` —
is a :class:`~churnml.errors.ConfigError` naming where the expression came from and the
offending token.

This module depends on SQLGlot and :mod:`churnml.errors` only, so every layer (config, data,
engine, features, scoring) can use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from functools import lru_cache

import sqlglot
from sqlglot import exp

from churnml.errors import ConfigError

SQL_DIALECT = "duckdb"

# user-facing function name -> SQLGlot node classes it parses to (DuckDB dialect)
ALLOWED_FUNCTIONS: dict[str, tuple[type[exp.Expression], ...]] = {
    # numbers
    "abs": (exp.Abs,), "sign": (exp.Sign,), "round": (exp.Round,), "floor": (exp.Floor,),
    "ceil": (exp.Ceil,), "sqrt": (exp.Sqrt,), "exp": (exp.Exp,), "ln": (exp.Ln,),
    "log": (exp.Log,), "power": (exp.Pow,), "isnan": (exp.IsNan,),
    # choice and missing values
    "least": (exp.Least,), "greatest": (exp.Greatest,), "coalesce": (exp.Coalesce,),
    "nullif": (exp.Nullif,), "if": (exp.If,),
    # text
    "lower": (exp.Lower,), "upper": (exp.Upper,), "length": (exp.Length,),
    "trim": (exp.Trim,), "substring": (exp.Substring,), "replace": (exp.Replace,),
    "concat": (exp.Concat,), "starts_with": (exp.StartsWith,), "contains": (exp.Contains,),
    # dates and times
    "date_diff": (exp.DateDiff,), "date_trunc": (exp.TimestampTrunc, exp.DateTrunc),
    "extract": (exp.Extract,), "year": (exp.Year,), "quarter": (exp.Quarter,),
    "month": (exp.Month,), "week": (exp.Week,), "day": (exp.Day,),
    "dayofweek": (exp.DayOfWeek,), "epoch": (exp.TimeToUnix,),
    "make_date": (exp.DateFromParts,), "date_add": (exp.DateAdd,),
}
"""Scalar functions an expression may call (``log`` includes ``log10`` / ``log2``, ``power``
includes ``**``, ``if(c, a, b)`` is a ``CASE``, ``ifnull`` is ``coalesce``)."""

ALLOWED_TYPES: frozenset[str] = frozenset({
    "BOOLEAN", "TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
    "TEXT", "VARCHAR", "DATE", "TIMESTAMP", "TIMESTAMPTZ",
    "TIMESTAMPNTZ",  # SQLGlot >= 26 reads DuckDB's TIMESTAMP as TIMESTAMPNTZ
})
"""Types of ``CAST`` / ``TRY_CAST``."""

TIME_UNITS: frozenset[str] = frozenset({
    f"{u}{s}" for u in ("MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY",
                        "WEEK", "MONTH", "QUARTER", "YEAR", "DOW", "DOY", "EPOCH")
    for s in ("", "S")
})
"""Units of ``INTERVAL``, ``date_diff``, ``date_trunc`` and ``EXTRACT``."""

# Operators and structural nodes allowed besides functions, columns and literals.
_OPERATORS: tuple[type[exp.Expression], ...] = (
    exp.Paren, exp.Neg, exp.Not, exp.And, exp.Or,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.Case,
    exp.Cast, exp.TryCast, exp.DataType, exp.DataTypeParam, exp.Interval,
    exp.Literal, exp.Boolean, exp.Null,
)
_FUNCTION_NAME: dict[type[exp.Expression], str] = {
    cls: name for name, classes in ALLOWED_FUNCTIONS.items() for cls in classes
}
_UNIT_PARENTS = (exp.Interval, exp.DateDiff, exp.TimestampTrunc, exp.DateTrunc, exp.Extract,
                 exp.DateAdd)
_MAX_LENGTH = 10_000  # characters of one expression


def _token(node: exp.Expression) -> str:
    """How the offending node reads in SQL (shortened)."""
    if isinstance(node, exp.Anonymous):
        text = str(node.this)
    elif isinstance(node, exp.Func):
        text = node.sql_name()
    else:
        try:
            text = node.sql(dialect=SQL_DIALECT)
        except Exception:  # noqa: BLE001 - only for the message
            text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(node: exp.Expression) -> str | None:
    """Why ``node`` is not allowed (``None``: it is)."""
    if isinstance(node, exp.Column):
        if any(node.args.get(k) for k in ("table", "db", "catalog")):
            return (f"qualified name {_token(node)} is not allowed (name columns alone; "
                    f"quote a name containing a dot: \"{node.sql(dialect=SQL_DIALECT)}\")")
        if not isinstance(node.this, exp.Identifier):
            return f"{_token(node)} is not allowed"
        return None
    if isinstance(node, exp.Identifier):
        return None if isinstance(node.parent, exp.Column) else f"{_token(node)} is not allowed"
    if isinstance(node, exp.Var):
        if isinstance(node.parent, _UNIT_PARENTS) and node.name.upper() in TIME_UNITS:
            return None
        return f"{node.name!r} is not allowed here (time units: DAY, MONTH, ...)"
    if isinstance(node, exp.DataType):
        name = node.this.value if hasattr(node.this, "value") else str(node.this)
        if name in ALLOWED_TYPES and isinstance(node.parent, (exp.Cast, exp.TryCast)):
            return None
        return f"type {node.sql(dialect=SQL_DIALECT)} is not allowed (allowed: " \
               f"{', '.join(sorted(ALLOWED_TYPES))})"
    if isinstance(node, exp.In) and any(node.args.get(k) for k in ("query", "unnest", "field")):
        return "IN takes a list of values only (no subquery)"
    if isinstance(node, (exp.Select, exp.Subquery, exp.Query)):
        return "subqueries are not allowed"
    if type(node) in _FUNCTION_NAME or isinstance(node, _OPERATORS):
        return None
    if isinstance(node, (exp.Func, exp.Anonymous)):
        return (f"function {_token(node).lower()} is not allowed (allowed: "
                f"{', '.join(sorted(ALLOWED_FUNCTIONS))})")
    return f"{_token(node)} is not allowed"


@lru_cache(maxsize=8192)
def _analyse(sql: str) -> tuple[exp.Expression | None, str | None]:
    """``(tree, None)`` for an allowed expression, else ``(None, problem)``."""
    if not isinstance(sql, str) or not sql.strip():
        return None, "empty expression"
    if len(sql) > _MAX_LENGTH:
        return None, f"expression longer than {_MAX_LENGTH} characters"
    try:
        trees = [t for t in sqlglot.parse(sql, read=SQL_DIALECT) if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        return None, f"invalid SQL: {str(exc).splitlines()[0]}"
    except RecursionError:
        return None, "expression nested too deeply"
    if len(trees) != 1:
        return None, "one expression expected (no ';' or statements)"
    tree = trees[0]
    for node in tree.walk():
        problem = _problem(node)
        if problem is not None:
            return None, problem
    return tree, None


def parse_expression(
    sql: str, *, where: str, columns: Collection[str] | None = None
) -> exp.Expression:
    """The SQLGlot tree of one user expression (DuckDB dialect), checked against the
    allow-list (module docstring).

    ``where`` names the expression's origin in errors (e.g.
    ``scoring.segments[vip_at_risk].when``). With ``columns``, every name the expression reads
    must be one of them. Raises :class:`ConfigError` naming ``where``, the offending token and
    the expression. Returns a fresh copy: callers may transform it.
    """
    tree, problem = _analyse(sql)
    if tree is None:
        raise ConfigError(f"{where}: {problem} in {sql!r}")
    if columns is not None:
        known = set(columns)
        unknown = sorted({c.name for c in tree.find_all(exp.Column)} - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown name {unknown[0]!r} in {sql!r}{hint} (known: "
                f"{', '.join(sorted(known)) if len(known) <= 40 else f'{len(known)} names'})"
            )
    return tree.copy()


def expression_columns(sql: str, *, where: str) -> frozenset[str]:
    """Names of the columns an expression reads (checked like :func:`parse_expression`)."""
    return _columns(sql, where)


@lru_cache(maxsize=8192)
def _columns(sql: str, where: str) -> frozenset[str]:
    return frozenset(c.name for c in parse_expression(sql, where=where).find_all(exp.Column))


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (``"`` doubled), safe for any column name."""
    return '"' + str(name).replace('"', '""') + '"'


def render_expression(
    expression: str | exp.Expression,
    *,
    where: str = "expression",
    replace: Mapping[str, str | exp.Expression] | None = None,
    dialect: str = SQL_DIALECT,
) -> str:
    """SQL regenerated from the checked tree, every identifier quoted, in parentheses.

    ``expression`` is user text (checked with :func:`parse_expression`) or a tree from it.
    ``replace`` maps column names to SQL (package-written, trusted) or trees substituted for
    them, e.g. a derived feature's inputs. ``dialect`` is any SQLGlot dialect (``"spark"``).
    """
    tree = (parse_expression(expression, where=where) if isinstance(expression, str)
            else expression.copy())
    if replace:
        subs = {k: v if isinstance(v, exp.Expression)
                else sqlglot.parse_one(v, read=SQL_DIALECT) for k, v in replace.items()}

        def sub(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Column) and node.name in subs:
                return exp.Paren(this=subs[node.name].copy())
            return node

        tree = tree.transform(sub)
    return f"({tree.sql(dialect=dialect, identify=True)})"
