"""Reliability harness: the promises in the README, each turned into a measured figure.

Each module drives real ``judgecal`` processes against the recorded judge
(:mod:`judgecal.recorded`) and real databases, and returns a report whose
:meth:`rows` are lines of the reliability table that ``make reliability``
(``benchmarks/reliability.py``) prints. The pytest suite (``tests/test_reliability_*.py``)
calls the same functions at reduced sizes and asserts every row holds.

=====================  ===================================================================
:mod:`.crash`          SIGKILL at random points (also mid-write), resume, compare with an
                       uninterrupted run
:mod:`.references`     the nightly job SIGKILLed inside the reference runs of a
                       replicated baseline: references completed, checked, night monitored
:mod:`.fault_matrix`   every fault kind of the recorded judge at rates 1 %–50 %, the
                       failure ceiling, drift checks against a clean baseline
:mod:`.unattended`     hostile HTTP 200 replies, poisoned token counts and stores, a
                       ``Retry-After`` storm, refused connections: a status, never a crash
:mod:`.overlap`        two ``judgecal run`` of one config started together
:mod:`.watched`        no baseline (exit 5), stale (exit 6), ``judgecal status`` agreeing
:mod:`.hostile`        malformed sets, configs and imported judgments: exit 2, one clear
                       message, the store unchanged row for row
:mod:`.bounded`        YAML alias bombs and deep nesting; score files broken mid-way
:mod:`.tamper`         the stored set's labels and items edited in SQL: ``audit verify``
                       exit 1 naming the row
:mod:`.leaks`          a sentinel API key in the environment must appear nowhere
=====================  ===================================================================

Nothing here is imported by the rest of judgecal; it is for tests and benchmarks.
"""

from benchmarks.harness.sandbox import Row, Sandbox, format_table

__all__ = ["Row", "Sandbox", "format_table"]
