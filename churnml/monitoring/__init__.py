"""Monitoring: the score history, realized and estimated performance, drift, retrain signal.

See :mod:`churnml.monitoring.monitor` for what is computed and
:mod:`churnml.monitoring.jobs` for the jobs behind ``churnml score`` / ``churnml monitor``.
"""

from churnml.monitoring.drift import mix_psi, profile_psi, psi
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.monitor import MonitorResult, Reference, monitor
from churnml.monitoring.performance import estimate, expected_auc, expected_brier

__all__ = [
    "MonitorResult", "Reference", "ScoreHistory", "estimate", "expected_auc", "expected_brier",
    "mix_psi", "monitor", "profile_psi", "psi",
]
