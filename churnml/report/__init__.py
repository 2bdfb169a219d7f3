"""The HTML report: KPI trends, cohorts, N-day retention, model quality, segments and the
customers most at risk, in one self-contained file (see :func:`build_report`)."""

from churnml.report.build import REPORT_FILE, build_report, log_report
from churnml.report.sections import SECTION_IDS

__all__ = ["REPORT_FILE", "SECTION_IDS", "build_report", "log_report"]
