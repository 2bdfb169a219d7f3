"""The one allow-list for user SQL expressions (churnml.expressions)."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from churnml.errors import ConfigError
from churnml.expressions import (
    ALLOWED_FUNCTIONS,
    expression_columns,
    parse_expression,
    quote_identifier,
    render_expression,
)

ALLOWED = [
    "abs(x) + round(y, 2)", "least(x, y)", "greatest(x, y, 0)", "exp(-x * y)", "ln(x)",
    "log10(x)", "sqrt(x)", "coalesce(x, 0)", "nullif(x, 0)", "x IN (1, 2)",
    "x BETWEEN 1 AND 2", "CASE WHEN x > 1 THEN 1 ELSE 0 END", "CASE x WHEN 1 THEN 2 END",
    "ts >= DATE '2024-01-01' - INTERVAL 30 DAY", "s LIKE 'a%'", "s ILIKE 'A%'",
    "x IS NOT NULL", "x IS DISTINCT FROM y", "CAST(x AS DECIMAL(18, 4))", "x::DOUBLE",
    "date_diff('day', ts, ts)", "date_trunc('month', ts)", "extract(year FROM ts)",
    "year(ts) = 2024", "if(x > 1, 'a', 'b')", "NOT (x = 1) OR y <> 2", "x // 2 + x % 2",
    "x ** 2", "lower(s) || upper(s)", "s = 'it''s'",
    "CAST(ts AS TIMESTAMP)", "CAST(make_date(2013, 10, 1) + CAST(x AS INT) AS TIMESTAMP)",
]

REFUSED = {
    "read_csv('/etc/passwd')": "read_csv",
    "read_text('/etc/passwd')": "read_text",
    "read_parquet('x.parquet')": "read_parquet",
    "getenv('HOME')": "getenv",
    "x IN (SELECT 1)": "subquery",
    "(SELECT max(x) FROM t)": "subquer",
    "exists(SELECT 1)": "exists",
    "1; SELECT 2": "';'",
    "sum(x)": "sum",
    "row_number() OVER ()": "OVER",
    "t.x > 1": "t.x",
    "$1": "$1",
    "?": "?",
    "*": "*",
    "COLUMNS('.*')": "columns",
    "query('SELECT 1')": "query",
    "now()": "now",
    "CAST(x AS BLOB)": "BLOB",
    "PRAGMA version": "PRAGMA",
    "x = any([1])": "ANY",
    "": "empty",
    "x y": "x AS y",
}


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_expressions_render_and_run_in_duckdb(sql: str) -> None:
    rendered = render_expression(sql, where="t")
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE t AS SELECT 2.0 AS x, 3.0 AS y, 'ab' AS s, "
                    "TIMESTAMP '2024-05-06 07:08:09' AS ts")
        con.execute(f"SELECT {rendered} FROM t").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(("sql", "token"), REFUSED.items())
def test_refused_expressions_name_origin_and_token(sql: str, token: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_expression(sql, where="scoring.segments[vip].when")
    msg = str(err.value)
    assert msg.startswith("scoring.segments[vip].when: ")
    assert token.lower() in msg.lower()


def test_unknown_column_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown name 'vip_valeu'.*did you mean 'vip_value'"):
        parse_expression("x >= vip_valeu", where="w", columns={"x", "vip_value"})
    assert parse_expression("x >= vip_value", where="w", columns={"x", "vip_value"})


def test_every_identifier_is_quoted_and_replacements_are_substituted() -> None:
    assert render_expression('"amount*1000" + a', where="w") == '("amount*1000" + "a")'
    assert render_expression("a / b", replace={"a": "t.x", "b": "2"}) == '(("t"."x") / (2))'
    assert expression_columns("a + coalesce(b, c)", where="w") == {"a", "b", "c"}
    assert render_expression("a > 1", dialect="spark") == "(`a` > 1)"


def test_parse_returns_a_copy() -> None:
    tree = parse_expression("a + 1", where="w")
    tree.set("this", sqlglot.exp.column("z"))
    assert render_expression("a + 1") == '("a" + 1)'


def test_allow_list_names_only_scalar_functions() -> None:
    assert {"abs", "round", "least", "greatest", "coalesce", "ln", "log", "exp", "sqrt",
            "date_diff"} <= set(ALLOWED_FUNCTIONS)
    assert not {"read_csv", "read_text", "sum", "getenv", "query"} & set(ALLOWED_FUNCTIONS)


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=20)


@settings(max_examples=60, deadline=None)
@given(NAMES)
def test_any_column_name_is_one_quoted_identifier(name: str) -> None:
    """Whatever a header holds, a quoted reference to it reads that one column."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t ({quote_identifier(name)} DOUBLE)")
        con.execute("INSERT INTO t VALUES (2.5)")
        tree = parse_expression(quote_identifier(name) + " * 2", where="w")
        assert {c.name for c in tree.find_all(sqlglot.exp.Column)} == {name}
        assert con.execute(f"SELECT {render_expression(tree)} FROM t").fetchone() == (5.0,)
    finally:
        con.close()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_is_refused_or_renders_to_allowed_sql(sql: str) -> None:
    """Any text either raises ConfigError or re-parses, once rendered, to an allowed
    expression (rendering never widens what runs)."""
    try:
        rendered = render_expression(sql, where="w")
    except ConfigError:
        return
    parse_expression(rendered, where="rendered")
