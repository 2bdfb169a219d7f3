"""What a model was trained for: the config's name, data source, churn definition and features.

``train`` records the lineage as tags of its MLflow run (:func:`lineage_tags`); ``score``
computes the lineage of its own config and refuses models whose lineage differs
(:func:`check_lineage`), naming both sides. The lineage identifies the data *source*, not its
content (which grows between training and scoring):

- ``config``: the config's ``name``;
- ``data``: the built-in dataset (and the simulator's size and seed), or each table's file,
  column mapping and timestamp format, the time zone and the currency of a data folder (not
  the folder's name: a new export folder of the same shop is the same source); recorded as
  a description and a hash;
- ``churn``: the churn definition (kind, target action, horizon, lookback, grace);
- ``features``: a hash of the feature spec (only the settings that differ from defaults).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churnml.config import Config
from churnml.errors import DataWarning, ModelMismatchError

TAG_PREFIX = "churnml.lineage."
PARTS = ("config", "data", "data_hash", "churn", "features")
LEGACY_CONFIG_TAG = "churnml.config"  # the config name, logged by every churnml train run
HASH_CHARS = 12


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _data_source(cfg: Config) -> tuple[str, dict[str, Any]]:
    """``(description, identity)`` of the data source (module docstring)."""
    d = cfg.data
    if d.dataset is not None:
        identity: dict[str, Any] = {"dataset": d.dataset}
        description = d.dataset
        if d.dataset == "simulated":
            identity.update(customers=d.simulated_customers, seed=d.seed)
            description = f"simulated ({d.simulated_customers} customers, seed {d.seed})"
        return description, identity
    folder = Path(d.dir).name if d.dir else ""
    tables = {
        name: {"path": t.path, "columns": dict(sorted(t.columns.items())),
               "ts_format": t.ts_format}
        for name, t in sorted(d.tables.items())
    }
    identity = {"tables": tables, "timezone": d.timezone, "currency": d.currency}
    return f"folder {folder!r}", identity  # the folder's name is not part of the identity


def lineage(cfg: Config) -> dict[str, str]:
    """``{config, data, data_hash, churn, features}`` of a config (module docstring)."""
    from churnml.training.train import feature_spec

    description, identity = _data_source(cfg)
    c = cfg.churn
    churn = (f"{c.kind}, target {c.target_action}, {c.horizon_days}-day horizon, "
             f"{c.lookback_days}-day lookback, {c.resubscribe_grace_days}-day grace")
    spec = feature_spec(cfg).model_dump(mode="json", exclude_defaults=True)
    return {"config": cfg.name, "data": description, "data_hash": _hash(identity),
            "churn": churn, "features": _hash(spec)}


def lineage_tags(cfg: Config) -> dict[str, str]:
    """The lineage as run tags ``churnml.lineage.<part>``."""
    return {f"{TAG_PREFIX}{k}": v for k, v in lineage(cfg).items()}


def trained_lineage(tags: Mapping[str, str]) -> dict[str, str]:
    """The lineage parts recorded in a run's tags (empty for runs before lineage tags)."""
    return {k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


def check_lineage(tags: Mapping[str, str], expected: Mapping[str, str], model: str,
                  allow_missing: bool = False) -> None:
    """Refuse ``model`` (e.g. ``"my-shop-churn v3"``) when its run's lineage ``tags`` differ
    from the scoring config's lineage ``expected``; the error names both sides of every
    difference. A model without lineage tags (trained by an older churnml, or a model card
    whose tags were removed) is refused too, unless ``allow_missing``
    (``scoring.allow_missing_lineage``): then it is checked on the config name only, with a
    :class:`~churnml.errors.DataWarning`."""
    trained = trained_lineage(tags)
    if not trained:
        name = tags.get(LEGACY_CONFIG_TAG)
        if name is not None and name != expected["config"]:
            raise ModelMismatchError(
                f"{model} was trained with config {name!r}, but scoring uses config "
                f"{expected['config']!r}: train a model for this config, or point "
                "tracking.churn_model_name / ltv_model_name at models trained for it"
            )
        unchecked = (f"{model} records no lineage (no {TAG_PREFIX}* tags: trained by an older "
                     "churnml, or its model card was edited), so its config, data source, "
                     "churn definition and features cannot be checked")
        if not allow_missing:
            raise ModelMismatchError(
                f"{unchecked}: retrain (or re-export) it with this churnml, or set "
                "scoring.allow_missing_lineage: true to score with it unchecked")
        warnings.warn(unchecked, DataWarning, stacklevel=2)
        return
    labels = {"config": "config", "data_hash": "data source", "churn": "churn definition",
              "features": "feature spec"}
    diffs = []
    for part, label in labels.items():
        got, want = trained.get(part), expected.get(part)
        if got == want:
            continue
        if part == "data_hash":
            got, want = (f"{trained.get('data')} [{got}]", f"{expected.get('data')} [{want}]")
        diffs.append(f"{label}: trained with {got!r}, scoring with {want!r}")
    if diffs:
        raise ModelMismatchError(
            f"{model} was trained for another setup than this config ({'; '.join(diffs)}); "
            "retrain with this config, or score with the config the model was trained with"
        )
