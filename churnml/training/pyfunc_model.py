"""MLflow "models from code" entry point of churnml's pyfunc models.

:func:`churnml.training.tracking.log_model` logs this file instead of a pickled Python object:
loading the model runs this (churnml's own) code, which reads the estimator from its JSON
state artifact and its output column and features from the logged ``model_config``.
"""

import mlflow.models

import churnml.survival.hazard  # noqa: F401 (allows DiscreteTimeHazard states)
from churnml.training.tracking import EstimatorModel

mlflow.models.set_model(EstimatorModel())
