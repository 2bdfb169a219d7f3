"""MLflow tracking and model registry for churnml runs.

- Tracking store: SQLite (``sqlite:///mlflow.db``) by default; artifacts of a new experiment
  go to ``mlartifacts/`` beside the database file, not to the current directory.
- One experiment per config name (:attr:`churnml.config.Config.name`).
- Models are logged as MLflow pyfunc models: :class:`EstimatorModel` loads a joblib file of
  the fitted churnml estimator (avoiding the skops trusted-type checks of MLflow 3's
  scikit-learn flavour) and returns a DataFrame with ``churn_probability`` or
  ``predicted_value``. The signature lists every feature, numeric as ``double`` and
  categorical as ``string`` (MLflow schema enforcement rejects pandas ``category`` and will
  not cast int64 to double: use :func:`to_model_input` before ``pyfunc.predict``).
- Registry names ``churnml-churn`` / ``churnml-ltv``; a new version gets the alias
  ``challenger``; :func:`promote_if_better` moves ``champion``. Aliases, not stages.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from pydantic import BaseModel

from churnml.config import TrackingConfig
from churnml.models._preprocess import CATEGORICAL
from churnml.paths import portable, portable_values

_DEFAULTS = TrackingConfig()  # registry names and store: churnml.config.TrackingConfig
DEFAULT_TRACKING_URI = _DEFAULTS.uri
ARTIFACT_DIR = "mlartifacts"  # artifact root beside a SQLite tracking database
CHURN_MODEL = _DEFAULTS.churn_model_name
LTV_MODEL = _DEFAULTS.ltv_model_name
MODEL_NAMES = (CHURN_MODEL, LTV_MODEL)
CHAMPION = "champion"
CHALLENGER = "challenger"
LOGGED_MODEL_NAME = "model"  # name of the logged model inside its run
ESTIMATOR_ARTIFACT = "estimator"  # key (and file stem) of the joblib artifact
ESTIMATOR_FILE = f"{ESTIMATOR_ARTIFACT}.joblib"
CHURN_OUTPUT = "churn_probability"
LTV_OUTPUT = "predicted_value"
OUTPUTS = {CHURN_MODEL: CHURN_OUTPUT, LTV_MODEL: LTV_OUTPUT}
WINDOW_PREFIX = "window."  # params describing the training window
INPUT_EXAMPLE_ROWS = 5
# distributions pinned in a logged model's requirements (skips MLflow's ~3 s inference)
PINNED_DISTRIBUTIONS = ("mlflow", "lightgbm", "scikit-learn", "scipy", "pandas", "numpy", "joblib")
SYSTEM_TAG_PREFIX = "mlflow."
Output = Literal["churn_probability", "predicted_value"]


def default_artifact_location(tracking_uri: str) -> str | None:
    """``<database dir>/mlartifacts`` for a SQLite store; None (MLflow's default) otherwise."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri.removeprefix(prefix))
    return (db.resolve().parent / ARTIFACT_DIR).as_uri()


@contextmanager
def tracking(tracking_uri: str = DEFAULT_TRACKING_URI) -> Iterator[mlflow.MlflowClient]:
    """Point MLflow (tracking and registry) at ``tracking_uri`` for the block; the previous
    URI is restored afterwards. Yields a client for the store."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous)


@contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    artifact_location: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run in ``experiment`` (created on first use, with artifacts under
    ``artifact_location`` or :func:`default_artifact_location`)."""
    with tracking(tracking_uri) as client:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            location = artifact_location or default_artifact_location(tracking_uri)
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        else:
            experiment_id = found.experiment_id
        # experiment_id rather than mlflow.set_experiment: the latter sets a process-wide active
        # experiment that outlives this store and breaks the next run against another store.
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                              tags=dict(tags or {})) as run:
            yield run


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log (nested) parameters as dotted-key strings in the active run."""
    mlflow.log_params({k: _plain(v) for k, v in flatten(params, prefix).items()})


def log_metrics(
    metrics: Mapping[str, float], prefix: str = "", step: int | None = None
) -> None:
    """Log numeric metrics (nested keys dotted); non-numeric values are rejected."""
    flat = flatten(metrics, prefix)
    bad = {k: v for k, v in flat.items() if not isinstance(v, int | float | np.number)}
    if bad:
        raise TypeError(f"metrics must be numbers; got {bad}")
    mlflow.log_metrics({k: float(v) for k, v in flat.items()}, step=step)


def _plain(value: Any) -> Any:
    """JSON-friendly value (timestamps and other objects as strings)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def log_table(df: pd.DataFrame, name: str, fmt: Literal["csv", "json"] = "csv") -> str:
    """Log ``df`` as ``tables/<name>.<fmt>`` in the active run; returns the artifact path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_json(path, orient="records", date_format="iso", indent=1)
        mlflow.log_artifact(str(path), artifact_path="tables")
    return f"tables/{path.name}"


def log_figure(figure: Any, name: str) -> str:
    """Log a matplotlib figure as ``figures/<name>.png``; returns the artifact path."""
    path = f"figures/{name}.png"
    mlflow.log_figure(figure, path)
    return path


def log_config(config: BaseModel | Mapping[str, Any]) -> None:
    """Log the config as ``config.json`` and as ``config.*`` params, paths made portable
    (:func:`churnml.paths.portable`: no absolute path of this machine)."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    data = portable_values(data)
    mlflow.log_dict(_plain(data), "config.json")
    log_params(data, prefix="config.")


def log_fingerprint(fingerprint: Mapping[str, Any]) -> None:
    """Log a data fingerprint (e.g. :meth:`CustomerData.fingerprint`) as
    ``data_fingerprint.json`` and as ``data.*`` tags."""
    mlflow.log_dict(_plain(dict(fingerprint)), "data_fingerprint.json")
    mlflow.set_tags({k: str(v) for k, v in flatten(fingerprint, "data.").items()})


def log_training_window(**window: Any) -> None:
    """Log the training window (e.g. ``start``, ``end``, ``horizon_days``, ``cutoffs``) as
    ``window.*`` params; model cards and exports report them."""
    log_params(window, prefix=WINDOW_PREFIX)


def to_model_input(X: pd.DataFrame, feature_dtypes: Mapping[str, str]) -> pd.DataFrame:
    """The feature columns in the form a logged model's signature accepts: numeric as
    float64, categorical as pandas ``str`` (missing stays missing); other columns dropped."""
    missing = [c for c in feature_dtypes if c not in X.columns]
    if missing:
        raise KeyError(f"input lacks feature column(s) {missing}")
    return pd.DataFrame(
        {
            c: X[c].astype("str") if kind == CATEGORICAL else X[c].astype("float64")
            for c, kind in feature_dtypes.items()
        },
        index=X.index,
    )


def _signature(feature_dtypes: Mapping[str, str], output: str) -> ModelSignature:
    inputs = Schema(
        [
            ColSpec(DataType.string if kind == CATEGORICAL else DataType.double, name)
            for name, kind in feature_dtypes.items()
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(DataType.double, output)]))


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (the installed versions)."""
    return [f"{d}=={importlib.metadata.version(d)}" for d in PINNED_DISTRIBUTIONS]


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of a fitted churnml estimator stored as a joblib artifact.

    ``predict`` returns a DataFrame with one column, ``output``: the churn probability
    (``predict_proba[:, 1]``) for classifiers, ``predict`` for value models.
    """

    def __init__(self, output: str, features: list[str], feature_dtypes: dict[str, str]):
        self.output = output
        self.features = features
        self.feature_dtypes = feature_dtypes
        self.estimator: Any = None

    def load_context(self, context: Any) -> None:
        self.estimator = joblib.load(context.artifacts[ESTIMATOR_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.output == CHURN_OUTPUT:
            values = self.estimator.predict_proba(model_input)[:, 1]
        else:
            values = self.estimator.predict(model_input)
        return pd.DataFrame({self.output: values}, index=model_input.index)


@dataclass(frozen=True)
class LoggedEstimator:
    """Where a logged estimator ended up."""

    model_uri: str
    run_id: str
    name: str | None = None
    version: str | None = None


def log_model(
    estimator: Any,
    input_example: pd.DataFrame,
    *,
    output: Output,
    registered_model_name: str | None = None,
    alias: str | None = CHALLENGER,
) -> LoggedEstimator:
    """Log a fitted estimator in the active run as a pyfunc model; optionally register it
    as a new version of ``registered_model_name`` with ``alias``.

    The model's metadata carries ``features``, ``feature_dtypes`` and ``output``; the
    signature carries the same feature list (see module docstring).
    """
    features = [str(c) for c in estimator.feature_names_in_]
    dtypes = dict(estimator.feature_dtypes_)
    example = to_model_input(input_example.head(INPUT_EXAMPLE_ROWS), dtypes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ESTIMATOR_FILE
        joblib.dump(estimator, path)
        info = mlflow.pyfunc.log_model(
            name=LOGGED_MODEL_NAME,
            python_model=EstimatorModel(output, features, dtypes),
            artifacts={ESTIMATOR_ARTIFACT: str(path)},
            signature=_signature(dtypes, output),
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={
                "features": features,
                "feature_dtypes": dtypes,
                "output": output,
                "estimator": type(estimator).__name__,
            },
            registered_model_name=registered_model_name,
        )
    version = info.registered_model_version
    if registered_model_name is not None and alias is not None:
        mlflow.MlflowClient().set_registered_model_alias(
            registered_model_name, alias, str(version)
        )
    return LoggedEstimator(
        model_uri=info.model_uri,
        run_id=info.run_id,
        name=registered_model_name,
        version=None if version is None else str(version),
    )


def _version_by_alias(client: mlflow.MlflowClient, name: str, alias: str) -> Any:
    """The model version holding ``alias``, or None when no version has it."""
    if alias not in client.get_registered_model(name).aliases:
        return None
    return client.get_model_version_by_alias(name, alias)


def _run_metric(client: mlflow.MlflowClient, run_id: str, metric: str) -> float | None:
    value = client.get_run(run_id).data.metrics.get(metric)
    return None if value is None or np.isnan(value) else float(value)


def promote_if_better(
    name: str,
    version: str | int,
    metric: str,
    higher_is_better: bool = True,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    min_delta: float = 0.0,
) -> bool:
    """Give ``version`` the ``champion`` alias if its run's ``metric`` beats the current
    champion's by more than ``min_delta`` (absolute; 0: strictly better), or if there is no
    champion yet; returns whether it was promoted.

    The candidate's run must have logged ``metric``; a champion that lacks it is replaced
    (with a warning). A promoted version loses the ``challenger`` alias.
    """
    version = str(version)
    with tracking(tracking_uri) as client:
        candidate = client.get_model_version(name, version)
        value = _run_metric(client, candidate.run_id, metric)
        if value is None:
            raise ValueError(f"{name} v{version}: run {candidate.run_id} has no metric {metric!r}")
        champion = _version_by_alias(client, name, CHAMPION)
        if champion is not None and champion.version == version:
            return True
        if champion is not None:
            best = _run_metric(client, champion.run_id, metric)
            if best is None:
                warnings.warn(
                    f"{name} champion v{champion.version} has no metric {metric!r}; replacing it",
                    stacklevel=2,
                )
            elif (
                (value <= best + min_delta) if higher_is_better else (value >= best - min_delta)
            ):
                return False
        client.set_registered_model_alias(name, CHAMPION, version)
        if CHALLENGER in candidate.aliases:
            client.delete_registered_model_alias(name, CHALLENGER)
        return True


def load_pyfunc(model_uri: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> Any:
    """The MLflow pyfunc model at ``model_uri`` (e.g. ``models:/churnml-churn@champion``)."""
    with tracking(tracking_uri):
        return mlflow.pyfunc.load_model(model_uri)


def load_model(model_uri: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> Any:
    """The fitted churnml estimator behind a logged model URI."""
    return load_pyfunc(model_uri, tracking_uri).unwrap_python_model().estimator


def model_card(
    name: str,
    alias: str = CHAMPION,
    tracking_uri: str = DEFAULT_TRACKING_URI,
) -> dict[str, Any]:
    """Description of the registered version holding ``alias``: name, version, aliases,
    run id, model URI, estimator, output, features and dtypes, training window
    (``window.*`` params), run metrics, params and user tags, MLflow version."""
    with tracking(tracking_uri) as client:
        mv = _version_by_alias(client, name, alias)
        if mv is None:
            raise LookupError(f"registered model {name!r} has no version with alias {alias!r}")
        run = client.get_run(mv.run_id)
        meta = mlflow.models.get_model_info(f"models:/{name}/{mv.version}").metadata or {}
    params = dict(run.data.params)
    return {
        "name": name,
        "version": str(mv.version),
        "aliases": sorted(mv.aliases),
        "run_id": mv.run_id,
        "model_uri": f"models:/{name}/{mv.version}",
        "source": portable(mv.source),
        "estimator": meta.get("estimator"),
        "output": meta.get("output"),
        "features": list(meta.get("features", [])),
        "feature_dtypes": dict(meta.get("feature_dtypes", {})),
        "training_window": {
            k.removeprefix(WINDOW_PREFIX): v for k, v in params.items()
            if k.startswith(WINDOW_PREFIX)
        },
        "metrics": dict(run.data.metrics),
        "params": params,
        "tags": {
            k: v for k, v in run.data.tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)
        },
        "mlflow_version": mlflow.__version__,
    }


def card_json(card: Mapping[str, Any]) -> str:
    """A model card as indented JSON text."""
    return json.dumps(_plain(dict(card)), indent=1, sort_keys=True)
