"""The offline demo: a month in the life of a production judge, on real recorded verdicts.

Everything runs locally: the recorded judge (an OpenAI-compatible server answering with
real verdicts), a SQLite store, a generated production score history. A simulated clock
(:func:`judgecal.records.simulated_clock`) lets a month of nightly runs play in minutes;
every run still sends every request over HTTP and stores every reply.

The story:

1. *First look* — the PandaLM set through the recorded gpt-3.5-turbo judge: agreement
   with three human annotators, 25 real unparseable replies kept as unscored.
2. *Quiet nights* — the production judge ``support-judge`` (alias ``gpt-4``) grades the
   LLMBar set every night from the real GPT-4 verdicts; the first healthy run becomes the
   baseline and the nights after it stay healthy.
3. *The swap* — one evening the provider silently serves another model behind the alias
   (the recorded ChatGPT verdicts, with a new model id in the replies). That night's run
   opens an incident: severity on all three axes, root cause in plain words.
4. *Blast radius* — the month of production scores is ingested and linked to the
   incident: % of traffic and % of named customers affected, by dimension. Among them are
   the judge's ``preference`` verdicts on production comparisons: real recorded verdicts
   (GPT-4 before the swap, ChatGPT after it) on LLMBar items drawn at random, so the true
   human answer behind every affected score is known.
5. *Response* — on-call acknowledges, the team pins the dated model (a planned model
   migration, checked against the baseline the next night), resolves the incident and
   accepts a new baseline; a customer postmortem draft is written.
6. *Remedy* — the affected window is corrected (raw, PPI++, shift-robust), a stratified
   window sample is drawn and labelled with the items' human labels, and the corrected
   figures are stored and quoted in the postmortem.
7. *Audit* — the trust report is written and the audit log verifies.

Nothing here prints: progress goes to ``on_step``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from judgecal.errors import InputError, Problem

__all__ = [
    "AFTER_RECORDING",
    "BEFORE_RECORDING",
    "DEMO_CONFIGS",
    "FIRST_LOOK_RECORDING",
    "JUDGE_ALIAS",
    "PINNED_MODEL",
    "SERVED_AFTER",
    "SERVED_BEFORE",
    "DemoInputs",
    "DemoResult",
    "Step",
    "check_inputs",
    "run_demo",
]

Step = Callable[[str], None]

JUDGE_ALIAS = "gpt-4"
SERVED_BEFORE = "gpt-4-0613"
SERVED_AFTER = "gpt-4-0125-preview"
PINNED_MODEL = "gpt-4-0613"
FIRST_LOOK_RECORDING = "pandalm:gpt-3.5-turbo"
BEFORE_RECORDING = "llmbar:GPT-4/Vanilla"
AFTER_RECORDING = "llmbar:ChatGPT/Vanilla"
DEMO_CONFIGS = ("demo.yaml", "demo-month.yaml")
"""The first look's config, then the month's, read from the configs folder."""


@dataclass
class DemoResult:
    out_dir: Path
    store_url: str
    first_look: dict[str, Any] = field(default_factory=dict)
    nights: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    blast_radius: dict[str, Any] | None = None
    correction: dict[str, Any] | None = None
    preference_items: dict[str, str] = field(default_factory=dict)
    """Score id -> the LLMBar item behind each production ``preference`` score."""
    audit: dict[str, Any] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class DemoInputs:
    """The demo's checked inputs: its two configs, their calibration sets, the sets root."""

    configs_dir: Path
    sets_dir: Path
    first: Any
    first_set: Any
    month: Any
    month_set: Any


def check_inputs(out_dir: str | Path, configs_dir: str | Path | None = None,
                 sets_dir: str | Path | None = None) -> DemoInputs:
    """Load and check everything the demo reads, writing nothing: the output folder is
    usable, both configs load, their calibration sets load, the recordings exist.

    Raises :class:`~judgecal.errors.InputError` naming what is missing or wrong.
    """
    from judgecal.calibration import load_set
    from judgecal.config import load_config
    from judgecal.recorded.recordings import SETS_DIR_ENV, find_recording
    from judgecal.shipped import shipped_configs_dir, shipped_sets_dir

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(Problem(file=str(out), message="the demo's output must be a folder, "
                                 "this is a file"))
    configs = Path(configs_dir) if configs_dir is not None else shipped_configs_dir()
    if sets_dir is None:
        sets_dir = os.environ.get(SETS_DIR_ENV) or shipped_sets_dir()
    sets = Path(sets_dir)
    if not configs.is_dir():
        raise InputError(Problem(file=str(configs), message="no such configs folder"))
    if not sets.is_dir():
        raise InputError(Problem(file=str(sets), message="no such calibration sets folder"))
    loaded = []
    for name in DEMO_CONFIGS:
        path = configs / name
        if not path.is_file():
            raise InputError(Problem(file=str(path), message="the demo's config is missing "
                                     f"from {configs} (--configs-dir)"))
        config = load_config(path)
        loaded.append((config, load_set(config.calibration_set)))
    for spec in (FIRST_LOOK_RECORDING, BEFORE_RECORDING, AFTER_RECORDING):
        find_recording(spec, sets)
    (first, first_set), (month, month_set) = loaded
    return DemoInputs(configs_dir=configs, sets_dir=sets, first=first, first_set=first_set,
                      month=month, month_set=month_set)


def _fresh_store(out: Path) -> tuple[str, Path]:
    db = out / "judgecal.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    for stale in out.glob("judgecal.db.*.lock"):
        stale.unlink(missing_ok=True)
    return f"sqlite:///{db}", db


def run_demo(
    out_dir: str | Path,
    *,
    configs_dir: str | Path | None = None,
    sets_dir: str | Path | None = None,
    nights: int = 28,
    swap_night: int = 21,
    history_rows: int = 300_000,
    today: datetime | None = None,
    on_step: Step | None = None,
) -> DemoResult:
    """Play the demo into ``out_dir`` (a fresh store each time).

    ``configs_dir`` and ``sets_dir`` default to the shipped ones (the checkout's, else the
    installed package's: :mod:`judgecal.shipped`); ``$JUDGECAL_SETS_DIR`` overrides the
    sets. Every input is checked (:class:`~judgecal.errors.InputError`) before anything is
    written.
    """
    from judgecal.recorded.server import start_server
    from judgecal.records import simulated_clock
    from judgecal.store import open_store

    if not 2 <= swap_night <= nights - 3:
        raise ValueError("swap_night must leave a baseline night before and 3 nights after")
    say = on_step or (lambda _msg: None)
    out = Path(out_dir)
    inputs = check_inputs(out, configs_dir, sets_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(Problem(file=str(out), message=f"cannot create the output folder: "
                                 f"{exc.strerror or exc}")) from exc
    store_url, db = _fresh_store(out)
    result = DemoResult(out_dir=out, store_url=store_url)
    today = (today or datetime.now(UTC)).replace(hour=2, minute=0, second=0, microsecond=0)
    month_start = today - timedelta(days=nights)

    store = open_store(store_url)
    try:
        recorded = start_server(recordings={"*": FIRST_LOOK_RECORDING}, sets_dir=inputs.sets_dir)
        with recorded as srv, simulated_clock(month_start) as clock:
            # 1. First look ------------------------------------------------------------
            say("1. First look: the PandaLM test set (999 items, 3 human annotators) through "
                "the recorded gpt-3.5-turbo judge")
            first = inputs.first
            first.judge = first.judge.model_copy(update={"base_url": srv.url})
            result.first_look = _night(store, first, inputs.first_set,
                                       month_start, say, label="first look", clock=clock)

            # 2-5. The month -----------------------------------------------------------
            srv.configure(recordings={JUDGE_ALIAS: BEFORE_RECORDING}, model_id=SERVED_BEFORE)
            config = inputs.month
            config.judge = config.judge.model_copy(update={"base_url": srv.url})
            cs = inputs.month_set
            say(f"2. A month of nights: '{config.judge.name}' (model alias '{JUDGE_ALIAS}') "
                f"grades the LLMBar set ({len(cs.items)} items) every night at 02:00 UTC")
            for night in range(1, nights + 1):
                when = month_start + timedelta(days=night)
                if night == swap_night:
                    srv.configure(recordings={JUDGE_ALIAS: AFTER_RECORDING},
                                  model_id=SERVED_AFTER)
                    say(f"3. The swap: the evening before night {night}, the provider silently "
                        f"starts serving another model behind '{JUDGE_ALIAS}'; nobody is told")
                if night == swap_night + 2:
                    _respond_acknowledge(store, result, clock, when, say)
                    _link_history(store, result, clock, when, month_start, nights,
                                  swap_night, history_rows, out, say)
                    srv.configure(recordings={PINNED_MODEL: BEFORE_RECORDING},
                                  model_id=PINNED_MODEL)
                    config.judge = config.judge.model_copy(update={"model": PINNED_MODEL})
                    say(f"   the team pins the judge to the dated model '{PINNED_MODEL}' "
                        "(a planned model migration)")
                entry = _night(store, config, cs, when, say, clock=clock,
                               label=f"night {night:2d}")
                result.nights.append(entry)
                if night == swap_night + 2:
                    _respond_resolve(store, result, clock, entry, say)
                if night == swap_night and entry["incident"] is not None:
                    result.incident = {"incident_id": entry["incident"]["incident_id"]}
            clock.set(today + timedelta(hours=6))
            _relink(store, result, say)
            _remedy(store, result, out, say)
            _finish(store, result, out, say)
    finally:
        store.close()
    result.artifacts.setdefault("store", str(db))
    return result


def _night(store: Any, config: Any, cs: Any, when: datetime, say: Step, *, label: str,
           clock: Any = None) -> dict[str, Any]:
    from judgecal.nightly import run_nightly

    if clock is not None:
        clock.set(when)
    nightly = run_nightly(config, store, cs)
    s = nightly.result.summary
    dims = nightly.report["dimensions"]
    headline = []
    for dim, d in dims.items():
        k = d["metrics"].get("kappa", {})
        if k.get("value") is not None:
            headline.append(f"{dim} κ {k['value']:.3f} [{k['ci_low']:.3f}, {k['ci_high']:.3f}]")
    served = ", ".join(s["observed_fingerprint"]["served_models"]) or "—"
    check = nightly.watch.check
    incident = nightly.watch.to_json()["incident"]
    say(f"   {label} {when:%Y-%m-%d}: {s['scored']}/{s['expected']} scored, "
        f"{'; '.join(headline)}; served by {served} → {nightly.kind}"
        + (f" ({check.get('verdict')})" if check.get("verdict") not in ("healthy", nightly.kind)
           else ""))
    if incident and incident["action"] == "opened":
        say(f"   INCIDENT {incident['incident_id']} opened: {check.get('message', '')}")
    return {
        "label": label,
        "date": when.date().isoformat(),
        "run_id": nightly.result.run_id,
        "outcome": nightly.kind,
        "verdict": check.get("verdict"),
        "scored": s["scored"],
        "expected": s["expected"],
        "unscored": s["unscored"],
        "unscored_reasons": s["unscored_reasons"],
        "served_models": list(s["observed_fingerprint"]["served_models"]),
        "metrics": {dim: d["metrics"] for dim, d in dims.items()},
        "ceiling": {dim: d["ceiling"] for dim, d in dims.items()},
        "incident": incident,
    }


def _respond_acknowledge(store: Any, result: DemoResult, clock: Any, when: datetime,
                         say: Step) -> None:
    from judgecal import incidents

    if result.incident is None:
        return
    clock.set(when - timedelta(hours=16))
    incidents.acknowledge(store, result.incident["incident_id"], "oncall@example.com",
                          "Paged by the nightly run; investigating the provider's model change.")
    say(f"   on-call acknowledges {result.incident['incident_id']} the next morning")


def _link_history(store: Any, result: DemoResult, clock: Any, when: datetime,
                  month_start: datetime, nights: int, swap_night: int, rows: int, out: Path,
                  say: Step) -> None:
    """Generate the month's production scores, tag them like production would, ingest, link."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from judgecal.judge.fingerprint import production_tag
    from judgecal.scores import generate as gen
    from judgecal.scores.ingest import ingest_file
    from judgecal.scores.link import link_incident

    if result.incident is None:
        return
    baseline_run = store.get_run(result.nights[0]["run_id"])
    swapped_run = store.get_run(result.nights[swap_night - 1]["run_id"])
    old_tag, new_tag = production_tag(baseline_run), production_tag(swapped_run)
    # The provider switched the evening before the swap night's 02:00 run.
    switch_day = (swap_night - 1) + 0.75
    history = gen.generate(rows, days=nights + 1, customers=200, seed=11, start=month_start,
                           switch_day=switch_day, rollout_hours=1.0)
    table = history.table
    judge = pc.cast(table["judge"], pa.string())
    fp = pc.cast(table["fingerprint"], pa.string())
    judge = pc.if_else(pc.equal(judge, "quality-judge"), "support-judge", judge)
    fp = pc.if_else(pc.equal(fp, gen.OLD_FINGERPRINT), old_tag, fp)
    fp = pc.if_else(pc.equal(fp, gen.NEW_FINGERPRINT), new_tag, fp)
    table = table.set_column(table.schema.get_field_index("judge"), "judge", judge)
    table = table.set_column(table.schema.get_field_index("fingerprint"), "fingerprint", fp)
    table = _with_preferences(store, table, baseline_run, swapped_run, old_tag, new_tag, result)
    clock.set(when - timedelta(hours=15))
    cutoff = pa.scalar(clock(), type=table.schema.field("scored_at").type)
    so_far = table.filter(pc.less_equal(table["scored_at"], cutoff))
    path = out / "production_scores.parquet"
    gen.write_history(so_far, path)
    rest = out / "production_scores_later.parquet"
    gen.write_history(table.filter(pc.greater(table["scored_at"], cutoff)), rest)
    result.artifacts["production_scores_later"] = str(rest)
    ingested = ingest_file(store.engine, path)
    say(f"   the month's production scores so far are ingested: {ingested.inserted:,} scores "
        f"from {len(history.customers)} customers ({path.name})")
    link = link_incident(store, result.incident["incident_id"], actor="oncall@example.com")
    result.blast_radius = link
    result.artifacts["production_scores"] = str(path)
    onset = link.get("onset", {}).get("at", "?")
    say(f"   blast radius: {_pct(link, 'traffic')} of traffic and {_pct(link, 'customers')} "
        f"of named customers were scored by the drifted judge since {onset}")


def _with_preferences(store: Any, table: Any, baseline_run: dict[str, Any],
                      swapped_run: dict[str, Any], old_tag: str, new_tag: str,
                      result: DemoResult) -> Any:
    """Add the judge's ``preference`` scores of production comparisons: one in ten of its
    scores, each the recorded verdict of the model then served (GPT-4 under the old tag,
    ChatGPT under the new one) on an LLMBar item drawn at random; segment = its subset.
    The item behind each score is kept in ``result.artifacts`` (its human label is the truth
    of the window, for the comparison the demo prints)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from judgecal.calibration import StoredSet

    view = StoredSet.load(store, str(baseline_run["set_version"]))
    verdicts = {}
    for tag, run in ((old_tag, baseline_run), (new_tag, swapped_run)):
        verdicts[tag] = {r["item_id"]: float(r["score"]) for r in store.replies(run["run_id"])
                         if r["dimension"] == "preference" and r["score"] is not None}
    subset = {item.id: item.segments.get("subset", "") for item in view.items}
    rows = np.flatnonzero(pc.equal(table["judge"], "support-judge").to_numpy(
        zero_copy_only=False))
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(rows, size=max(len(rows) // 10, 1), replace=False))
    fps = table["fingerprint"].to_numpy(zero_copy_only=False)[pick]
    ids, scores, segments, items = [], [], [], []
    for k, tag in zip(pick, fps, strict=True):
        pool = verdicts.get(str(tag)) or verdicts[old_tag]
        choices = sorted(pool)
        item = choices[int(rng.integers(len(choices)))]
        ids.append(f"pref-{int(k):07d}")
        scores.append(pool[item])
        segments.append(subset.get(item, ""))
        items.append(item)
    strings = {name: pc.cast(table[name], pa.string()) for name in
               ("judge", "fingerprint", "dimension", "customer", "segment")}
    base = table.set_column(table.schema.get_field_index("judge"), "judge", strings["judge"])
    for name, col in strings.items():
        base = base.set_column(base.schema.get_field_index(name), name, col)
    extra = pa.table({
        "score_id": pa.array(ids, pa.string()),
        "scored_at": table["scored_at"].take(pa.array(pick)),
        "judge": strings["judge"].take(pa.array(pick)),
        "fingerprint": strings["fingerprint"].take(pa.array(pick)),
        "dimension": pa.array(["preference"] * len(ids), pa.string()),
        "score": pa.array(scores, pa.float64()),
        "customer": strings["customer"].take(pa.array(pick)),
        "segment": pa.array(segments, pa.string()),
    }).select(base.column_names).cast(base.schema)
    result.preference_items = dict(zip(ids, items, strict=True))
    return pa.concat_tables([base, extra]).sort_by("scored_at")


def _relink(store: Any, result: DemoResult, say: Step) -> None:
    """The rest of the month's scores arrive; re-linking appends an updated blast radius."""
    from judgecal.scores.ingest import ingest_file
    from judgecal.scores.link import link_incident

    later = result.artifacts.get("production_scores_later")
    if result.incident is None or later is None:
        return
    ingested = ingest_file(store.engine, later)
    link = link_incident(store, result.incident["incident_id"], actor="ml-platform@example.com")
    result.blast_radius = link
    say(f"4. The rest of the month's scores arrive ({ingested.inserted:,} more); re-linking "
        f"appends the final blast radius: {link.get('affected_scores', '?'):,} affected scores, "
        f"{_pct(link, 'traffic')} of traffic, {_pct(link, 'customers')} of named customers, "
        f"window ends at the resolution ({link.get('window', {}).get('end', '?')})")


def _pct(link: dict[str, Any], which: str) -> str:
    """``pct_traffic`` / ``pct_customers`` of a blast radius, for a sentence."""
    value = link.get(f"pct_{which}")
    return "?" if value is None else f"{float(value):.1f}%"


def _remedy(store: Any, result: DemoResult, out: Path, say: Step) -> None:
    """Correct the affected window, then label a stratified window sample with the human
    labels of the items behind its scores and correct again (the stored version the
    postmortem quotes). The truth of the window is known: the human labels of every item."""
    import csv

    from judgecal import remedy
    from judgecal.calibration import StoredSet

    if result.incident is None:
        return
    incident_id = result.incident["incident_id"]
    first = remedy.correct_incident(store, incident_id, n_boot=500)
    remedy.save_correction(store, first, actor="ml-platform@example.com")
    queue = out / "label-queue.csv"
    drawn = remedy.draw_sample(store, incident_id, 300, queue, seed=1,
                               actor="ml-platform@example.com")
    run = store.get_run(str(first["calibration"]["drifted_run_id"]))
    view = StoredSet.load(store, str(run["set_version"]))
    gold = dict(zip([i.id for i in view.items],
                    view.human_matrix("preference")[:, 0].tolist(), strict=True))
    with queue.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        item = result.preference_items.get(row["score_id"])
        row["label"] = "" if item is None else f"{gold[item]:g}"
    labelled = out / "label-queue-labelled.csv"
    with labelled.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    remedy.import_labels(store, incident_id, labelled, actor="annotators@example.com")
    final = remedy.correct_incident(store, incident_id, n_boot=500)
    stored = remedy.save_correction(store, final, actor="ml-platform@example.com")
    truth = _window_truth(store, final, result, gold)
    result.correction = {"stored": stored, "truth": truth, "figures": remedy.headline(final),
                         "sample": drawn["n"]}
    result.artifacts["label_queue"] = str(queue)
    for d in final["dimensions"]:
        est = d["overall"]["estimates"]
        parts = [f"{name} {_fig(est.get(key))}" for name, key in (
            ("raw", "raw"), ("PPI++", "ppi++"), ("shift-robust", "shift_robust"),
            ("window sample", "window_sample_ppi++"))]
        say(f"5. Remedy: {d['dimension']} ({d['target']}) over {d['n_window']:,} affected "
            f"scores — " + "; ".join(parts)
            + (f"; the human labels of the items behind them: {truth:.3f}"
               if truth is not None and d["dimension"] == "preference" else ""))
        for m in d["overall"]["messages"]:
            say(f"   {m}")
    say(f"   a window sample of {drawn['n']} scores labelled ({labelled.name}); corrected "
        f"figures stored as version {stored['version']} ({stored['correction_id']})")


def _fig(e: dict[str, Any] | None) -> str:
    if not e or e.get("value") is None:
        return "—" if not e else f"— ({e.get('undefined')})"
    return f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def _window_truth(store: Any, final: dict[str, Any], result: DemoResult,
                  gold: dict[str, float]) -> float | None:
    """The human preference rate for the first response over the affected window."""
    from judgecal.remedy.window import read_window
    from judgecal.scores.link import Window, parse_optional
    from judgecal.scores.source import store_source

    w = final["window"]
    start, end = parse_optional(w["start"]), parse_optional(w["end"])
    assert start is not None and end is not None
    scores = read_window(store_source(store.engine),
                         Window(final["judge"], start, end, tuple(w["fingerprints"])))
    values = [1.0 if gold[result.preference_items[sid]] == 1 else 0.0
              for sid in scores.score_ids if sid in result.preference_items]
    return sum(values) / len(values) if values else None


def _respond_resolve(store: Any, result: DemoResult, clock: Any, entry: dict[str, Any],
                     say: Step) -> None:
    from judgecal import drift, incidents

    if result.incident is None:
        return
    # The pin is a planned change: agreement back at the baseline's level with a different
    # fingerprint is "judge changed" until the team accepts the pinned run as the baseline.
    if entry["outcome"] not in ("healthy", "judge_changed"):
        say(f"   the pinned judge is not back to normal ({entry['verdict']}); incident stays open")
        return
    incidents.resolve(store, result.incident["incident_id"], "ml-platform@example.com",
                      f"Judge pinned to {PINNED_MODEL}; agreement back at the baseline level "
                      f"(run {entry['run_id']}). Corrected figures for the affected window "
                      "follow (judgecal incidents correct).")
    drift.accept_baseline(store, entry["run_id"], actor="ml-platform@example.com",
                          reason=f"new baseline after pinning {PINNED_MODEL}")
    say(f"   incident resolved; run {entry['run_id']} accepted as the new baseline")


def _finish(store: Any, result: DemoResult, out: Path, say: Step) -> None:
    from judgecal import audit, incidents
    from judgecal.reports import write_trust_report

    if result.incident is not None:
        incident = incidents.get_incident(store, result.incident["incident_id"])
        result.incident = incident
        md = out / "incident.md"
        md.write_text(incidents.render_markdown(incident), encoding="utf-8")
        top_customers = (result.blast_radius or {}).get("top_customers") or []
        top = str(top_customers[0]["customer"]) if top_customers else None
        pm = out / "postmortem.md"
        pm.write_text(incidents.render_postmortem(incident, customer=top), encoding="utf-8")
        result.artifacts["incident"] = str(md)
        result.artifacts["postmortem"] = str(pm)
        say(f"   incident record: {md}; customer postmortem draft"
            f"{' for ' + top if top else ''}: {pm}")
    verified = audit.verify(store.engine)  # once: the report shows this same verification
    report = out / "trust-report.html"
    write_trust_report(store, report, verification=verified)
    result.artifacts["report"] = str(report)
    say(f"6. Trust report: {report}")
    result.audit = verified.to_json()
    say(f"   audit log: {verified.entries} entries, "
        f"{'verified' if verified.ok else 'BROKEN: ' + str(len(verified.problems)) + ' problems'}")
