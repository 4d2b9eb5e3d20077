"""`judgecal scores ingest|link|export|shift|show` — the production score history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from judgecal.cli.common import emit_json, fmt_metric, open_store, table
from judgecal.records import now as clock_now

# Exit codes of `scores ingest` (documented in the README and in --help).
EXIT_OK = 0
EXIT_INVALID = 2
EXIT_REJECTED_ROWS = 10

_ADAPTERS = ("langfuse", "mlflow", "otel")  # judgecal.scores.formats.FORMATS, without importing it

_SOURCE_HELP = (
    "YAML file with a 'score_source:' block (url, table, schema, columns): read the scores in "
    "place from that table instead of the store's ingested history. Env: JUDGECAL_SCORE_SOURCE."
)


def _when(value: str | None, option: str) -> datetime | None:
    from judgecal.scores import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 date or time (e.g. 2026-03-01 or "
            "2026-03-01T12:00:00Z)", param_hint=option
        ) from None


@contextmanager
def _source(store: Any, config: str | None) -> Iterator[Any]:
    from judgecal.scores import open_source, store_source

    if not config:
        yield store_source(store.engine)
        return
    src = open_source(config)
    try:
        yield src
    finally:
        src.close()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@click.group()
def scores() -> None:
    """Production score history: ingest, link, export, shift, show.

    \b
    judgecal scores ingest scores.parquet
    judgecal scores link INCIDENT
    judgecal scores export INCIDENT --out affected.csv
    judgecal scores shift --judge quality-judge --since 2026-03-01
    judgecal scores show SCORE_ID
    """


# -- ingest ------------------------------------------------------------------------------------
@scores.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=NAME",
              help="Read a canonical column from another name, e.g. --map score_id=id "
              "--map scored_at=ts. Repeatable.")
@click.option("--atomic", is_flag=True,
              help="All or nothing: any bad row and nothing of the file is committed (exit 2).")
@click.option("--chunk-rows", default=100_000, show_default=True, type=click.IntRange(1),
              help="Rows read and written at a time (bounds memory).")
@click.option("--format", "fmt", default=None,
              type=click.Choice(["csv", "tsv", "jsonl", "parquet", *_ADAPTERS]),
              help="The file's format (default: from its extension; a .json file from its "
              "content). langfuse, mlflow, otel: another tool's export, see "
              "docs/score-formats.md.")
@click.option("--judge", default=None, help="Adapters: the judge's name for every score.")
@click.option("--judge-field", default=None, metavar="FIELD",
              help="Adapters: read the judge from this field (e.g. configId, metadata.judge, "
              "an attribute).")
@click.option("--fingerprint-field", default=None, metavar="FIELD",
              help="Adapters: read the fingerprint from this field.")
@click.option("--customer-field", default=None, metavar="FIELD",
              help="Adapters: read the customer from this field.")
@click.option("--segment-field", default=None, metavar="FIELD",
              help="Adapters: read the segment from this field.")
@click.option("--trace-field", default=None, metavar="FIELD",
              help="Adapters: read trace_id from this field (e.g. sessionId).")
@click.option("--include-sources", default=None, metavar="A,B",
              help="Adapters: the score sources kept (langfuse default EVAL, of EVAL, API, "
              "ANNOTATION; mlflow default LLM_JUDGE, of LLM_JUDGE, HUMAN, CODE).")
@click.option("--value-map", "value_map", multiple=True, metavar="LABEL=NUMBER",
              help="Adapters: the number of a category label, e.g. --value-map yes=1 "
              "--value-map no=0. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[str, ...], mappings: tuple[str, ...], atomic: bool,
           chunk_rows: int, fmt: str | None, judge: str | None, judge_field: str | None,
           fingerprint_field: str | None, customer_field: str | None,
           segment_field: str | None, trace_field: str | None, include_sources: str | None,
           value_map: tuple[str, ...], as_json: bool) -> None:
    """Ingest production scores from CSV, JSONL or Parquet files, or from Langfuse,
    MLflow or OpenTelemetry exports (--format).

    Columns: score_id, scored_at, judge, fingerprint, dimension, score, customer, segment
    (fingerprint, customer and segment may be empty or absent). Timestamps are ISO-8601;
    a value without an offset is taken as UTC. Idempotent by score_id: ingesting the same
    file twice changes nothing. An export's records that are not judge scores (another
    source, free text, a failed evaluation) are skipped and counted by reason.

    \b
    Exit codes:
      0   every row ingested (or already present)
      2   invalid input: unreadable file, missing column, or --atomic with bad rows
          (nothing of that file committed)
      10  good rows committed, bad rows rejected (reported by line)
    """
    from judgecal.scores import ingest_file, parse_mapping
    from judgecal.scores.formats import FormatOptions

    mapping = parse_mapping(list(mappings))
    options = FormatOptions(
        judge=judge, judge_field=judge_field, fingerprint_field=fingerprint_field,
        customer_field=customer_field, segment_field=segment_field, trace_field=trace_field,
        include_sources=None if include_sources is None else frozenset(
            s.strip().upper() for s in include_sources.split(",") if s.strip()),
        value_map=_value_map(value_map))
    store = open_store(ctx)
    results = []
    for path in files:
        result = ingest_file(store.engine, path, mapping=mapping, atomic=atomic,
                             chunk_rows=chunk_rows, fmt=fmt, options=options)
        results.append(result)
        if not as_json:
            _print_ingest(path, result)
    if as_json:
        emit_json(results[0].to_json() if len(results) == 1 else [r.to_json() for r in results])
    if any(r.bad_rows and not r.committed for r in results):
        ctx.exit(EXIT_INVALID)
    if any(r.bad_rows for r in results):
        ctx.exit(EXIT_REJECTED_ROWS)
    ctx.exit(EXIT_OK)


def _value_map(pairs: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        label, eq, number = pair.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not eq or not label.strip() or value != value or value in (float("inf"),
                                                                      float("-inf")):
            raise click.BadParameter(f"expected LABEL=NUMBER, got {pair!r}",
                                     param_hint="--value-map")
        out[label.strip()] = value
    return out


def _print_ingest(path: str, result: Any) -> None:
    for problem in result.problems:
        click.echo(f"bad row: {problem}", err=True)
    if result.bad_rows > len(result.problems):
        click.echo(f"... and {result.bad_rows - len(result.problems)} more bad rows", err=True)
    state = "committed" if result.committed else "NOT committed (--atomic)"
    if not result.committed and not result.bad_rows:
        state = "nothing to commit"
    skipped = ""
    if result.skipped:
        by_count = sorted(result.skipped_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        reasons = ", ".join(f"{reason}: {n:,}" for reason, n in by_count)
        skipped = f", {result.skipped:,} skipped ({reasons})"
    click.echo(
        f"{path}: {result.rows_read:,} rows read, {result.inserted:,} new, "
        f"{result.duplicates:,} already present, {result.bad_rows:,} bad{skipped}; {state} "
        f"({result.rows_per_s:,.0f} rows/s)"
    )


# -- link / export: an incident, or an explicit window -----------------------------------------
def _explicit_options(fn: Any) -> Any:
    options = [
        click.option("--judge", default=None, help="Without INCIDENT: the judge name."),
        click.option("--last-healthy", default=None, metavar="TIME",
                     help="Without INCIDENT: time of the judge's last healthy calibration run."),
        click.option("--new-fingerprint", default=None, metavar="TAG",
                     help="Without INCIDENT: the production tag of the changed judge."),
        click.option("--onset", "onset_at", default=None, metavar="TIME",
                     help="Without INCIDENT: take this onset as given (all fingerprints)."),
        click.option("--until", default=None, metavar="TIME",
                     help="End of the window (default: the incident's resolution, or now)."),
        click.option("--source", "source_config", default=None, envvar="JUDGECAL_SCORE_SOURCE",
                     type=click.Path(dir_okay=False, exists=True), help=_SOURCE_HELP),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _resolve_window(store: Any, src: Any, incident_id: str | None, judge: str | None,
                    last_healthy: str | None, new_fingerprint: str | None,
                    onset_at: str | None, until: str | None) -> tuple[Any, str, datetime | None,
                                                                     str, str | None]:
    """(onset, judge, end, end_reason, incident_id)."""
    from judgecal.scores.link import GIVEN, Onset, find_onset
    from judgecal.scores.window import incident_window

    end = _when(until, "--until")
    if incident_id:
        if judge or last_healthy or new_fingerprint or onset_at:
            raise click.UsageError("give an INCIDENT or --judge/--last-healthy/"
                                   "--new-fingerprint/--onset, not both")
        from judgecal import incidents

        incident = incidents.get_incident(store, incident_id)
        onset, end, reason = incident_window(store, src, incident, until=end)
        return onset, str(incident["judge_name"]), end, reason, str(incident["incident_id"])
    if not judge:
        raise click.UsageError("give an INCIDENT id, or --judge with --last-healthy, "
                               "--new-fingerprint or --onset")
    if onset_at:
        at = _when(onset_at, "--onset")
        assert at is not None
        onset = Onset(at=at, method=GIVEN, explanation="onset given on the command line")
    elif last_healthy or new_fingerprint:
        onset = find_onset(src, judge, last_healthy_at=_when(last_healthy, "--last-healthy"),
                           new_tag=new_fingerprint)
    else:
        raise click.UsageError("--judge needs --last-healthy, --new-fingerprint or --onset")
    return onset, judge, end, "given" if end else "now", None


@scores.command()
@click.argument("incident", required=False)
@_explicit_options
@click.option("--top", default=10, show_default=True, type=click.IntRange(1),
              help="How many customers to list, most affected first.")
@click.option("--no-record", is_flag=True,
              help="Do not append the result to the incident (a dry run).")
@click.option("--actor", default=None, help="Who linked (recorded with the event).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def link(ctx: click.Context, incident: str | None, judge: str | None, last_healthy: str | None,
         new_fingerprint: str | None, onset_at: str | None, until: str | None,
         source_config: str | None, top: int, no_record: bool, actor: str | None,
         as_json: bool) -> None:
    """Link an incident to the production scores it puts in question.

    Finds the onset (the first score with the judge's new fingerprint, else the last
    healthy calibration run), then counts in the database: affected scores, % of traffic,
    % of named customers, breakdowns by dimension, segment and customer, and how the
    judge's mean production score moved per dimension. The result is appended to the
    incident as a blast_radius event (re-linking appends a new one).

    Without INCIDENT, give --judge and --last-healthy / --new-fingerprint / --onset
    (nothing is recorded).
    """
    from judgecal.scores import blast_radius

    store = open_store(ctx)
    with _source(store, source_config) as src:
        onset, judge_name, end, reason, incident_id = _resolve_window(
            store, src, incident, judge, last_healthy, new_fingerprint, onset_at, until)
        result = blast_radius(src, onset, judge_name, end=end, end_reason=reason, top=top)
    if incident_id:
        result = {"incident_id": incident_id, **result}
        if not no_record:
            from judgecal import incidents

            event = incidents.add_event(
                store, incident_id, "blast_radius", result, actor=actor,
                reason="scores link: blast radius from the production score history")
            result["event_seq"] = event["seq"]
    if as_json:
        emit_json(result)
        return
    _print_link(result)


def _print_link(r: dict[str, Any]) -> None:
    head = f"incident {r['incident_id']}: " if r.get("incident_id") else ""
    click.echo(f"{head}judge {r['judge']} — scores from {r['source']}")
    click.echo(f"onset {r['onset']['at']} ({r['onset']['method']}): {r['onset']['explanation']}")
    w = r["window"]
    click.echo(f"window {w['start']} → {w['end']} ({w['end_reason']}); history through "
               f"{r['history_through']}")
    click.echo("")
    click.echo(f"affected scores   {r['affected_scores']:,} of {r['scores_in_window']:,} in the "
               f"window = {_pct(r['pct_traffic'])} of traffic")
    click.echo(f"named customers   {r['customers_affected']:,} of {r['customers_active']:,} "
               f"active = {_pct(r['pct_customers'])}")
    click.echo("")
    rows = [[d["dimension"], f"{d['affected_scores']:,}", _num(d["mean_before"]),
             _num(d["mean_after"]),
             "—" if d["points"] is None and d["delta"] is None else (
                 f"{d['points']:+.2f} pts" if d["points"] is not None else f"{d['delta']:+.4f}"),
             "—" if d["ci95"] is None else f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]",
             {True: "moved", False: "noise", None: "—"}[d["moved"]]]
            for d in r["by_dimension"]]
    click.echo(table(rows, ["dimension", "affected", "mean before", "mean after", "move",
                            "95% CI", ""]))
    click.echo("")
    click.echo(table([[s["segment"] or "(none)", f"{s['affected_scores']:,}",
                       _pct(s["pct_of_affected"])] for s in r["by_segment"]],
                     ["segment", "affected", "share"]))
    click.echo("")
    if r["top_customers"]:
        click.echo(table([[c["customer"], f"{c['affected_scores']:,}",
                           _pct(c["pct_of_their_traffic"])] for c in r["top_customers"]],
                         ["customer", "affected", "of their traffic"]))
        click.echo("")
    click.echo(r["summary"])
    if r.get("event_seq"):
        click.echo(f"recorded on incident {r['incident_id']} as event #{r['event_seq']}")


@scores.command()
@click.argument("incident", required=False)
@_explicit_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .csv or .parquet.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def export(ctx: click.Context, incident: str | None, judge: str | None,
           last_healthy: str | None, new_fingerprint: str | None, onset_at: str | None,
           until: str | None, source_config: str | None, out: str, as_json: bool) -> None:
    """Export every affected score (id, time, judge, fingerprint, dimension, score,
    customer, segment) of an incident to CSV or Parquet, streamed."""

    from judgecal.scores import export_affected
    from judgecal.scores.link import Window, iso

    store = open_store(ctx)
    with _source(store, source_config) as src:
        onset, judge_name, end, reason, incident_id = _resolve_window(
            store, src, incident, judge, last_healthy, new_fingerprint, onset_at, until)
        end = end or clock_now()
        window = Window(judge_name, onset.at, end, onset.fingerprints)
        count = export_affected(src, window, out)
    summary = {"incident_id": incident_id, "judge": judge_name, "out": out, "rows": count,
               "window": {"start": iso(onset.at), "end": iso(end), "end_reason": reason,
                          "fingerprints": list(onset.fingerprints)},
               "onset": onset.to_json()}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{count:,} affected scores of {judge_name} written to {out} "
               f"(window {iso(onset.at)} → {iso(end)})")


# -- shift -------------------------------------------------------------------------------------
@scores.command()
@click.option("--judge", required=True, help="The judge whose production scores moved.")
@click.option("--since", required=True, metavar="TIME", help="Start of the later period.")
@click.option("--until", default=None, metavar="TIME", help="End of the later period "
              "(default now).")
@click.option("--before-start", default=None, metavar="TIME",
              help="Start of the earlier period (default: as long as the later one).")
@click.option("--source", "source_config", default=None, envvar="JUDGECAL_SCORE_SOURCE",
              type=click.Path(dir_okay=False, exists=True), help=_SOURCE_HELP)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def shift(ctx: click.Context, judge: str, since: str, until: str | None,
          before_start: str | None, source_config: str | None, as_json: bool) -> None:
    """Production scores moved: is the judge the cause?

    Compares the judge's production scores in [--since, --until) with the period before,
    says whether a judge incident covers it, whether calibration stayed healthy, and — when
    the judge is not the cause — points to the other three causes (model migration, prompt
    change, input distribution shift) with the change in segment mix.
    """
    from judgecal.scores import judge_shift

    start = _when(since, "--since")
    assert start is not None
    store = open_store(ctx)
    with _source(store, source_config) as src:
        r = judge_shift(store, judge, since=start, until=_when(until, "--until"),
                        before_start=_when(before_start, "--before-start"), source=src)
    if as_json:
        emit_json(r)
        return
    click.echo(f"judge {judge}: {r['before']['start']} → {r['before']['end']} "
               f"({r['before']['scores']:,} scores) vs {r['after']['start']} → "
               f"{r['after']['end']} ({r['after']['scores']:,} scores)")
    click.echo("")
    click.echo(table([[d["dimension"], _num(d["mean_before"]), _num(d["mean_after"]),
                       "—" if d["delta"] is None else f"{d['delta']:+.4f}",
                       "—" if d["ci95"] is None else
                       f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]",
                       _num(d["mix_effect"], 4), _num(d["within_effect"], 4),
                       {True: "moved", False: "noise", None: "—"}[d["moved"]]]
                      for d in r["by_dimension"]],
                     ["dimension", "before", "after", "move", "95% CI", "mix effect",
                      "within segments", ""]))
    click.echo("")
    click.echo(table([[m["segment"] or "(none)", _pct(None if m["share_before"] is None
                                                      else 100 * m["share_before"]),
                       _pct(None if m["share_after"] is None else 100 * m["share_after"])]
                      for m in r["segment_mix"]], ["segment", "share before", "share after"]))
    click.echo("")
    click.echo(f"verdict: {r['verdict']} — {r['explanation']}")
    for cause in r["other_causes"]:
        line = f"  {cause['cause']}: {cause['check']}"
        if cause["evidence"]:
            line += f" [{cause['evidence']}]"
        click.echo(line)


# -- show --------------------------------------------------------------------------------------
@scores.command()
@click.argument("score_id")
@click.option("--source", "source_config", default=None, envvar="JUDGECAL_SCORE_SOURCE",
              type=click.Path(dir_okay=False),
              help="Read the score in place (a YAML file with a score_source: block).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, score_id: str, source_config: str | None, as_json: bool) -> None:
    """Which judge produced one score, and what was known of that judge then.

    The judge and fingerprint on the score and when it was scored; the baseline in force;
    the calibration runs just before and after it with their agreement and intervals;
    whether the score's fingerprint matches what those runs saw; every incident whose
    window holds it, with its corrected figure once `incidents correct` has run.
    """
    from judgecal.scores.show import score_story

    store = open_store(ctx)
    with _source(store, source_config) as src:
        story = score_story(store, score_id, source=src)
    if as_json:
        emit_json(story)
        return
    click.echo(_render_story(story))


def _render_story(s: dict[str, Any]) -> str:
    sc = s["score"]
    lines = [f"score {sc['score_id']}: {sc['dimension']} = {sc['score']:g}, scored "
             f"{sc['scored_at']} by judge {sc['judge']}",
             f"fingerprint {sc['fingerprint'] or '(none)'}: {s['fingerprint_matches']}",
             f"customer {sc['customer'] or '—'}, segment {sc['segment'] or '—'}"
             + (f", trace {sc['trace_id']}" if sc.get("trace_id") else ""),
             f"from {s['source']}"]
    base = s["baseline_in_force"]
    lines.append("baseline in force: " + (
        f"run {base['run_id']} (accepted {base['accepted_at']} by {base['actor']})" if base
        else "none (the judge was not monitored then)"))
    for label, run in (("calibration run before", s["run_before"]),
                       ("calibration run after", s["run_after"])):
        if run is None:
            lines.append(f"{label}: none")
            continue
        lines.append(f"{label}: {run['run_id']} {run['started_at']} ({run['status']}), "
                     f"tag {run['production_tag']}")
        for name, m in run["metrics"].items():
            lines.append(f"  {sc['dimension']} {name}: {fmt_metric(m)}")
    if not s["incidents"]:
        lines.append("incidents: none whose window holds this score")
    for inc in s["incidents"]:
        lines.append(f"incident {inc['incident_id']} ({inc['severity']}, {inc['status']}): "
                     f"window {inc['window']['start']} → {inc['window']['end']}")
        fix = inc["corrected"]
        if fix and fix.get("corrected"):
            c, shown = fix["corrected"], fix.get("shown") or {}
            lines.append(f"  {fix['target']}: shown {_num(shown.get('value'))}, corrected "
                         f"{_num(c.get('value'))} [{_num(c.get('ci_low'))}, "
                         f"{_num(c.get('ci_high'))}] ({c.get('method')}, version "
                         f"{fix['version']})")
        elif fix:
            lines.append(f"  no corrected figure: {fix.get('why_none')}")
        else:
            lines.append(f"  not corrected yet: judgecal incidents correct {inc['incident_id']}")
    return "\n".join(lines)
