"""`judgecal serve-recorded` — the offline recorded judge, in the foreground."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

DEFAULT_PORT = 8765


def _timeout_sleep(value: str) -> float | None:
    if value.strip().lower() in ("never", "inf", "none"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a number of seconds or 'never'") from None
    if seconds < 0:
        raise click.BadParameter("must be >= 0")
    return seconds


@click.command("serve-recorded")
@click.option(
    "--recording", "-r", "recordings", multiple=True, metavar="[ALIAS=]SET:NAME",
    help="Recording to serve, e.g. pandalm:gpt-3.5-turbo or llmbar:GPT-4/Vanilla. "
    "ALIAS=SPEC serves it only for requests naming model ALIAS; a bare SPEC answers every "
    "model name. Repeatable. Default: pandalm:gpt-3.5-turbo for every model.",
)
@click.option(
    "--sets-dir", type=click.Path(path_type=Path, file_okay=False), envvar="JUDGECAL_SETS_DIR",
    default=None, help="Calibration sets root (default ./calibration_sets if there is one, "
    "else the sets shipped with judgecal). Env: JUDGECAL_SETS_DIR.",
)
@click.option("--list", "list_only", is_flag=True, help="List the available recordings and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print JSON.")
@click.option(
    "--model-id", default=None,
    help="Model id to report in replies (default: echo the requested model). Simulates a "
    "provider that names the model it really served.",
)
@click.option("--system-fingerprint", default=None, help="system_fingerprint to report "
              "(default: leave the field out).")
@click.option(
    "--profile", type=click.Choice(["default", "llamacpp"]), default="default",
    show_default=True,
    help="Which server to imitate. llamacpp: the reply's model echoes the requested name "
    "(--model-id ignored), no system_fingerprint, max_completion_tokens ignored (only "
    "max_tokens cuts a reply), one request answered at a time (the others queue).",
)
@click.option(
    "--fault", "faults", multiple=True, metavar="KIND=RATE",
    help="Inject a fault into this fraction of requests. Kinds: 429, 429-no-retry-after, "
    "500, 502, 503, context-length, timeout, drop, junk, empty, truncated-stream, "
    "no-finish-reason, no-usage, rescore (another item's recorded verdict: a judge that "
    "does not repeat itself), and the hostile replies html, broken-json, wrong-shape, "
    "no-message, content-number, content-list, bad-usage, echo-key. Repeatable.",
)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the fault draws (per item and attempt: reproducible).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Latency added to every reply.")
@click.option("--latency-jitter-ms", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="Extra uniform random latency, 0..this.")
@click.option("--retry-after", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Retry-After seconds of the 429 fault.")
@click.option("--timeout-sleep", default="30", show_default=True, metavar="SECONDS|never",
              help="How long the timeout fault waits before answering ('never': it does not).")
@click.option("--batch-polls", type=click.IntRange(min=0), default=0, show_default=True,
              help="Batch API: looks at a batch for which it stays in_progress (a slow batch).")
@click.option("--batch-expire", type=click.FloatRange(0, 1), default=None, metavar="SHARE",
              help="Batch API: batches expire after answering this share of their requests "
              "(the rest are batch_expired error lines). Default: batches complete.")
@click.option("--batch-order", type=click.Choice(["shuffled", "input", "reversed"]),
              default="shuffled", show_default=True,
              help="Batch API: the order of a finished batch's result lines.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (keep it local: there is no authentication).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port; 0 picks a free one.")
def serve_recorded(
    recordings: tuple[str, ...],
    sets_dir: Path | None,
    list_only: bool,
    as_json: bool,
    model_id: str | None,
    system_fingerprint: str | None,
    profile: str,
    faults: tuple[str, ...],
    seed: int,
    latency_ms: float,
    latency_jitter_ms: float,
    retry_after: float,
    timeout_sleep: str,
    batch_polls: int,
    batch_expire: float | None,
    batch_order: str,
    host: str,
    port: int,
) -> None:
    """Serve recorded real judge verdicts as an OpenAI-compatible API.

    Answers POST /v1/chat/completions from the verdicts real judges gave on the items
    of the shipped calibration sets, found by the item's texts in the prompt, and
    injects faults on request. The batch API (/v1/files, /v1/batches) answers each line
    the same way. Runs until Ctrl-C. Stats: GET /_judgecal/stats;
    runtime changes: POST /_judgecal/config.

    \b
    Examples:
        judgecal serve-recorded --list
        judgecal serve-recorded -r gpt-3.5-turbo=pandalm:gpt-3.5-turbo
        judgecal serve-recorded -r llmbar:GPT-4/Vanilla --fault 429=0.05 --fault junk=0.02
        judgecal serve-recorded --port 0 --latency-ms 200 --model-id gpt-4o-2024-08-06
        judgecal serve-recorded --profile llamacpp --latency-ms 500
    """
    from judgecal.cli.common import emit_json
    from judgecal.errors import InputError
    from judgecal.recorded.faults import parse_fault
    from judgecal.recorded.recordings import list_recordings
    from judgecal.recorded.server import ServerConfig, parse_recording_option, start_server

    if list_only:
        infos = list_recordings(sets_dir)
        if as_json:
            emit_json([i.to_dict() for i in infos])
            return
        if not infos:
            click.echo("No recordings found.")
            return
        width = max(len(i.spec) for i in infos)
        for info in infos:
            counts = " ".join(f"{k}={v}" for k, v in info.counts.items())
            click.echo(f"{info.spec:<{width}}  {info.rows:>4} items  {counts}")
        return
    if as_json:
        raise click.UsageError("--json goes with --list")

    mapping: dict[str, str] = {}
    for option in recordings:
        try:
            alias, spec = parse_recording_option(option)
        except InputError as exc:
            raise click.BadParameter(exc.problems[0].message, param_hint="--recording") from None
        if alias in mapping:
            raise click.BadParameter(f"model '{alias}' is given twice", param_hint="--recording")
        mapping[alias] = spec
    rates: dict[str, float] = {}
    for option in faults:
        try:
            kind, rate = parse_fault(option)
        except InputError as exc:
            raise click.BadParameter(exc.problems[0].message, param_hint="--fault") from None
        rates[kind] = rate

    config = ServerConfig(
        **({"recordings": mapping} if mapping else {}),
        sets_dir=sets_dir,
        model_id=model_id,
        system_fingerprint=system_fingerprint,
        profile=profile,
        faults=rates,
        seed=seed,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        retry_after_s=retry_after,
        timeout_sleep_s=_timeout_sleep(timeout_sleep),
        batch_polls=batch_polls,
        batch_expire=batch_expire,
        batch_order=batch_order,
        host=host,
        port=port,
    )
    try:
        server = start_server(config)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    with server:
        click.echo(f"Recorded judge at {server.url}")
        for alias, spec in server.config.recordings.items():
            click.echo(f"  model {alias!r:<20} -> {spec}" if alias != "*" else
                       f"  any model              -> {spec}")
        if profile != "default":
            click.echo(f"  profile: {profile} (one request at a time)")
        if rates:
            click.echo("  faults: " + ", ".join(f"{k}={v:g}" for k, v in rates.items()))
        click.echo("Press Ctrl-C to stop.", err=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)  # systemd/docker stop: same as ^C
        try:
            server.wait()
        except KeyboardInterrupt:
            click.echo("Stopping.", err=True)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
