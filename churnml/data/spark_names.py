"""Names of Spark tables in the configuration: parsed and quoted, never spliced raw."""

from __future__ import annotations

import re

from churnml.errors import ConfigError

MAX_PARTS = 3  # catalog.schema.table
_PART = re.compile(r"`((?:[^`]|``)+)`|([A-Za-z_][A-Za-z0-9_]*)")


def parse_table_name(name: str) -> list[str]:
    """``catalog.schema.table`` (1 to 3 parts; plain identifiers, or back-quoted with ````
    for a back-quote) -> the unquoted parts. Raises :class:`ConfigError` otherwise."""
    parts: list[str] = []
    pos, text = 0, name.strip()
    while True:
        match = _PART.match(text, pos)
        if match is None:
            break
        parts.append(match.group(1).replace("``", "`") if match.group(1) else match.group(2))
        pos = match.end()
        if pos == len(text) or text[pos] != ".":
            break
        pos += 1
    if not text or pos != len(text) or not 1 <= len(parts) <= MAX_PARTS:
        raise ConfigError(
            f"Spark table name {name!r}: expected [catalog.][schema.]table of identifiers "
            f"(letters, digits, _; other characters inside `back-quotes`)")
    return parts


def quote_table_name(name: str) -> str:
    """The name with every part back-quoted, for ``spark.table``."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in parse_table_name(name))
