"""An incident's window in the score history: from its onset to its resolution (or now).

The onset is found in the scores themselves (:func:`judgecal.scores.link.find_onset`): the
first score carrying the drifted judge's production tag, else the end of the incident's last
healthy run. Both ``judgecal scores link|export`` and the remedy read the window from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from judgecal.scores.link import (
    Onset,
    find_onset,
    incident_production_tag,
    incident_window_end,
    parse_optional,
)

if TYPE_CHECKING:
    from judgecal.scores.source import ScoreSource

__all__ = ["incident_onset", "incident_window"]


def incident_onset(store: Any, src: ScoreSource, incident: dict[str, Any]) -> Onset:
    """Where the incident's affected scores start in ``src``."""
    return find_onset(src, str(incident["judge_name"]),
                      last_healthy_at=parse_optional(incident.get("last_healthy_run_at")),
                      new_tag=incident_production_tag(store, incident))


def incident_window(store: Any, src: ScoreSource, incident: dict[str, Any],
                    until: datetime | None = None) -> tuple[Onset, datetime | None, str]:
    """``(onset, end, end_reason)``: ``until`` when given, else the incident's resolution,
    else open (``None``, ``"now"``)."""
    onset = incident_onset(store, src, incident)
    if until is not None:
        return onset, until, "given"
    end, reason = incident_window_end(incident)
    return onset, end, reason
