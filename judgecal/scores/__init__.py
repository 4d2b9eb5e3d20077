"""Production score history: ingest, read in place, onset, blast radius, export, shift.

See :mod:`judgecal.scores.source` (where scores are read from), :mod:`.ingest`,
:mod:`.link` (onset and blast radius of an incident), :mod:`.export`, :mod:`.shift`
(is the judge the cause of a move?) and :mod:`.generate` (a realistic history with a known
judge switch, for tests, benchmarks and the demo).
"""

from judgecal.scores.export import export_affected
from judgecal.scores.ingest import IngestResult, ingest_file
from judgecal.scores.link import (
    Onset,
    Window,
    blast_radius,
    find_onset,
    incident_window_end,
    link_incident,
)
from judgecal.scores.shift import judge_shift, production_shift
from judgecal.scores.source import (
    CANONICAL,
    ScoreSource,
    SourceConfig,
    load_source_config,
    open_source,
    parse_instant,
    parse_mapping,
    store_source,
)

__all__ = [
    "CANONICAL",
    "IngestResult",
    "Onset",
    "ScoreSource",
    "SourceConfig",
    "Window",
    "blast_radius",
    "export_affected",
    "find_onset",
    "incident_window_end",
    "ingest_file",
    "judge_shift",
    "link_incident",
    "load_source_config",
    "open_source",
    "parse_instant",
    "parse_mapping",
    "production_shift",
    "store_source",
]
