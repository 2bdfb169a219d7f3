"""Code-free model state: a fitted estimator as JSON-able values, loaded without running code.

Pickles (joblib) run code when loaded, so churnml exports models as *state*: plain JSON
values (numbers, strings, lists, string-keyed dicts) with LightGBM boosters as their text
model (``Booster.model_to_string`` / ``Booster(model_str=...)``, which only parses numbers).

The protocol, implemented by every churnml estimator::

    def to_state(self) -> dict[str, Any]: ...           # JSON-able values only
    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...

``from_state(to_state(est))`` predicts exactly as ``est``. A class opts in with the
:func:`stateful` decorator, which adds it to the allow-list :data:`STATE_CLASSES`;
:func:`dump_estimator` wraps a state in a document naming the class and the format version and
:func:`load_estimator` rebuilds it, refusing any class not on the allow-list (nothing is
imported or called by name). Helpers for implementers: :func:`params_state` /
:func:`restore_params` (constructor arguments), :func:`encode` / :func:`decode` (numpy arrays,
non-string dict keys), :func:`require` (a key of a state, or a clear error).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from churnml.errors import ChurnmlError

FORMAT = "churnml.estimator-state"
VERSION = 1
ARRAY_TAG = "$array"  # {"$array": [...], "dtype": "float64", "shape": [...]}
PAIRS_TAG = "$pairs"  # {"$pairs": [[key, value], ...]}: a dict with non-string keys
STATE_CLASSES: dict[str, type] = {}  # allow-list: class name -> class

T = TypeVar("T", bound=type)


class ModelStateError(ChurnmlError, ValueError):
    """A model state document is malformed, of an unknown class or of another format."""


@runtime_checkable
class Stateful(Protocol):
    """An estimator that round-trips through JSON-able state (module docstring)."""

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any: ...


def stateful(cls: T) -> T:
    """Class decorator: allow ``cls`` in :func:`load_estimator` (it must implement
    ``to_state`` and ``from_state``)."""
    for method in ("to_state", "from_state"):
        if not callable(getattr(cls, method, None)):
            raise TypeError(f"{cls.__name__} lacks {method}() of the state protocol")
    STATE_CLASSES[cls.__name__] = cls
    return cls


def encode(value: Any) -> Any:
    """``value`` as JSON-able data: numpy scalars as Python numbers, arrays tagged with their
    dtype and shape, tuples as lists, dicts with non-string keys as tagged pairs."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufO":
            raise TypeError(f"cannot encode an array of dtype {value.dtype}")
        data = [encode(v) for v in value.ravel().tolist()]
        return {ARRAY_TAG: data, "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {PAIRS_TAG: [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__} as model state")


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if ARRAY_TAG in value:
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "biufO":
                raise ModelStateError(f"array of dtype {dtype} in a model state")
            raw = [np.nan if v is None else v for v in value[ARRAY_TAG]] \
                if dtype.kind == "f" else value[ARRAY_TAG]
            return np.asarray(raw, dtype=dtype).reshape(value["shape"])
        if PAIRS_TAG in value:
            return {_hashable(decode(k)): decode(v) for k, v in value[PAIRS_TAG]}
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def params_state(est: Any) -> dict[str, Any]:
    """The constructor arguments of ``est`` (``get_params(deep=False)``), encoded."""
    return encode(est.get_params(deep=False))


def restore_params(cls: type, state: Mapping[str, Any]) -> Any:
    """``cls(**params)`` from a state's ``params`` (unknown arguments are refused)."""
    params = decode(require(state, "params", dict))
    try:
        return cls(**params)
    except TypeError as exc:
        raise ModelStateError(f"{cls.__name__}: bad parameters in model state: {exc}") from exc


def require(state: Mapping[str, Any], key: str, kind: type | tuple[type, ...] = object) -> Any:
    """``state[key]``, checked to be a ``kind``; a :class:`ModelStateError` otherwise."""
    if not isinstance(state, Mapping) or key not in state:
        raise ModelStateError(f"model state lacks {key!r}")
    value = state[key]
    if not isinstance(value, kind):
        raise ModelStateError(
            f"model state {key!r} is a {type(value).__name__}, expected {kind}"
        )
    return value


def dump_estimator(est: Any) -> dict[str, Any]:
    """``{"format", "version", "class", "state"}`` of a fitted stateful estimator."""
    name = type(est).__name__
    if STATE_CLASSES.get(name) is not type(est):
        raise TypeError(f"{name} does not implement the churnml state protocol (@stateful)")
    return {"format": FORMAT, "version": VERSION, "class": name, "state": est.to_state()}


def load_estimator(doc: Mapping[str, Any]) -> Any:
    """The estimator described by a :func:`dump_estimator` document; classes outside
    :data:`STATE_CLASSES` and other formats or versions are refused."""
    import churnml.models  # noqa: F401  (registers the built-in estimators)

    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise ModelStateError(f"not a churnml model state (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ModelStateError(
            f"model state version {doc.get('version')!r}; this churnml reads version {VERSION}"
        )
    name = doc.get("class")
    cls = STATE_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelStateError(
            f"model state of class {name!r} is not allowed; known: {sorted(STATE_CLASSES)}"
        )
    try:
        return cls.from_state(require(doc, "state", dict))
    except ModelStateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelStateError(f"{name}: malformed model state: {exc}") from exc


def write_state(est: Any, path: str | Path) -> Path:
    """Write :func:`dump_estimator` of ``est`` to ``path`` as JSON (not atomic: callers
    use :func:`churnml.io.atomic_write`)."""
    path = Path(path)
    path.write_text(json.dumps(dump_estimator(est), allow_nan=True, separators=(",", ":")))
    return path


def read_state(path: str | Path) -> Any:
    """The estimator in a JSON state file (:func:`write_state`); errors name the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return load_estimator(doc)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelStateError(f"{path}: not a JSON model state: {exc}") from exc
    except ModelStateError as exc:
        raise ModelStateError(f"{path}: {exc}") from exc
