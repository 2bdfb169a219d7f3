"""Command line: ``churnml metrics|retention|features|train|export|score|report|demo``.

Each command lives in its own module below; importing it registers it on :data:`app`.
"""

from churnml.cli import demo, features, metrics, report, score, train  # noqa: F401  (registers)
from churnml.cli._common import app, quiet_libraries

quiet_libraries()

__all__ = ["app"]
