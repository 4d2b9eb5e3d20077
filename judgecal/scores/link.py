"""Onset, affected scores and blast radius of a judge incident — computed in the database.

Every number here comes from a handful of aggregate queries (``COUNT``, ``COUNT(DISTINCT)``,
``SUM``, ``GROUP BY`` with ``LIMIT``) built with SQLAlchemy Core against a
:class:`~judgecal.scores.source.ScoreSource`; no score row is pulled into Python. On the
store's own history they read the hourly and daily rollups kept by ingest for the whole
hours and days of a window and the raw rows only for its partial first and last hour
(:mod:`judgecal.scores.rollup`: the same answers as the raw queries, in time that grows
with the window's length in days, not with the number of scores); a table read in place is
queried raw, in the engine that holds it.

Definitions (stated in every result):

* **Onset** — when the judge's fingerprint changed: the first production score carrying a
  *new* fingerprint (a fingerprint of that judge first seen after the last healthy
  calibration run, or the incident's new production tag). Otherwise the time of the last
  healthy calibration run of that judge. :class:`Onset` says which rule applied.
* **Affected scores** — the judge's scores in the window [onset, end) where end is now,
  the incident's resolution, or a given time; when onset came from a fingerprint, only the
  scores carrying the new fingerprint(s) (during a rollout the old judge still served some
  traffic, and those scores are not in question).
* **% of traffic** — affected ÷ all scores in the window (every judge).
* **% of named customers** — customers with at least one affected score ÷ customers with
  any score in the window (rows without a customer are not counted as customers).
* **Eval-on-traffic** — per dimension, the mean production score of the judge after onset
  (affected scores) against the same-length period before onset, with a 95 % interval
  (normal approximation treating scores as independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from judgecal.errors import InputError, NotFoundError
from judgecal.records import now as clock_now
from judgecal.scores.moments import mean_change, moment_columns, moments_by_key
from judgecal.scores.source import ScoreSource

__all__ = [
    "Onset",
    "Window",
    "affected_condition",
    "blast_radius",
    "find_onset",
    "incident_production_tag",
    "incident_window_end",
    "iso",
    "link_incident",
    "parse_optional",
]

NEW_TAG = "new_production_tag"
NEW_FINGERPRINT = "new_fingerprint"
LAST_HEALTHY_RUN = "last_healthy_run"
GIVEN = "given"


def iso(value: datetime | None) -> str | None:
    """``2026-03-02T09:58:05.538367Z`` (UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Onset:
    """When the affected window starts, and why."""

    at: datetime
    method: str
    """``new_production_tag``, ``new_fingerprint``, ``last_healthy_run`` or ``given``."""
    explanation: str
    fingerprints: tuple[str, ...] = ()
    """The new fingerprints; affected scores carry one of them. Empty: no filter."""
    last_healthy_at: datetime | None = None
    new_tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "method": self.method,
            "explanation": self.explanation,
            "fingerprints": list(self.fingerprints),
            "last_healthy_run_at": iso(self.last_healthy_at),
            "new_production_tag": self.new_tag,
        }


@dataclass(frozen=True)
class Window:
    """The affected window of one judge: [start, end), optionally one set of fingerprints."""

    judge: str
    start: datetime
    end: datetime
    fingerprints: tuple[str, ...] = ()


def _first_seen(conn: sa.Connection, src: ScoreSource, judge: str, fingerprint: str) -> Any:
    c = src.c
    return conn.execute(
        sa.select(sa.func.min(c("scored_at")))
        .select_from(src.selectable)
        .where(c("judge") == judge, c("fingerprint") == fingerprint)
    ).scalar()


def find_onset(
    src: ScoreSource,
    judge: str,
    *,
    last_healthy_at: datetime | None,
    new_tag: str | None = None,
) -> Onset:
    """Determine the onset of a judge change from the production history.

    Parameters
    ----------
    src:
        Where the scores are.
    judge:
        The judge name, as production tags its scores.
    last_healthy_at:
        Time of the judge's last healthy calibration run (``None`` if unknown).
    new_tag:
        The production tag of the drifted judge (:func:`judgecal.judge.fingerprint.production_tag`
        of the incident's run), if known.

    Raises
    ------
    InputError
        When neither a last healthy run nor a new fingerprint in the history gives an onset.
    """
    c = src.c
    found: dict[str, datetime] = {}
    with src.engine.connect() as conn:
        known = src.first_seen(conn, judge)
        if known is not None:  # the store keeps first-seen times: no scan needed
            for fp, seen in known.items():
                is_tag = bool(new_tag) and fp == new_tag
                after = last_healthy_at is None or seen > last_healthy_at
                if after and (is_tag or last_healthy_at is not None):
                    found[fp] = seen
        else:
            if new_tag:
                first = src.when(_first_seen(conn, src, judge, new_tag))
                if first is not None and (last_healthy_at is None or first > last_healthy_at):
                    found[new_tag] = first
            if last_healthy_at is not None:
                candidates = conn.execute(
                    sa.select(c("fingerprint"))
                    .select_from(src.selectable)
                    .where(c("judge") == judge, c("scored_at") > src.t(last_healthy_at))
                    .group_by(c("fingerprint"))
                ).scalars().all()
                for fp in candidates:
                    if fp is None or fp == "" or fp in found:
                        continue
                    first = src.when(_first_seen(conn, src, judge, str(fp)))
                    if first is not None and first > last_healthy_at:
                        found[str(fp)] = first
    if found:
        fps = tuple(sorted(found, key=lambda f: (found[f], f)))
        first_fp = fps[0]
        at = found[first_fp]
        if new_tag and first_fp == new_tag:
            method = NEW_TAG
            why = (f"first production score of {judge} carrying the incident's new production "
                   f"tag {new_tag}")
        else:
            method = NEW_FINGERPRINT
            why = f"first production score of {judge} carrying fingerprint {first_fp}"
        if last_healthy_at is not None:
            why += f", first seen after the last healthy calibration run ({iso(last_healthy_at)})"
        if len(fps) > 1:
            why += f"; {len(fps)} new fingerprints in all: {', '.join(fps)}"
        return Onset(at=at, method=method, explanation=why, fingerprints=fps,
                     last_healthy_at=last_healthy_at, new_tag=new_tag)
    if last_healthy_at is None:
        raise InputError(
            f"cannot date the onset for judge '{judge}': no last healthy calibration run is "
            "known and no new fingerprint appears in the score history"
        )
    why = (f"no fingerprint of {judge} first seen after its last healthy calibration run "
           "appears in the score history (the change is invisible in the fingerprint), so "
           "the onset is that run's time and every score of the judge since is in question")
    if new_tag:
        why += f"; the incident's production tag {new_tag} is not new in the history"
    return Onset(at=last_healthy_at, method=LAST_HEALTHY_RUN, explanation=why,
                 last_healthy_at=last_healthy_at, new_tag=new_tag)


def affected_condition(src: ScoreSource, window: Window) -> sa.ColumnElement[bool]:
    """The WHERE clause selecting the affected scores of ``window``."""
    c = src.c
    parts = [
        c("judge") == window.judge,
        c("scored_at") >= src.t(window.start),
        c("scored_at") < src.t(window.end),
    ]
    if window.fingerprints:
        parts.append(c("fingerprint").in_(list(window.fingerprints)))
    return sa.and_(*parts)


def _named(src: ScoreSource) -> sa.ColumnElement[Any]:
    cust = src.c("customer")
    return sa.case((sa.and_(cust.is_not(None), cust != ""), cust), else_=None)


@dataclass
class _Counts:
    """The numbers of a blast radius, before they are shaped into the result."""

    total: int
    active: int
    by_dim_seg: list[tuple[Any, ...]]
    """(dimension, segment, n, sum, sum of squares, min, max) of the affected scores."""
    cust_rows: list[tuple[Any, ...]]
    """(customer, affected scores, customers affected in all), most affected first."""
    before: dict[Any, tuple[int, float, float, float, float]]
    cust_totals: dict[str, int]


def _raw_counts(conn: sa.Connection, src: ScoreSource, window: Window, before_start: datetime,
                top: int) -> _Counts:
    """Every number from aggregate queries over the score rows (any source)."""
    c = src.c
    affected = affected_condition(src, window)
    in_window = sa.and_(c("scored_at") >= src.t(window.start), c("scored_at") < src.t(window.end))
    named = _named(src)
    frm = src.selectable
    judges = src.judges(conn)
    # With the judge list known, the window is one key range per judge instead of a scan.
    window_all = in_window if not judges else sa.and_(c("judge").in_(judges), in_window)
    total, active = conn.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(named)))
        .select_from(frm).where(window_all)
    ).one()
    by_dim_seg = conn.execute(
        sa.select(c("dimension"), c("segment"), *moment_columns(src))
        .select_from(frm).where(affected)
        .group_by(c("dimension"), c("segment"))
    ).all()
    n_customers_col = sa.func.count().over().label("n_customers")
    cust_rows = conn.execute(
        sa.select(named.label("customer"), sa.func.count().label("n"), n_customers_col)
        .select_from(frm).where(affected, named.is_not(None))
        .group_by(named)
        .order_by(sa.func.count().desc(), named)
        .limit(max(top, 1))
    ).all()
    before = moments_by_key(conn.execute(
        sa.select(c("dimension"), *moment_columns(src))
        .select_from(frm)
        .where(c("judge") == window.judge, c("scored_at") >= src.t(before_start),
               c("scored_at") < src.t(window.start))
        .group_by(c("dimension"))
    ).all())
    top_names = [r[0] for r in cust_rows[:top]]
    cust_totals: dict[str, int] = {}
    if top_names:
        cust_totals = {
            str(k): int(n)
            for k, n in conn.execute(
                sa.select(named, sa.func.count())
                .select_from(frm).where(window_all, c("customer").in_(top_names))
                .group_by(named)
            ).all()
        }
    return _Counts(int(total or 0), int(active or 0), [tuple(r) for r in by_dim_seg],
                   [tuple(r) for r in cust_rows], before, cust_totals)


def _rollup_counts(conn: sa.Connection, src: ScoreSource, judges: list[str], window: Window,
                   before_start: datetime, top: int) -> _Counts:
    """The same numbers from the store's rollups (whole hours and days) plus the raw rows
    of the partial hours at the edges (see :mod:`judgecal.scores.rollup`)."""
    from judgecal.scores import rollup

    start, end, fps = window.start, window.end, list(window.fingerprints)
    cells = rollup.moments(conn, src, start=start, end=end, judges=[window.judge],
                           fingerprints=fps)
    total = rollup.moments(conn, src, start=start, end=end, judges=judges, by=())
    before = {key[0]: m for key, m in rollup.moments(
        conn, src, start=before_start, end=start, judges=[window.judge], by=("dimension",)
    ).items()}
    active = 0
    everyone = rollup.customer_counts(src, start=start, end=end, judges=judges)
    if everyone is not None:
        active = int(conn.execute(
            sa.select(sa.func.count(sa.distinct(everyone.c.customer)))
        ).scalar() or 0)
    cust_rows: list[tuple[Any, ...]] = []
    hit = rollup.customer_counts(src, start=start, end=end, judges=[window.judge],
                                 fingerprints=fps)
    if hit is not None:
        n = sa.func.sum(hit.c.n)
        cust_rows = [tuple(r) for r in conn.execute(
            sa.select(hit.c.customer, n.label("n"), sa.func.count().over().label("n_customers"))
            .group_by(hit.c.customer)
            .order_by(n.desc(), hit.c.customer)
            .limit(max(top, 1))
        ).all()]
    top_names = [str(r[0]) for r in cust_rows[:top]]
    cust_totals: dict[str, int] = {}
    theirs = rollup.customer_counts(src, start=start, end=end, judges=judges,
                                    customers=top_names) if top_names else None
    if theirs is not None:
        cust_totals = {
            str(k): int(v) for k, v in conn.execute(
                sa.select(theirs.c.customer, sa.func.sum(theirs.c.n)).group_by(theirs.c.customer)
            ).all()
        }
    return _Counts(
        total=total.get((), (0, 0.0, 0.0, 0.0, 0.0))[0],
        active=active,
        by_dim_seg=[(dim, seg, *m) for (dim, seg), m in cells.items()],
        cust_rows=cust_rows,
        before=before,
        cust_totals=cust_totals,
    )


def blast_radius(
    src: ScoreSource,
    onset: Onset,
    judge: str,
    *,
    end: datetime | None = None,
    end_reason: str = "now",
    top: int = 10,
    now: datetime | None = None,
    use_rollups: bool = True,
) -> dict[str, Any]:
    """Affected scores, % of traffic, % of named customers, breakdowns, eval-on-traffic.

    Parameters
    ----------
    src, onset, judge:
        The score source, the onset (:func:`find_onset` or given), the judge name.
    end:
        End of the affected window (exclusive): the incident's resolution, or now.
    end_reason:
        Why the window ends there (``now``, ``resolved``, ``given``), echoed in the result.
    top:
        How many customers to list, most affected first.
    use_rollups:
        Read the store's rollups where the source has them (the default; the answers are
        those of the raw queries, see :mod:`judgecal.scores.rollup`). ``False`` runs the
        aggregate queries over the raw rows (the reference, and the only way for a table
        read in place).
    """
    now = now or clock_now()
    end = end or now
    if end <= onset.at:
        raise InputError(f"the window end {iso(end)} is not after the onset {iso(onset.at)}")
    window = Window(judge, onset.at, end, onset.fingerprints)
    before_start = onset.at - (end - onset.at)

    with src.engine.connect() as conn:
        judges = src.judges(conn) if src.rollups and use_rollups else None
        if judges is not None:
            counts = _rollup_counts(conn, src, judges, window, before_start, top)
        else:
            counts = _raw_counts(conn, src, window, before_start, top)
        latest = src.latest(conn)

    total, active, by_dim_seg = counts.total, counts.active, counts.by_dim_seg
    cust_rows, before, cust_totals = counts.cust_rows, counts.before, counts.cust_totals
    dims: dict[str, list[float]] = {}
    segs: dict[str | None, list[float]] = {}
    n_affected = 0
    for dim, seg, n, s, ss, lo, hi in by_dim_seg:
        n_affected += int(n)
        for bucket, key in ((dims, str(dim)), (segs, None if seg in (None, "") else str(seg))):
            acc = bucket.setdefault(key, [0, 0.0, 0.0, math.inf, -math.inf])  # type: ignore[arg-type]
            acc[0] += int(n)
            acc[1] += float(s or 0)
            acc[2] += float(ss or 0)
            acc[3] = min(acc[3], float(lo))
            acc[4] = max(acc[4], float(hi))
    n_cust_affected = int(cust_rows[0][2]) if cust_rows else 0

    def pct(a: int, b: int) -> float | None:
        return None if b == 0 else 100.0 * a / b

    by_dimension = []
    for dim in sorted(set(dims) | set(before)):
        after_m = dims.get(dim)
        change = mean_change(before.get(dim), tuple(after_m) if after_m else None)  # type: ignore[arg-type]
        by_dimension.append({
            "dimension": dim,
            "affected_scores": int(after_m[0]) if after_m else 0,
            "pct_of_affected": pct(int(after_m[0]) if after_m else 0, n_affected),
            **change,
        })
    by_segment = [
        {
            "segment": seg,
            "affected_scores": int(acc[0]),
            "pct_of_affected": pct(int(acc[0]), n_affected),
            "mean_score": acc[1] / acc[0] if acc[0] else None,
        }
        for seg, acc in sorted(segs.items(), key=lambda kv: (-kv[1][0], str(kv[0])))
    ]
    top_customers = [
        {
            "customer": str(name),
            "affected_scores": int(n),
            "scores_in_window": cust_totals.get(str(name), 0),
            "pct_of_their_traffic": pct(int(n), cust_totals.get(str(name), 0)),
        }
        for name, n, _ in cust_rows[:top]
    ]
    moved = [d for d in by_dimension if d["delta"] is not None]
    summary = _summary(judge, n_affected, total, n_cust_affected, active, moved)
    return {
        "judge": judge,
        "source": src.description,
        "computed_at": iso(now),
        "history_through": iso(latest),
        "onset": onset.to_json(),
        "window": {"start": iso(onset.at), "end": iso(end), "end_reason": end_reason,
                   "fingerprints": list(onset.fingerprints)},
        "affected_scores": n_affected,
        "scores_in_window": total,
        "pct_traffic": pct(n_affected, total),
        "customers_affected": n_cust_affected,
        "customers_active": active,
        "pct_customers": pct(n_cust_affected, active),
        "by_dimension": by_dimension,
        "by_segment": by_segment,
        "top_customers": top_customers,
        "eval_on_traffic": {
            "before": {"start": iso(before_start), "end": iso(onset.at)},
            "after": {"start": iso(onset.at), "end": iso(end)},
            "note": "mean production score of the judge per dimension: the affected scores "
            "against the same-length period before onset; 95% interval by normal "
            "approximation, treating scores as independent",
        },
        "summary": summary,
    }


def _summary(judge: str, affected: int, total: int, cust: int, active: int,
             dims: list[dict[str, Any]]) -> str:
    if total == 0:
        return f"no production scores in the window of {judge}"
    text = (f"{affected:,} of {total:,} scores in the window ({100 * affected / total:.1f}% of "
            f"traffic) came from the affected {judge}")
    if active:
        text += (f"; {cust} of {active} named customers ({100 * cust / active:.1f}%) have at "
                 "least one affected score")
    moves = []
    for d in dims:
        if d.get("moved"):
            amount = (f"{d['points']:+.1f} points" if d.get("points") is not None
                      else f"{d['delta']:+.3f}")
            moves.append(f"{d['dimension']} {amount}")
    if moves:
        text += "; eval-on-traffic moved: " + ", ".join(moves)
    elif dims:
        text += "; eval-on-traffic did not move beyond noise on any dimension"
    return text + "."


def incident_window_end(incident: dict[str, Any]) -> tuple[datetime | None, str]:
    """The resolution time of a resolved incident, else ``(None, "now")``."""
    if str(incident.get("status", "")).lower() != "resolved":
        return None, "now"
    resolved_at = parse_optional(incident.get("resolved_at"))
    if resolved_at is None:
        for event in reversed(incident.get("events") or []):
            if event.get("kind") == "resolved" and event.get("at"):
                resolved_at = parse_optional(event["at"])
                break
    return (resolved_at, "resolved") if resolved_at is not None else (None, "now")


def parse_optional(value: Any) -> datetime | None:
    from judgecal.scores.source import parse_instant

    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_instant(str(value))


def link_incident(
    store: Any,
    incident_id: str,
    *,
    source: ScoreSource | None = None,
    until: datetime | None = None,
    top: int = 10,
    record: bool = True,
    actor: str | None = None,
) -> dict[str, Any]:
    """Link an incident to the production scores it puts in question.

    Reads the incident (``judgecal.incidents.get_incident``), finds the onset, computes
    the blast radius in the database holding the scores (the store's ``score_history``
    unless ``source`` names a table read in place) and, with ``record``, appends the result
    to the incident as a ``blast_radius`` event (re-linking appends a new event; the earlier
    evidence is never rewritten).
    """
    from judgecal import incidents
    from judgecal.scores.source import store_source

    incident = incidents.get_incident(store, incident_id)
    judge = str(incident["judge_name"])
    last_healthy = parse_optional(incident.get("last_healthy_run_at"))
    new_tag = incident_production_tag(store, incident)
    end, reason = incident_window_end(incident)
    if until is not None:
        end, reason = until, "given"
    src = source or store_source(store.engine)
    onset = find_onset(src, judge, last_healthy_at=last_healthy, new_tag=new_tag)
    result = blast_radius(src, onset, judge, end=end, end_reason=reason, top=top)
    result = {"incident_id": incident["incident_id"], **result}
    if record:
        incidents.add_event(store, incident["incident_id"], "blast_radius", result, actor=actor,
                            reason="scores link: blast radius from the production score history")
    return result


def incident_production_tag(store: Any, incident: dict[str, Any]) -> str | None:
    """The production tag of the drifted judge: the incident's ``production_tags.after``,
    else the tag of the incident's run."""
    tags = incident.get("production_tags") or {}
    if isinstance(tags, dict) and tags.get("after"):
        return str(tags["after"])
    try:
        from judgecal.judge.fingerprint import production_tag

        return production_tag(store.get_run(str(incident["run_id"])))
    except (NotFoundError, KeyError):
        return None
