"""Ceilings of subprocess waits in the tests: they catch a hang, never a slow machine.

A test that waits for another process is bound by the event it waits for (the process ends
with the expected output); the ceiling only keeps a real hang from blocking the suite. It is
far above any run seen on a 2-core machine kept busy by other work, so no test depends on the
machine being idle. Speed is measured in ``benchmarks/``, not here.
"""

HANG_CEILING_S = 3600
