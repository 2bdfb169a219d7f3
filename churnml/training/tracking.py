"""MLflow tracking and model registry for churnml runs.

- Tracking store: SQLite (``sqlite:///mlflow.db``) by default; artifacts of a new experiment
  go to ``mlartifacts/`` beside the database file, not to the current directory.
- One experiment per config name (:attr:`churnml.config.Config.name`).
- Models are logged as MLflow pyfunc models from code (:mod:`churnml.training.pyfunc_model`;
  nothing is pickled): :class:`EstimatorModel` loads the fitted churnml estimator from a
  code-free JSON state artifact (``estimator.json``,
  :mod:`churnml.models._state`; versions logged before it hold ``estimator.joblib``) and
  returns a DataFrame with ``churn_probability`` (churn) or ``expected_value`` and
  ``value_if_retained`` (LTV; :data:`LTV_OUTPUTS`). The signature lists every feature,
  numeric as ``double`` and categorical as ``string`` (MLflow schema enforcement rejects
  pandas ``category`` and will not cast int64 to double: use :func:`to_model_input` before
  ``pyfunc.predict``).
- Registry names ``<config name>-churn`` / ``-ltv`` (:class:`churnml.config.TrackingConfig`);
  a new version gets the alias ``challenger``. The churn and LTV versions of one run are a
  *pair*: :func:`set_champions` moves both ``champion`` aliases, the LTV one first and the
  churn one last, and :func:`resolve_pair` reads a pair through the churn alias and the run
  it points at, so a promotion killed between the two writes leaves the previous pair in use.
- Stores: a reader (:func:`tracking` with ``read_only=True``: ``score``, ``export``) refuses a
  local store that does not exist instead of creating an empty one; a writer serialises the
  creation and migration of a SQLite store and of experiments with a file lock
  (``<database>.lock``), so concurrent ``train`` runs on a new store do not race.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.utils.time import get_current_time_millis
from pydantic import BaseModel

from churnml.config import SQLITE_PREFIX, Config, TrackingConfig
from churnml.errors import ModelSourceError
from churnml.models._preprocess import CATEGORICAL
from churnml.models._state import STATE_CLASSES, read_state, write_state
from churnml.paths import portable, portable_values

DEFAULT_TRACKING_URI = TrackingConfig().uri
KEY_PART = re.compile(r"[A-Za-z0-9_\- ]+")  # a user-named key part MLflow takes as it is
ARTIFACT_DIR = "mlartifacts"  # artifact root beside a SQLite tracking database
_DEFAULT_CONFIG = Config.model_validate({"data": {"dataset": "simulated"}})
CHURN_MODEL = _DEFAULT_CONFIG.tracking.churn_model_name  # names under the default config name
LTV_MODEL = _DEFAULT_CONFIG.tracking.ltv_model_name
MODEL_NAMES = (CHURN_MODEL, LTV_MODEL)
CHAMPION = "champion"
CHALLENGER = "challenger"
LOGGED_MODEL_NAME = "model"  # name of the logged model inside its run
ESTIMATOR_ARTIFACT = "estimator"  # key (and file stem) of the estimator artifact
ESTIMATOR_FILE = f"{ESTIMATOR_ARTIFACT}.json"  # code-free state (churnml.models._state)
LEGACY_ESTIMATOR_FILE = f"{ESTIMATOR_ARTIFACT}.joblib"  # pickles of versions logged earlier
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # models-from-code entry point
LOCK_SUFFIX = ".lock"  # beside a SQLite database: serialises store creation
LOCK_TIMEOUT_SECONDS = 600
CHURN_OUTPUT = "churn_probability"
LTV_OUTPUT = "expected_value"  # "predicted_value" before value if retained was added
LTV_OUTPUTS = (LTV_OUTPUT, "value_if_retained")  # columns of an LTV model's pyfunc output
OUTPUTS = {CHURN_MODEL: CHURN_OUTPUT, LTV_MODEL: LTV_OUTPUT}
SURVIVAL_OUTPUT = "expected_periods_active"  # survival model: sum_k S(k) over its grid
WINDOW_PREFIX = "window."  # params describing the training window
INPUT_EXAMPLE_ROWS = 5
NO_EXAMPLE_WARNING = ".*An input example was not provided"  # MLflow's, in colour codes
# distributions pinned in a logged model's requirements (skips MLflow's ~3 s inference)
PINNED_DISTRIBUTIONS = ("mlflow", "lightgbm", "scikit-learn", "scipy", "pandas", "numpy")
SYSTEM_TAG_PREFIX = "mlflow."
Output = Literal["churn_probability", "expected_value", "expected_periods_active"]


def default_artifact_location(tracking_uri: str) -> str | None:
    """``<database dir>/mlartifacts`` for a SQLite store; None (MLflow's default) otherwise."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri.removeprefix(prefix))
    return (db.resolve().parent / ARTIFACT_DIR).as_uri()


def local_store(tracking_uri: str) -> Path | None:
    """The database file (``sqlite:///``) or folder (file store: a plain path or ``file:``)
    of a local store; None for a server, Databricks or an in-memory database."""
    if tracking_uri.startswith(SQLITE_PREFIX):
        db = tracking_uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0]
        return None if not db or db.startswith(":memory:") else Path(db)
    if tracking_uri.startswith("file:"):
        return Path(tracking_uri.removeprefix("file:").removeprefix("//"))
    if "://" in tracking_uri or tracking_uri == "databricks" or not tracking_uri:
        return None
    return Path(tracking_uri)


def require_store(tracking_uri: str) -> None:
    """Refuse a local store that does not exist (a reader must not create an empty one)."""
    path = local_store(tracking_uri)
    if path is not None and not path.exists():
        raise ModelSourceError(
            f"MLflow store {tracking_uri} not found (no {path.resolve()}): train first "
            "(`churnml train`) or point tracking.uri / --tracking-uri at your store"
        )
    check_sqlite_store(tracking_uri)


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def check_sqlite_store(tracking_uri: str) -> None:
    """A ``sqlite:///`` store whose file exists must be an SQLite database (its header),
    else :class:`ModelSourceError` naming it, before MLflow opens it (a damaged file gave
    SQLAlchemy's raw ``file is not a database`` error)."""
    path = local_store(tracking_uri)
    if not tracking_uri.startswith(SQLITE_PREFIX) or path is None or not path.is_file():
        return
    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise ModelSourceError(
            f"MLflow store {portable(tracking_uri)}: {portable(path)} is not an SQLite "
            "database (damaged, or another file); restore it from a backup or point "
            "tracking.uri / --tracking-uri at your store")


def store_lock(tracking_uri: str) -> Any:
    """A file lock beside a SQLite database (``<db>.lock``), else a no-op context."""
    path = local_store(tracking_uri)
    if path is None or not tracking_uri.startswith(SQLITE_PREFIX):
        return nullcontext()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + LOCK_SUFFIX, timeout=LOCK_TIMEOUT_SECONDS)


_READY: set[str] = set()  # stores created and migrated by this process


def ensure_store(tracking_uri: str) -> None:
    """Create and migrate the store (tracking and registry tables) under :func:`store_lock`,
    once per process: two processes starting on a new SQLite store take turns."""
    if tracking_uri in _READY:
        return
    check_sqlite_store(tracking_uri)
    with store_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    _READY.add(tracking_uri)


@contextmanager
def tracking(
    tracking_uri: str = DEFAULT_TRACKING_URI, *, read_only: bool = False
) -> Iterator[mlflow.MlflowClient]:
    """Point MLflow (tracking and registry) at ``tracking_uri`` for the block; the previous
    URI is restored afterwards. Yields a client for the store.

    ``read_only=True`` refuses a local store that does not exist (:func:`require_store`);
    otherwise the store is created if needed, serialised by :func:`ensure_store`.
    """
    if read_only:
        require_store(tracking_uri)
    else:
        ensure_store(tracking_uri)
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
        with store_lock(tracking_uri):  # two runs must not both create the experiment
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


def key_part(name: object) -> str:
    """A name the user chose (segment, arm, campaign id, column) as one part of an MLflow
    metric or parameter key: kept when it is made of letters, digits, ``_``, ``-`` and
    spaces; otherwise each run of other characters (``/``, ``.``, ...) becomes ``_`` and a
    short hash of the name is appended, so ``../../x`` cannot form a path and two names never
    share a key (``../../x`` -> ``x_3f2a9c1d``)."""
    text = str(name)
    if KEY_PART.fullmatch(text):
        return text
    safe = re.sub(r"[^A-Za-z0-9_\- ]+", "_", text).strip("_ ") or "name"
    return f"{safe}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log (nested) parameters as dotted-key strings in the active run."""
    with batched() as batch:
        batch.params(params, prefix)


def log_metrics(
    metrics: Mapping[str, float], prefix: str = "", step: int | None = None
) -> None:
    """Log numeric metrics (nested keys dotted); non-numeric values are rejected."""
    with batched() as batch:
        batch.metrics(metrics, prefix, step)


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


class RunBatch:
    """Params, metrics, tags and artifact files of the active run, collected and then logged
    by :meth:`flush` in one ``MlflowClient.log_batch`` (one store transaction per 100
    params or tags / 1,000 metrics, instead of several per call) and one ``log_artifacts``
    (the files of ``folder`` keep their relative paths). Use :func:`batched`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._params: dict[str, Any] = {}
        self._metrics: dict[int, dict[str, float]] = {}
        self._tags: dict[str, str] = {}

    def params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """(Nested) parameters as dotted-key strings."""
        self._params.update({k: _plain(v) for k, v in flatten(params, prefix).items()})

    def metrics(self, metrics: Mapping[str, float], prefix: str = "",
                step: int | None = None) -> None:
        """Numeric metrics (nested keys dotted) at ``step`` (None: 0); non-numeric values
        are rejected."""
        flat = flatten(metrics, prefix)
        bad = {k: v for k, v in flat.items() if not isinstance(v, int | float | np.number)}
        if bad:
            raise TypeError(f"metrics must be numbers; got {bad}")
        self._metrics.setdefault(step or 0, {}).update({k: float(v) for k, v in flat.items()})

    def tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def _file(self, artifact_path: str) -> Path:
        path = self.folder / artifact_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def json(self, data: Mapping[str, Any], artifact_path: str) -> str:
        """``data`` as indented JSON at ``artifact_path`` (as ``mlflow.log_dict`` writes)."""
        self._file(artifact_path).write_text(json.dumps(_plain(dict(data)), indent=2, default=str))
        return artifact_path

    def table(self, df: pd.DataFrame, name: str, fmt: Literal["csv", "json"] = "csv") -> str:
        """``df`` as ``tables/<name>.<fmt>``; returns the artifact path."""
        artifact = f"tables/{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(self._file(artifact), index=False)
        else:
            df.to_json(self._file(artifact), orient="records", date_format="iso", indent=1)
        return artifact

    def figure(self, figure: Any, name: str) -> str:
        """A matplotlib figure as ``figures/<name>.png``; returns the artifact path."""
        artifact = f"figures/{name}.png"
        figure.savefig(self._file(artifact))
        return artifact

    def files(self, paths: list[Path], artifact_dir: str) -> list[str]:
        """Copies of ``paths`` as ``<artifact_dir>/<file name>``; returns the artifact paths."""
        out = []
        for path in paths:
            artifact = f"{artifact_dir}/{Path(path).name}"
            shutil.copyfile(path, self._file(artifact))
            out.append(artifact)
        return out

    def flush(self) -> None:
        """Log what was collected in the active run and forget it. Metrics at the step of a
        model logged in the run are linked to that model, as ``mlflow.log_metrics`` does."""
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("no active MLflow run to log to")
        outputs = run.outputs.model_outputs if run.outputs else []
        now = get_current_time_millis()
        metrics = [
            Metric(key, value, now, step, model_id=model_id)
            for step, values in self._metrics.items()
            for model_id in ([o.model_id for o in outputs if o.step == step] or [None])
            for key, value in values.items()
        ]
        params = [Param(k, str(v)) for k, v in self._params.items()]
        tags = [RunTag(k, v) for k, v in self._tags.items()]
        if metrics or params or tags:
            mlflow.MlflowClient().log_batch(run.info.run_id, metrics=metrics, params=params,
                                            tags=tags)
        if any(p.is_file() for p in self.folder.rglob("*")):
            mlflow.log_artifacts(str(self.folder))
            shutil.rmtree(self.folder)
            self.folder.mkdir()
        self._params, self._metrics, self._tags = {}, {}, {}


@contextmanager
def batched() -> Iterator[RunBatch]:
    """A :class:`RunBatch` of the active run, flushed at the end of the block (not after an
    error)."""
    with tempfile.TemporaryDirectory(prefix="churnml-run-") as tmp:
        batch = RunBatch(Path(tmp))
        yield batch
        batch.flush()


def log_table(df: pd.DataFrame, name: str, fmt: Literal["csv", "json"] = "csv") -> str:
    """Log ``df`` as ``tables/<name>.<fmt>`` in the active run; returns the artifact path."""
    with batched() as batch:
        return batch.table(df, name, fmt)


def log_figure(figure: Any, name: str) -> str:
    """Log a matplotlib figure as ``figures/<name>.png``; returns the artifact path."""
    with batched() as batch:
        return batch.figure(figure, name)


def log_figure_files(paths: list[Path]) -> list[str]:
    """Log rendered figures (PNG files) as ``figures/<file name>``; returns the paths."""
    with batched() as batch:
        return batch.files(paths, "figures")


def config_record(config: BaseModel | Mapping[str, Any], batch: RunBatch) -> None:
    """The config as ``config.json`` and as ``config.*`` params of ``batch``, paths made
    portable (:func:`churnml.paths.portable`: no absolute path of this machine)."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    data = portable_values(data)
    batch.json(data, "config.json")
    batch.params(data, prefix="config.")


def fingerprint_record(fingerprint: Mapping[str, Any], batch: RunBatch) -> None:
    """A data fingerprint (e.g. :meth:`CustomerData.fingerprint`) as
    ``data_fingerprint.json`` and as ``data.*`` tags of ``batch``."""
    batch.json(fingerprint, "data_fingerprint.json")
    batch.tags(flatten(fingerprint, "data."))


def log_config(config: BaseModel | Mapping[str, Any]) -> None:
    """Log the config (:func:`config_record`) in the active run."""
    with batched() as batch:
        config_record(config, batch)


def log_fingerprint(fingerprint: Mapping[str, Any]) -> None:
    """Log a data fingerprint (:func:`fingerprint_record`) in the active run."""
    with batched() as batch:
        fingerprint_record(fingerprint, batch)


def log_training_window(batch: RunBatch | None = None, **window: Any) -> None:
    """Log the training window (e.g. ``start``, ``end``, ``horizon_days``, ``cutoffs``) as
    ``window.*`` params (of ``batch``, else of the active run); model cards and exports
    report them."""
    if batch is None:
        log_params(window, prefix=WINDOW_PREFIX)
    else:
        batch.params(window, prefix=WINDOW_PREFIX)


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


def output_columns(output: str) -> tuple[str, ...]:
    """Columns a logged model returns: the churn probability, or :data:`LTV_OUTPUTS`."""
    if output == SURVIVAL_OUTPUT:
        return (SURVIVAL_OUTPUT,)
    return (CHURN_OUTPUT,) if output == CHURN_OUTPUT else LTV_OUTPUTS


def _signature(feature_dtypes: Mapping[str, str], output: str) -> ModelSignature:
    inputs = Schema(
        [
            ColSpec(DataType.string if kind == CATEGORICAL else DataType.double, name)
            for name, kind in feature_dtypes.items()
        ]
    )
    outputs = Schema([ColSpec(DataType.double, c) for c in output_columns(output)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (the installed versions, read once)."""
    return list(_pinned_versions())


@functools.cache
def _pinned_versions() -> tuple[str, ...]:
    return tuple(f"{d}=={importlib.metadata.version(d)}" for d in PINNED_DISTRIBUTIONS)


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of a fitted churnml estimator stored as a JSON state artifact (a joblib
    pickle for versions logged by earlier churnml releases: the store is trusted).

    Logged from code (:mod:`churnml.training.pyfunc_model`), so MLflow pickles nothing: the
    output column and features come from the logged ``model_config``. ``predict`` returns a
    DataFrame: ``churn_probability`` (``predict_proba[:, 1]``) for classifiers;
    ``expected_value`` (``predict``) and ``value_if_retained`` (``predict_if_retained``) for
    value models.
    """

    def __init__(self, output: str | None = None, features: list[str] | None = None,
                 feature_dtypes: dict[str, str] | None = None):
        self.output = output
        self.features = features
        self.feature_dtypes = feature_dtypes
        self.estimator: Any = None

    def load_context(self, context: Any) -> None:
        config = getattr(context, "model_config", None) or {}
        self.output = config.get("output", self.output)
        self.features = config.get("features", self.features)
        self.feature_dtypes = config.get("feature_dtypes", self.feature_dtypes)
        path = Path(context.artifacts[ESTIMATOR_ARTIFACT])
        if path.suffix == ".json":
            self.estimator = read_state(path)
        else:  # logged before the JSON state existed; the MLflow store is trusted
            import joblib

            self.estimator = joblib.load(path)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.output == CHURN_OUTPUT:
            values = {CHURN_OUTPUT: self.estimator.predict_proba(model_input)[:, 1]}
        elif self.output == SURVIVAL_OUTPUT:
            values = {SURVIVAL_OUTPUT: -self.estimator.predict_risk(model_input)}
        else:
            values = dict(zip(LTV_OUTPUTS, (self.estimator.predict(model_input),
                                            self.estimator.predict_if_retained(model_input)),
                              strict=True))
        return pd.DataFrame(values, index=model_input.index)


@dataclass(frozen=True)
class LoggedEstimator:
    """Where a logged estimator ended up."""

    model_uri: str
    run_id: str
    name: str | None = None
    version: str | None = None


def log_model(
    estimator: Any,
    input_example: pd.DataFrame | None = None,
    *,
    output: Output,
    registered_model_name: str | None = None,
    alias: str | None = CHALLENGER,
) -> LoggedEstimator:
    """Log a fitted estimator in the active run as a pyfunc model (its state as JSON,
    :mod:`churnml.models._state`); optionally register it as a new version of
    ``registered_model_name`` with ``alias``.

    The model's metadata carries ``features``, ``feature_dtypes`` and ``output``; the
    signature, given explicitly, carries the same feature list (see module docstring).
    ``input_example`` (its first :data:`INPUT_EXAMPLE_ROWS` rows) is saved as the model's
    MLflow input example, which MLflow then validates by loading the model back and
    predicting it (about a second per model); ``train`` logs none.
    """
    features = [str(c) for c in estimator.feature_names_in_]
    dtypes = dict(estimator.feature_dtypes_)
    example = (None if input_example is None
               else to_model_input(input_example.head(INPUT_EXAMPLE_ROWS), dtypes))
    with tempfile.TemporaryDirectory() as tmp:
        if STATE_CLASSES.get(type(estimator).__name__) is type(estimator):
            path = write_state(estimator, Path(tmp) / ESTIMATOR_FILE)
        else:  # not (yet) on the state protocol: a pickle in the trusted store, not exportable
            import joblib

            warnings.warn(f"{type(estimator).__name__} does not implement to_state/from_state: "
                          "logged as a pickle, which `churnml export` cannot write code-free",
                          stacklevel=2)
            path = Path(tmp) / LEGACY_ESTIMATOR_FILE
            joblib.dump(estimator, path)
        with warnings.catch_warnings():  # the explicit signature describes the input
            warnings.filterwarnings("ignore", message=NO_EXAMPLE_WARNING, category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name=LOGGED_MODEL_NAME,
                python_model=str(PYFUNC_CODE),
                model_config={"output": output, "features": features, "feature_dtypes": dtypes},
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
            )
    version = None
    if registered_model_name is not None:
        version = register(registered_model_name, info)
        if alias is not None:
            mlflow.MlflowClient().set_registered_model_alias(
                registered_model_name, alias, version
            )
    return LoggedEstimator(
        model_uri=info.model_uri,
        run_id=info.run_id,
        name=registered_model_name,
        version=None if version is None else str(version),
    )


def register(name: str, info: Any) -> str:
    """Register a logged model (``info``: what ``log_model`` returned) as a new version of
    ``name`` (created on first use) in the current registry; returns the version. What
    ``log_model(registered_model_name=...)`` does, without its "Successfully registered
    model" / "Created version" lines on stderr in every routine run."""
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "ALREADY_EXISTS" not in str(exc.error_code):
            raise
    mv = client.create_model_version(name, source=info.model_uri, run_id=info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


def _registered(client: mlflow.MlflowClient, name: str, tracking_uri: str) -> Any:
    """The registered model ``name``; a :class:`ModelSourceError` naming store and model
    (and the models the store holds) when it is not there."""
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code):
            raise
        known = sorted(m.name for m in client.search_registered_models(max_results=100))
        raise ModelSourceError(
            f"registered model {name!r} not found in MLflow store {tracking_uri} "
            f"(registered there: {known or 'none'}); train with this config first, or set "
            "tracking.churn_model_name / tracking.ltv_model_name"
        ) from None


def version_by_alias(
    client: mlflow.MlflowClient, name: str, alias: str, tracking_uri: str
) -> Any:
    """The version of ``name`` holding ``alias``; a :class:`ModelSourceError` naming store,
    model and alias (and the aliases there are) when there is none."""
    aliases = _registered(client, name, tracking_uri).aliases
    if alias not in aliases:
        raise ModelSourceError(
            f"registered model {name!r} in MLflow store {tracking_uri} has no version with "
            f"alias {alias!r} (aliases: {dict(aliases) or 'none'})"
        )
    return client.get_model_version_by_alias(name, alias)


def _version_by_alias(client: mlflow.MlflowClient, name: str, alias: str) -> Any:
    """The model version holding ``alias``, or None when no version (or no model) has it."""
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        return None
    return client.get_model_version_by_alias(name, alias) if alias in aliases else None


@dataclass(frozen=True)
class ModelPair:
    """The churn and LTV versions scored together: logged in one training run."""

    churn: Any  # mlflow ModelVersion
    ltv: Any
    note: str | None = None  # why the LTV alias was not followed, if it was not

    @property
    def run_id(self) -> str:
        return str(self.churn.run_id)


def resolve_pair(
    churn_name: str, ltv_name: str, alias: str = CHAMPION,
    tracking_uri: str = DEFAULT_TRACKING_URI, client: mlflow.MlflowClient | None = None,
) -> ModelPair:
    """The pair behind ``alias``: the churn version holding it and the LTV version logged in
    the same run (the churn alias is written last by :func:`set_champions`, so it commits a
    pair). Stores from before pairs, whose LTV alias points at another run and which have
    no LTV version of the churn version's run, fall back to the LTV alias (``note`` says so).
    """
    if client is None:
        with tracking(tracking_uri, read_only=True) as own:
            return resolve_pair(churn_name, ltv_name, alias, tracking_uri, own)
    churn = version_by_alias(client, churn_name, alias, tracking_uri)
    _registered(client, ltv_name, tracking_uri)
    same_run = client.search_model_versions(
        f"name = '{ltv_name}' and run_id = '{churn.run_id}'"
    )
    ltv_alias = _version_by_alias(client, ltv_name, alias)
    if same_run:
        ltv = max(same_run, key=lambda mv: int(mv.version))
        note = None
        if ltv_alias is not None and str(ltv_alias.version) != str(ltv.version):
            note = (f"{ltv_name}@{alias} points at v{ltv_alias.version}, but {churn_name}@"
                    f"{alias} (v{churn.version}) was trained with {ltv_name} v{ltv.version}: "
                    "using that pair (an interrupted promotion leaves this state)")
        return ModelPair(churn, ltv, note)
    if ltv_alias is None:
        raise ModelSourceError(
            f"MLflow store {tracking_uri}: {churn_name}@{alias} is v{churn.version} (run "
            f"{churn.run_id}), but {ltv_name} has neither a version of that run nor a version "
            f"with alias {alias!r}"
        )
    return ModelPair(churn, ltv_alias,
                     f"{churn_name} v{churn.version} and {ltv_name} v{ltv_alias.version} come "
                     "from different training runs (registered before churnml paired them)")


def set_champions(
    client: mlflow.MlflowClient, pair: Mapping[str, tuple[str, str]], alias: str = CHAMPION
) -> None:
    """Give ``alias`` to both versions of a pair ``{"churn": (name, version), "ltv": (...)}``:
    the LTV alias first, the churn alias last (the commit point read by
    :func:`resolve_pair`); then drop their ``challenger`` aliases."""
    for task in ("ltv", "churn"):
        name, version = pair[task]
        _set_alias(client, name, alias, str(version))
    for name, version in pair.values():
        if CHALLENGER in client.get_model_version(name, str(version)).aliases:
            client.delete_registered_model_alias(name, CHALLENGER)


def _set_alias(client: mlflow.MlflowClient, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)


def run_metric(client: mlflow.MlflowClient, run_id: str, metric: str) -> float | None:
    """A metric of a run, None when missing or NaN."""
    value = client.get_run(run_id).data.metrics.get(metric)
    return None if value is None or np.isnan(value) else float(value)


def load_pyfunc(model_uri: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> Any:
    """The MLflow pyfunc model at ``model_uri`` (e.g. ``models:/churnml-churn@champion``)."""
    with tracking(tracking_uri, read_only=True):
        return mlflow.pyfunc.load_model(model_uri)


def load_model(model_uri: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> Any:
    """The fitted churnml estimator behind a logged model URI."""
    return load_pyfunc(model_uri, tracking_uri).unwrap_python_model().estimator


def model_card(
    name: str,
    alias: str = CHAMPION,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    version: str | None = None,
) -> dict[str, Any]:
    """Description of the registered version holding ``alias`` (or of ``version``): name,
    version, aliases, run id, model URI, estimator, output, features and dtypes, training
    window (``window.*`` params), run metrics, params and user tags, MLflow version."""
    with tracking(tracking_uri, read_only=True) as client:
        if version is None:
            mv = version_by_alias(client, name, alias, tracking_uri)
        else:
            _registered(client, name, tracking_uri)
            mv = client.get_model_version(name, str(version))
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
