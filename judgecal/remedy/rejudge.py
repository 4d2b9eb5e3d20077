"""Re-judge an incident's window: where the production inputs were kept, score them again
with the pinned healthy judge, through the normal runner.

* **Inputs**: a CSV, JSONL or Parquet file keyed by ``score_id`` (another column with
  ``id_field``) holding the fields the judge's templates use. Rows for scores outside the
  window are counted and left alone; window scores without a row are counted as "no input".
  A row without an id, an id given twice, or a row that does not render (a field the template
  names is missing) is a problem named by file, line and field — nothing is sent then.
* **The run**: one item per affected score, asked only on that score's dimension; it is a
  run of origin ``rejudge`` (left out of the watch, the trust report and ``latest``) whose
  set is named ``rejudge:<incident id>`` and versioned by what it asks. No reply is paid
  twice: a score that an earlier re-judge of the incident with the same judge configuration
  already answered is not asked again (``fresh=True`` asks everything again, e.g. after
  correcting inputs), and a killed re-judge resumes where it stopped. The inputs are
  production data and are not stored: only the replies are.
* **Cost first**: :func:`plan_rejudge` counts the requests still to send and estimates their
  tokens (prompt ≈ characters / 4 of the rendered messages; completion = the mean of the
  healthy judge's replies in the incident's baseline run, else the configured ``max_tokens``)
  before anything is sent.
* **The figure**: :func:`rejudged_scores` reads the re-judges of the incident by the newest
  one's judge configuration (a score's newest final reply wins); the remedy adds a
  ``re_judged`` estimate — the healthy judge's mean (or rate) over the re-judged window
  scores, with its interval — beside the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from judgecal.errors import ConfigError, InputError, NotFoundError, Problem
from judgecal.records import COMPLETED, FAILED, INCONCLUSIVE, REJUDGE, SCORED, json_safe

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet
    from judgecal.config import RunConfig
    from judgecal.runs.replay import ReplyCallback
    from judgecal.store import Store

__all__ = [
    "REJUDGE_METHOD",
    "RejudgePlan",
    "execute_rejudge",
    "plan_rejudge",
    "rejudge_set_name",
    "rejudged_scores",
]

REJUDGE_METHOD = "re_judged"
_CHARS_PER_TOKEN = 4.0


def rejudge_set_name(incident_id: str) -> str:
    """The set name the re-judge runs of ``incident_id`` carry."""
    return f"rejudge:{incident_id}"


@dataclass
class RejudgePlan:
    """What a re-judge will send, and what it is expected to cost, before it starts."""

    incident_id: str
    judge: str
    config_hash: str
    matches_baseline: bool | None
    """Whether the judge's configuration is the one of the incident's baseline run."""
    cs: CalibrationSet
    only: dict[str, list[str]]
    window_scores: int
    with_input: int
    no_input: int
    not_in_window: int
    other_dimension: int
    """Window scores on a dimension the judge has no prompt for."""
    requests: int
    already_done: int
    answered_before: int
    """Scores answered by an earlier re-judge with this judge configuration (not asked)."""
    expected_prompt_tokens: int
    expected_completion_tokens: int
    resumes: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id, "judge": self.judge,
            "config_hash": self.config_hash, "matches_baseline": self.matches_baseline,
            "set_name": self.cs.name, "set_version": self.cs.version,
            "window_scores": self.window_scores, "with_input": self.with_input,
            "no_input": self.no_input, "not_in_window": self.not_in_window,
            "other_dimension": self.other_dimension, "requests": self.requests,
            "already_done": self.already_done, "to_send": self.requests - self.already_done,
            "answered_before": self.answered_before,
            "expected_prompt_tokens": self.expected_prompt_tokens,
            "expected_completion_tokens": self.expected_completion_tokens,
            "resumes_run": self.resumes, "notes": list(self.notes),
        }


def _read_inputs(path: Path, id_field: str) -> dict[str, tuple[int, dict[str, Any]]]:
    from judgecal.io.tabular import read_rows

    problems: list[Problem] = []
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    first = True
    for line, row in read_rows(path, problems=problems):
        if first:
            first = False
            if id_field not in row:
                problems.append(Problem(str(path), f"missing column {id_field!r} (the score id "
                                        "of each input; --id-field names another)",
                                        line=line, field=id_field))
                break
        sid = "" if row.get(id_field) is None else str(row[id_field]).strip()
        if not sid:
            problems.append(Problem(str(path), "empty score id", line=line, field=id_field))
        elif sid in rows:
            problems.append(Problem(str(path), f"score {sid!r} has two inputs (first on line "
                                    f"{rows[sid][0]})", line=line, field=id_field))
        else:
            rows[sid] = (line, json_safe({str(k): _plain(v) for k, v in row.items()}))
        if len(problems) >= 50:
            break
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError(Problem(str(path), "no inputs: the file has no rows"))
    return rows


def _plain(value: Any) -> Any:
    """A value as the templates see it: JSON types as they are, anything else as text."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def _answered(store: Store, incident_id: str, config_hash: str | None
              ) -> tuple[list[dict[str, Any]], set[str]]:
    """Finished re-judge runs of the incident by ``config_hash`` (None: the newest run's
    configuration), newest first, and the score ids they answered finally."""
    from judgecal.db import schema

    r = schema.runs.c
    with store.engine.connect() as conn:
        runs = [dict(row) for row in conn.execute(
            select(schema.runs).where(r.origin == REJUDGE,
                                      r.set_name == rejudge_set_name(incident_id),
                                      r.status.in_([COMPLETED, INCONCLUSIVE]))
            .order_by(r.finished_at.desc())).mappings()]
    if config_hash is None and runs:
        config_hash = str(runs[0]["config_hash"])
    runs = [run for run in runs if run["config_hash"] == config_hash]
    done = {item for run in runs for item, _, _ in store.done_keys(str(run["run_id"]))}
    return runs, done


def plan_rejudge(store: Store, incident_id: str, config: RunConfig, inputs: str | Path, *,
                 id_field: str = "score_id", fresh: bool = False) -> RejudgePlan:
    """Read the inputs, match them to the incident's window, render every prompt and
    estimate the cost. Nothing is sent or stored."""
    from judgecal.calibration import CalibrationSet, Item, StoredSet
    from judgecal.judge.prompt import ORIGINAL, SWAPPED, PromptRenderer, configured_fingerprint
    from judgecal.remedy.window import affected

    path = Path(inputs)
    hit = affected(store, incident_id)
    incident, full_id, scores = hit.incident, hit.incident_id, hit.scores
    rows = _read_inputs(path, id_field)
    judge = config.judge
    view = StoredSet.load(store, str(incident["set_version"]))
    in_window = set(scores.score_ids)
    fingerprint = configured_fingerprint(judge)
    _, answered = (None, set()) if fresh else _answered(store, full_id, fingerprint["hash"])
    only: dict[str, list[str]] = {}
    items: list[Item] = []
    other = earlier = 0
    for sid, dim in zip(scores.score_ids, scores.dimensions.tolist(), strict=True):
        if sid not in rows:
            continue
        if dim not in judge.prompts or dim not in view.dimensions:
            other += 1
            continue
        if sid in answered:
            earlier += 1
            continue
        only[sid] = [str(dim)]
        items.append(Item(id=sid, fields=rows[sid][1], segments={}))
    dims = {d for ds in only.values() for d in ds}
    digest = hashlib.sha256(json.dumps(
        [full_id, sorted((i.id, only[i.id], i.fields) for i in items)],
        sort_keys=True, default=str).encode()).hexdigest()
    cs = CalibrationSet(
        name=rejudge_set_name(full_id), path=path.parent,
        description=f"production inputs of the affected window of incident {full_id}",
        version=f"sha256:{digest}",
        dimensions={d: view.dimensions[d] for d in sorted(dims)},
        items=items, segment_fields=[],
    )
    renderer = PromptRenderer(judge)
    chars = 0
    requests = 0
    problems: list[Problem] = []
    for item in items:
        for dim in only[item.id]:
            variants = [ORIGINAL]
            if judge.swap_order and cs.dimensions[dim].scale.kind == "pairwise":
                variants.append(SWAPPED)  # as the runner asks it
            try:
                for variant in variants:
                    chars += sum(len(m["content"])
                                 for m in renderer.messages(dim, item.fields, variant))
                    requests += 1
            except ConfigError as exc:
                problems.append(Problem(str(path), f"cannot render the {dim!r} prompt: "
                                        f"{exc.problems[0].message}", line=rows[item.id][0],
                                        field=exc.problems[0].field))
            if len(problems) >= 50:
                break
    if problems:
        raise InputError(problems)
    resumes = store.find_resumable_run(judge.name, cs.version, fingerprint["hash"])
    done = len(store.done_keys(resumes)) if resumes else 0
    matches, per_reply = _baseline(store, incident, fingerprint["hash"])
    completion = per_reply if per_reply is not None else float(judge.decoding.max_tokens or 0)
    todo = requests - done
    share = todo / requests if requests else 0.0
    plan = RejudgePlan(
        incident_id=full_id, judge=judge.name, config_hash=fingerprint["hash"],
        matches_baseline=matches, cs=cs, only=only, window_scores=scores.n,
        with_input=len(in_window & set(rows)), no_input=len(in_window - set(rows)),
        not_in_window=len(set(rows) - in_window), other_dimension=other,
        requests=requests, already_done=done, answered_before=earlier,
        expected_prompt_tokens=round(chars / _CHARS_PER_TOKEN * share),
        expected_completion_tokens=round(completion * todo), resumes=resumes,
    )
    if matches is False:
        plan.notes.append("this judge's configuration is not the one of the incident's baseline "
                          "run: the re-judged figure is this judge's, not the baseline's")
    if plan.no_input:
        plan.notes.append(f"{plan.no_input:,} of {scores.n:,} affected scores have no input "
                          "and are not re-judged")
    if per_reply is None:
        plan.notes.append("completion tokens estimated at max_tokens per reply (the baseline "
                          "run recorded no token counts)")
    return plan


def _baseline(store: Store, incident: dict[str, Any], config_hash: str
              ) -> tuple[bool | None, float | None]:
    """(does ``config_hash`` match the baseline run's, mean completion tokens per reply)."""
    base = incident.get("baseline_run_id")
    if not base:
        return None, None
    try:
        run = store.get_run(str(base))
    except NotFoundError:
        return None, None
    tokens = [r["completion_tokens"] for r in store.replies(str(base))
              if r.get("completion_tokens") is not None]
    return run["config_hash"] == config_hash, (sum(tokens) / len(tokens) if tokens else None)


def execute_rejudge(store: Store, plan: RejudgePlan, config: RunConfig, *,
                    on_reply: ReplyCallback | None = None, http_client: Any = None,
                    actor: str | None = None) -> dict[str, Any]:
    """Send the plan through the normal runner (resumable) and note it on the incident."""
    from judgecal import incidents
    from judgecal.runs.replay import execute_run

    if plan.requests == 0:
        if plan.answered_before:
            return {"run_id": None, "status": "nothing to send", "judge": plan.judge,
                    "requested_now": 0, "requests": 0, "answered_before": plan.answered_before,
                    "event_seq": None, "summary": {}}
        raise InputError(f"incident {plan.incident_id}: no affected score has an input on a "
                         "dimension this judge scores: nothing to re-judge")
    result = execute_run(config, store, plan.cs, on_reply=on_reply, http_client=http_client,
                         origin=REJUDGE, only=plan.only, save_set=False)
    summary: dict[str, Any] = {
               "run_id": result.run_id, "status": result.status, "judge": plan.judge,
               "config_hash": plan.config_hash, "matches_baseline": plan.matches_baseline,
               "requested_now": result.requested, "requests": plan.requests,
               "scored": int(result.summary.get("scored", 0) or 0),
               "no_input": plan.no_input, "window_scores": plan.window_scores,
               "set_version": plan.cs.version}
    event = incidents.add_event(store, plan.incident_id, "rejudged", summary, actor=actor,
                                reason="incidents rejudge: the window re-scored by the "
                                "healthy judge")
    summary["event_seq"] = event["seq"]
    summary["summary"] = result.summary
    return summary


def rejudged_scores(store: Store, incident_id: str) -> tuple[dict[str, float], dict[str, Any]
                                                              | None]:
    """``({score_id: re-judged score}, about the runs)`` from the finished re-judges of the
    incident by the newest one's judge configuration (empty when there is none)."""
    from judgecal.judge.prompt import ORIGINAL

    runs, _ = _answered(store, incident_id, None)
    if not runs:
        return {}, None
    out: dict[str, float] = {}
    final: set[str] = set()
    for run in runs:  # newest first: a score's newest final reply wins
        for rep in store.replies(str(run["run_id"])):
            sid = str(rep["item_id"])
            if rep["variant"] != ORIGINAL or rep["status"] == FAILED or sid in final:
                continue
            final.add(sid)
            if rep["status"] == SCORED and rep["score"] is not None:
                out[sid] = float(rep["score"])
    newest = runs[0]
    return out, {"run_id": newest["run_id"], "runs": [r["run_id"] for r in runs],
                 "judge": newest["judge_name"], "status": newest["status"],
                 "config_hash": newest["config_hash"], "finished_at": newest["finished_at"],
                 "scored": len(out)}
