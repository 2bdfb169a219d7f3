"""Paths as shown in outputs: never the absolute path of the machine a run happened on.

Reports, MLflow params and console messages name files relative to the working folder when
they lie inside it, else by their last component (``/home/alice/shop/data`` -> ``data``),
so an output shared with others does not reveal user names or folder layouts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

URI_PREFIXES = ("sqlite:///", "file://")  # URIs whose remainder is a local path


def _is_absolute(text: str) -> bool:
    return PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()


def portable(value: str | Path, cwd: str | Path | None = None) -> str:
    """``value`` without the machine's absolute path: a path inside ``cwd`` (default: the
    working folder) relative to it, another absolute path by its last component, a
    ``sqlite:///`` or ``file://`` URI with its path made portable; anything else as is."""
    text = str(value)
    for prefix in URI_PREFIXES:
        if text.startswith(prefix) and _is_absolute(text.removeprefix(prefix)):
            return prefix + portable(text.removeprefix(prefix), cwd)
    if not _is_absolute(text):
        return text
    base = Path(cwd) if cwd is not None else Path.cwd()
    try:
        rel = os.path.relpath(text, base)
    except ValueError:  # another drive (Windows)
        rel = os.pardir
    if rel == os.curdir:
        return os.curdir
    if rel.split(os.sep)[0] != os.pardir:
        return rel
    name = PurePosixPath(text).name if "/" in text else PureWindowsPath(text).name
    return name or text


def portable_values(mapping: Mapping[str, Any], cwd: str | Path | None = None) -> dict[str, Any]:
    """``mapping`` (nested dicts and lists) with every string made :func:`portable`."""

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return portable(v, cwd)
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return type(v)(clean(x) for x in v)
        return v

    return clean(dict(mapping))


def relative(value: str | Path, cwd: str | Path | None = None) -> str:
    """``value`` relative to ``cwd`` (default: the working folder), ``..`` allowed: for a
    command the user is told to run (e.g. ``mlflow ui --backend-store-uri ...``), which must
    keep working from where they are without naming the machine's absolute path."""
    text = str(value)
    for prefix in URI_PREFIXES:
        if text.startswith(prefix) and _is_absolute(text.removeprefix(prefix)):
            return prefix + relative(text.removeprefix(prefix), cwd)
    if not _is_absolute(text):
        return text
    try:
        return os.path.relpath(text, Path(cwd) if cwd is not None else Path.cwd())
    except ValueError:  # another drive (Windows): no relative form
        return text


def inside(path: str | Path, roots: Iterable[str | Path]) -> bool:
    """``path`` (symbolic links and ``..`` resolved) lies in one of the folders ``roots``."""
    real = Path(path).resolve()
    return any(real.is_relative_to(Path(root).resolve()) for root in roots if root)


def confined(path: str | Path, roots: Iterable[str | Path], where: str) -> Path:
    """``path`` when it lies inside one of ``roots`` (:func:`inside`), else a
    :class:`~churnml.errors.ConfigError` naming ``where`` (the setting), the path as given
    and the allowed folders, with the fix: add a folder to ``data.allowed_roots``. Data
    paths written in a config are read from the config's folder, ``data.dir`` (a folder
    given with ``--data``) or an allowed root only, so a config cannot read ``/etc/...``."""
    roots = [r for r in roots if r]
    if inside(path, roots):
        return Path(path)
    from churnml.errors import ConfigError

    shown = ", ".join(portable(r) for r in roots) or "none"
    raise ConfigError(
        f"{where}: {path} lies outside the folders data may be read from ({shown}); move "
        "the file there, or list its folder under data.allowed_roots in the config")
