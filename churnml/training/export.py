"""Export registered models to plain files that load without running code.

For the churn/LTV pair behind an alias (:func:`~churnml.training.tracking.resolve_pair`),
``<out_dir>/<name>.model.json`` holds the fitted estimator as code-free state (JSON values
and LightGBM text models, :mod:`churnml.models._state`) and ``<name>.json`` its model card:
features and dtypes, training window, metrics, run id (the pair's), model version, lineage
tags, MLflow version and the SHA-256 of the state file. Both writes are atomic; the card is
written last and :func:`load_exported` checks the hash, so a reader never mixes an estimator
with another version's card.

Loading a state file parses numbers and LightGBM's text format only; a state naming a class
outside churnml's allow-list, or a malformed one, is refused. Folders exported by earlier
churnml releases hold pickles (``.joblib``), which run code when loaded: they are refused
unless ``trust_pickle=True`` (``--trust-pickle``, ``scoring.trust_pickle``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow

from churnml.errors import ModelSourceError, OutputPathError, UntrustedModelError
from churnml.io import atomic_write
from churnml.models._state import FORMAT, ModelStateError, read_state, write_state
from churnml.training.tracking import (
    CHAMPION,
    DEFAULT_TRACKING_URI,
    ESTIMATOR_FILE,
    LEGACY_ESTIMATOR_FILE,
    MODEL_NAMES,
    card_json,
    model_card,
    resolve_pair,
    tracking,
)

MODEL_SUFFIX = ".model.json"
CARD_SUFFIX = ".json"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ExportedModel:
    """A fitted estimator loaded from an export, with its model card."""

    estimator: Any
    card: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_state_file(card: dict[str, Any], target: Path, tracking_uri: str) -> None:
    """Copy the logged JSON state of ``card``'s version to ``target``; versions logged
    before it (a joblib artifact) are loaded from the trusted store and written as state."""
    with tempfile.TemporaryDirectory() as tmp, tracking(tracking_uri, read_only=True):
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=card["model_uri"], dst_path=tmp)
        )
        source = next(local.rglob(ESTIMATOR_FILE), None)
        if source is not None:
            atomic_write(target, lambda p: shutil.copyfile(source, p))
            return
        legacy = next(local.rglob(LEGACY_ESTIMATOR_FILE), None)
        if legacy is None:
            raise ModelSourceError(f"{card['model_uri']}: no {ESTIMATOR_FILE} artifact")
        import joblib  # your own MLflow store: trusted

        estimator = joblib.load(legacy)
        try:
            atomic_write(target, lambda p: write_state(estimator, p))
        except TypeError as exc:
            raise ModelStateError(f"{card['model_uri']}: {exc}; it cannot be exported "
                                  "code-free") from exc


def export_model(
    name: str,
    alias: str = CHAMPION,
    out_dir: str | Path = "models/",
    tracking_uri: str = DEFAULT_TRACKING_URI,
    version: str | None = None,
) -> Path:
    """Export the version of ``name`` holding ``alias`` (or ``version``); returns the card's
    path."""
    out = Path(out_dir)
    check_export_folder(out, (name,))
    card = model_card(name, alias, tracking_uri, version=version)
    model_path = out / f"{name}{MODEL_SUFFIX}"
    _write_state_file(card, model_path, tracking_uri)
    card.update(
        file=model_path.name,
        format=FORMAT,
        sha256=_sha256(model_path),
        alias=alias,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    earlier = _earlier_card(out, name)
    path = atomic_write(out / f"{name}{CARD_SUFFIX}", lambda p: p.write_text(card_json(card)))
    stale = (earlier or {}).get("file")  # a pickle of churnml's earlier export, which no
    if stale and stale != model_path.name and Path(stale).suffix in PICKLE_SUFFIXES:
        (out / Path(stale).name).unlink(missing_ok=True)  # card names any more
    return path


def _earlier_card(out: Path, name: str) -> dict[str, Any] | None:
    """The card of an earlier export of ``name`` in ``out`` (None if there is none); a file
    by that name that is not a churnml model card is an :class:`OutputPathError`."""
    path = out / f"{name}{CARD_SUFFIX}"
    if not path.exists():
        return None
    try:
        return _read_card(path, out, name)
    except ModelStateError as exc:
        raise OutputPathError(f"{path} exists and is not a model card churnml wrote; "
                              "export to another folder (it is left as it is)") from exc


def check_export_folder(out_dir: str | Path, names: tuple[str, ...]) -> None:
    """Before exporting: ``out_dir`` is a folder (or absent) and each file the export writes
    (``<name>.json``, ``<name>.model.json``) is absent or churnml's own: a card it wrote, or
    the state file such a card names. Anything else is an :class:`OutputPathError`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out} is a file; give a folder for the exported models")
    for name in names:
        card = _earlier_card(out, name)
        model = out / f"{name}{MODEL_SUFFIX}"
        if model.exists() and (card or {}).get("file") != model.name:
            raise OutputPathError(f"{model} exists and no model card churnml wrote names "
                                  "it; export to another folder (it is left as it is)")


def export_models(
    alias: str = CHAMPION,
    out_dir: str | Path = "models/",
    tracking_uri: str = DEFAULT_TRACKING_URI,
    names: tuple[str, str] = MODEL_NAMES,
) -> dict[str, Path]:
    """Export the churn/LTV pair ``names`` behind ``alias`` (the churn version holding it
    and the LTV version of the same run); returns ``{name: card path}``. The store is only
    read: a missing store, model or alias raises :class:`ModelSourceError` naming it."""
    churn_name, ltv_name = names
    check_export_folder(out_dir, names)
    pair = resolve_pair(churn_name, ltv_name, alias, tracking_uri)
    if pair.note:
        warnings.warn(pair.note, stacklevel=2)
    return {
        mv.name: export_model(mv.name, alias, out_dir, tracking_uri, version=str(mv.version))
        for mv in (pair.churn, pair.ltv)
    }


def _read_card(card_path: Path, out: Path, name: str) -> dict[str, Any]:
    if not card_path.exists():
        present = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
        where = (f"folder {out} does not exist" if present is None
                 else f"files there: {present or 'none'}")
        raise ModelSourceError(
            f"no exported model {name!r} in {out} (expected its card {card_path.name}; "
            f"{where}); run `churnml export --out {out}`"
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelStateError(f"{card_path}: not a JSON model card: {exc}") from exc
    if not isinstance(card, dict) or not isinstance(card.get("file"), str) \
            or not isinstance(card.get("sha256"), str):
        raise ModelStateError(f"{card_path}: model card lacks 'file' and 'sha256'")
    return card


def load_exported(out_dir: str | Path, name: str, trust_pickle: bool = False) -> ExportedModel:
    """Load the model ``name`` of an export folder and its card; the file must match the
    card's hash and lie in the folder.

    A JSON state file is rebuilt without running code. A pickle (``.joblib``, from an
    earlier churnml) raises :class:`UntrustedModelError` unless ``trust_pickle`` (then it is
    loaded with a warning: loading a pickle runs whatever code it holds)."""
    out = Path(out_dir)
    card_path = out / f"{name}{CARD_SUFFIX}"
    card = _read_card(card_path, out, name)
    file = card["file"]
    if Path(file).name != file or file in ("", ".", ".."):
        raise ModelStateError(f"{card_path}: 'file' must name a file in {out}, got {file!r}")
    model_path = out / file
    if not model_path.is_file():
        raise ModelSourceError(f"{card_path} names {file}, which is not in {out}")
    is_pickle = model_path.suffix in PICKLE_SUFFIXES
    if not is_pickle and model_path.suffix != ".json":
        raise ModelStateError(f"{card_path}: {file} is neither a JSON model state nor a pickle")
    if is_pickle and not trust_pickle:
        raise UntrustedModelError(
            f"{model_path} is a pickle: loading it can run any code it holds. Re-export the "
            "model with `churnml export` (code-free JSON), or, only for a file you made "
            "yourself, pass --trust-pickle (scoring.trust_pickle: true)"
        )
    digest = _sha256(model_path)
    if digest != card["sha256"]:
        raise ModelStateError(
            f"{model_path}: SHA-256 {digest[:12]}... does not match its card "
            f"({card['sha256'][:12]}...); re-run the export"
        )
    if is_pickle:
        import joblib

        warnings.warn(f"loading pickled model {model_path} (--trust-pickle): it can run code",
                      stacklevel=2)
        return ExportedModel(estimator=joblib.load(model_path), card=card)
    return ExportedModel(estimator=read_state(model_path), card=card)
