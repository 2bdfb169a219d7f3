"""Churn and LTV models as scikit-learn estimators taking pandas feature frames."""

from churnml.models._preprocess import FrameEncoder
from churnml.models.baselines import LastValueBaseline, RecencyBaseline
from churnml.models.btyd import BTYDChurnModel, BTYDFeatures, BTYDValueModel
from churnml.models.churn import ChurnClassifier, LogOddsCalibrator
from churnml.models.logistic import LogisticChurnBaseline
from churnml.models.ltv import LTVModel

__all__ = [
    "BTYDChurnModel",
    "BTYDFeatures",
    "BTYDValueModel",
    "ChurnClassifier",
    "FrameEncoder",
    "LTVModel",
    "LastValueBaseline",
    "LogOddsCalibrator",
    "LogisticChurnBaseline",
    "RecencyBaseline",
]
