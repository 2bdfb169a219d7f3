"""Uplift (treatment-effect) modelling: who does a campaign actually change?

Learners (scikit-learn conventions; ``fit(X, treatment, y)`` with arm names, ``predict(X)`` ->
one column of estimated effects per treatment arm): :class:`SLearner`, :class:`TLearner`,
:class:`XLearner`, :class:`DRLearner`; propensity (:class:`PropensityModel`,
:func:`propensity_auc`); metrics in scikit-uplift 0.5.1's normalisation
(:mod:`churnml.uplift.metrics`); plots (:mod:`churnml.uplift.plots`).
"""

from churnml.uplift.drlearner import DRLearner
from churnml.uplift.metrics import (
    curve_band,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    treatment_indicator,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
    uplift_intervals,
    uplift_scores,
)
from churnml.uplift.plots import plot_curve, plot_qini_curve, plot_uplift_curve
from churnml.uplift.propensity import PropensityModel, propensity_auc
from churnml.uplift.slearner import SLearner
from churnml.uplift.tlearner import TLearner
from churnml.uplift.xlearner import XLearner

__all__ = [
    "DRLearner",
    "PropensityModel",
    "SLearner",
    "TLearner",
    "XLearner",
    "curve_band",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "plot_curve",
    "plot_qini_curve",
    "plot_uplift_curve",
    "propensity_auc",
    "qini_auc_score",
    "qini_curve",
    "treatment_indicator",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
    "uplift_intervals",
    "uplift_scores",
]
