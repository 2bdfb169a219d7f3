"""Monitoring: the score history, data checks, realized and estimated performance, drift, and
the verdict by cause.

See :mod:`churnml.monitoring.monitor` for what is computed and
:mod:`churnml.monitoring.jobs` for the jobs behind ``churnml score`` / ``churnml monitor``.
"""

from churnml.monitoring.alarms import Alarm
from churnml.monitoring.drift import mix_psi, profile_psi, psi
from churnml.monitoring.history import ScoreHistory
from churnml.monitoring.monitor import MonitorResult, Reference, monitor
from churnml.monitoring.performance import estimate, expected_auc, expected_brier
from churnml.monitoring.quality import check_quality, data_profile
from churnml.monitoring.verdict import Verdict, decide

__all__ = [
    "Alarm", "MonitorResult", "Reference", "ScoreHistory", "Verdict", "check_quality",
    "data_profile", "decide", "estimate", "expected_auc", "expected_brier", "mix_psi",
    "monitor", "profile_psi", "psi",
]
