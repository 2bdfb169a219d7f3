"""Command line: ``churnml metrics|retention|features|train|export|score|monitor|report|demo|
campaign``.

Each command lives in its own module below; importing it registers it on :data:`app`.
"""

from churnml.cli import (  # noqa: F401  (registers)
    campaign,
    demo,
    features,
    metrics,
    monitor,
    report,
    score,
    train,
)
from churnml.cli._common import app, quiet_libraries

quiet_libraries()

__all__ = ["app"]
