"""Export registered models to plain files, for scoring without an MLflow server.

For each registered model, ``<out_dir>/<name>.joblib`` (the fitted estimator, byte for byte
as logged) and ``<name>.json`` (its model card: features and dtypes, training window,
metrics, run id, model version, MLflow version, and the SHA-256 of the joblib file). Both
writes are atomic; the card is written last and :func:`load_exported` checks the hash, so a
reader never mixes an estimator with another version's card.

joblib files are pickles: load only files you exported yourself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import mlflow
from mlflow.exceptions import MlflowException

from churnml.io import atomic_write
from churnml.training.tracking import (
    CHAMPION,
    DEFAULT_TRACKING_URI,
    ESTIMATOR_FILE,
    MODEL_NAMES,
    card_json,
    model_card,
    tracking,
)

MODEL_SUFFIX = ".joblib"
CARD_SUFFIX = ".json"
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


def export_model(
    name: str,
    alias: str = CHAMPION,
    out_dir: str | Path = "models/",
    tracking_uri: str = DEFAULT_TRACKING_URI,
) -> Path:
    """Export the version of ``name`` holding ``alias``; returns the card's path."""
    out = Path(out_dir)
    card = model_card(name, alias, tracking_uri)
    with tempfile.TemporaryDirectory() as tmp, tracking(tracking_uri):
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=card["model_uri"], dst_path=tmp)
        )
        source = next(local.rglob(ESTIMATOR_FILE), None)
        if source is None:
            raise FileNotFoundError(f"{card['model_uri']}: no {ESTIMATOR_FILE} artifact")
        model_path = out / f"{name}{MODEL_SUFFIX}"
        atomic_write(model_path, lambda p: shutil.copyfile(source, p))
    card.update(
        file=model_path.name,
        sha256=_sha256(model_path),
        alias=alias,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return atomic_write(out / f"{name}{CARD_SUFFIX}", lambda p: p.write_text(card_json(card)))


def export_models(
    alias: str = CHAMPION,
    out_dir: str | Path = "models/",
    tracking_uri: str = DEFAULT_TRACKING_URI,
    names: tuple[str, ...] = MODEL_NAMES,
) -> dict[str, Path]:
    """Export every model in ``names`` that has a version with ``alias``.

    Returns ``{name: card path}``; models not registered or without the alias are skipped,
    and a :class:`LookupError` is raised when none could be exported.
    """
    exported: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            exported[name] = export_model(name, alias, out_dir, tracking_uri)
        except (LookupError, MlflowException) as exc:
            skipped[name] = str(exc)
    if not exported:
        raise LookupError(f"no model with alias {alias!r} to export: {skipped}")
    return exported


def load_exported(out_dir: str | Path, name: str) -> ExportedModel:
    """Load ``<out_dir>/<name>.joblib`` and its card; the file must match the card's hash."""
    out = Path(out_dir)
    card_path = out / f"{name}{CARD_SUFFIX}"
    if not card_path.exists():
        raise FileNotFoundError(f"no exported model card {card_path}")
    card = json.loads(card_path.read_text())
    model_path = out / card["file"]
    digest = _sha256(model_path)
    if digest != card["sha256"]:
        raise ValueError(
            f"{model_path}: SHA-256 {digest[:12]}... does not match its card "
            f"({card['sha256'][:12]}...); re-run the export"
        )
    return ExportedModel(estimator=joblib.load(model_path), card=card)
