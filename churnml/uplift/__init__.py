"""Uplift: treatment-effect learners, Qini/uplift metrics, campaign logs, control groups,
targeting by incremental value and campaign evaluation."""
