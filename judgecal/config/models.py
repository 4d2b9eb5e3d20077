"""The config models: judges and nightly runs, validated strictly (pydantic).

Unknown keys are errors, so a typo never silently changes what is measured. Reading
them from YAML files is :mod:`judgecal.config.files`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from judgecal.errors import ConfigError, Problem
from judgecal.io import YamlDocument, field_text

__all__ = [
    "DEFAULT_WEBHOOK_EVENTS",
    "CostSettings",
    "Decoding",
    "DriftSettings",
    "JudgeConfig",
    "NotifySettings",
    "ParseRule",
    "Price",
    "PromptSpec",
    "RunConfig",
    "RunSettings",
    "TemplateSyntaxProblem",
    "WebhookEvent",
    "WebhookSettings",
    "locate",
]


class _Strict(BaseModel):
    # The attribute docstrings are the fields' descriptions (JSON Schema, docs/config.md).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ParseRule(_Strict):
    """How a judge reply becomes a score.

    ``regex``: the pattern is searched in the reply; the captured ``group`` (default 1)
    is the label, optionally translated through ``map``. ``match: last`` takes the
    last occurrence (useful when the judge reasons first and answers at the end).

    ``json``: the reply (or the first ``{...}`` object inside it) is parsed as JSON and
    ``field`` (dotted path) is the label.
    """

    type: Literal["regex", "json"] = "regex"
    """``regex``: a pattern searched in the reply; ``json``: a field of a JSON object."""
    pattern: str | None = None
    """Regular expression with at least one capturing group (``regex`` rules)."""
    group: int | str = 1
    """Capturing group holding the label."""
    match: Literal["first", "last"] = "first"
    """Which occurrence counts when the pattern matches several times."""
    ignore_case: bool = False
    """Match the pattern without regard to case."""
    field: str | None = None
    """Dotted path of the label inside the JSON object (``json`` rules)."""
    map: dict[str, str | float | int] | None = None
    """Optional translation of the captured text into a label of the dimension's scale."""

    @model_validator(mode="after")
    def _check(self) -> ParseRule:
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("a regex parse rule needs 'pattern'")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"'pattern' is not a valid regular expression: {exc}") from exc
            if compiled.groups < 1:
                raise ValueError("'pattern' needs a capturing group around the label")
        elif not self.field:
            raise ValueError("a json parse rule needs 'field'")
        return self


class TemplateSyntaxProblem(ValueError):
    """A prompt template that does not compile; ``lineno`` is the line in the template."""

    def __init__(self, message: str, lineno: int | None):
        super().__init__(message)
        self.lineno = lineno


class PromptSpec(_Strict):
    """The prompt for one dimension: Jinja2 templates rendered with the item's fields."""

    template: str
    """User message; item fields are variables (``{{ instruction }}``), plus ``rubric`` and
    ``dimension``. Item text is data: it is inserted, never evaluated as a template."""
    system: str | None = None
    """Optional system message (also a template)."""
    parse: ParseRule
    """How the reply becomes a label (see ``parse.*``)."""
    swap_fields: list[tuple[str, str]] | None = None
    """Pairwise only: pairs of item fields exchanged to build the swapped-order prompt."""

    @field_validator("template", "system")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        """A template that does not compile is a config error found when the file is read
        (naming its file and line), not in the middle of a run."""
        if value is not None:
            from judgecal.io.templates import template_syntax_error

            problem = template_syntax_error(value)
            if problem is not None:
                raise TemplateSyntaxProblem(*problem)
        return value


class Decoding(_Strict):
    """Decoding parameters sent with every request (part of the configured fingerprint)."""

    temperature: float | None = Field(default=0.0, ge=0, le=2)
    """Sampling temperature (null: not sent, the server's default)."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling mass (null: not sent)."""
    max_tokens: int | None = Field(default=512, gt=0)
    """Sent both as ``max_tokens`` and ``max_completion_tokens`` (see ``max_tokens_param``)."""
    max_tokens_param: Literal["both", "max_tokens", "max_completion_tokens"] = "both"
    """Some servers ignore ``max_completion_tokens``; some reasoning models reject
    ``max_tokens``."""
    seed: int | None = None
    """Sampling seed, for servers that honour one (null: not sent)."""
    stop: list[str] | None = None
    """Stop sequences (null: not sent)."""
    presence_penalty: float | None = None
    """Presence penalty (null: not sent)."""
    frequency_penalty: float | None = None
    """Frequency penalty (null: not sent)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Provider-specific request fields, sent as they are."""


class JudgeConfig(_Strict):
    """A named grader: endpoint, model, decoding, prompts and parse rules."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:\-]+$", max_length=200)
    """Stable name of the judge; baselines and score history are keyed by it."""
    base_url: str
    """OpenAI-compatible endpoint, e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Name of the environment variable that holds the API key (never the key itself)."""
    api_key_required: bool = False
    """Fail before the run when the variable is unset (for real providers)."""
    model: str
    """The requested model name (or alias / Azure deployment)."""
    decoding: Decoding = Field(default_factory=Decoding)
    """Decoding parameters (see ``decoding.*``)."""
    rubric: str = ""
    """Rubric text available to templates as ``{{ rubric }}``."""
    prompts: dict[str, PromptSpec]
    """One prompt per dimension judged."""
    stream: bool = False
    """Request a streamed reply (a stream that ends without a finish reason is a failure)."""
    concurrency: int = Field(default=8, ge=1, le=1024)
    """Requests in flight at once (a retry or a re-ask takes the next free slot before an
    item not yet started)."""
    requests_per_second: float | None = Field(default=None, gt=0)
    """Optional client-side rate limit."""
    timeout_s: float = Field(default=300.0, gt=0)
    """Per-request timeout. Generous by default: some servers queue requests one at a time,
    and there it must exceed ``concurrency`` × the slowest reply."""
    max_retries: int = Field(default=6, ge=0, le=50)
    """Retries on 429, 5xx, timeouts, dropped connections and incomplete streams."""
    parse_retries: int = Field(default=2, ge=0, le=10)
    """Ask again when a reply has no parseable verdict; if it stays junk it is unscored."""
    backoff_base_s: float = Field(default=0.5, ge=0)
    """Retry backoff: the wait before retry N is random up to ``backoff_base_s × 2^N``
    (full jitter), capped by ``backoff_max_s``."""
    backoff_max_s: float = Field(default=30.0, ge=0)
    """Cap of the random wait between two retries (see ``backoff_base_s``)."""
    retry_after_max_s: float = Field(default=60.0, ge=0)
    """Longest wait a ``Retry-After`` header can impose before a retry (an endpoint asking
    for an hour gets this much; the run's ``deadline_s`` bounds the rest)."""
    swap_order: bool = False
    """Pairwise dimensions: also judge every item with the two responses swapped
    (measures position consistency)."""
    batch: bool = False
    """Send the run through the endpoint's OpenAI-compatible batch API (``/v1/files`` and
    ``/v1/batches``, completion window 24 h) instead of one request per reply: the same chat
    requests as JSONL lines, at a provider's batch price. The batch's id is stored the moment
    it is created, so a killed run finds it again instead of submitting another; a batch that
    expires, fails or is cancelled, or that ``run.deadline_s`` does not wait for, keeps what
    it answered and leaves the run inconclusive (exit 3). Unparseable replies are re-asked
    live (``parse_retries``), as are requests the batch answered with a transient error.
    ``stream`` does not apply to batch requests."""
    batch_poll_s: float = Field(default=30.0, gt=0)
    """Seconds between two looks at a submitted batch's status (``batch: true``)."""
    batch_max_requests: int = Field(default=50_000, ge=1, le=50_000)
    """Most requests in one batch (OpenAI's limit is 50,000); a larger run is sent as several
    batches, one after the other."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    _origin: tuple[YamlDocument, tuple[str, ...]] | None = PrivateAttr(default=None)
    """The file this judge was read from, and where in it (``("judge",)`` when inline)."""

    def located(self, doc: YamlDocument, at: tuple[str, ...] = ()) -> JudgeConfig:
        """Remember that this judge was read from ``doc`` at ``at`` (for :meth:`problem`)."""
        self._origin = (doc, at)
        return self

    def problem(self, loc: tuple[str, ...], message: str,
                text_line: int | None = None) -> Problem:
        """A problem with this judge's field ``loc`` (e.g. ``("prompts", "quality",
        "template")``) found after loading: it names the file and line the judge was read
        from (``text_line`` is a line inside that field's text, e.g. of a template)."""
        if self._origin is None:
            if text_line is not None:
                message += f" (line {text_line} of the template)"
            return Problem(file=f"judge '{self.name}'", field=field_text(".".join(loc)),
                           message=message)
        doc, at = self._origin
        full = (*at, *loc)
        line, message = locate(doc, full, message, text_line)
        return Problem(file=str(doc.path), line=line, field=field_text(".".join(full)),
                       message=message)

    def api_key(self) -> str:
        """The API key from the environment ('unused' when none is configured or set)."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                return key
            if self.api_key_required:
                raise ConfigError(
                    f"the judge '{self.name}' needs an API key: "
                    f"set the environment variable {self.api_key_env}"
                )
        return "unused"


class RunSettings(_Strict):
    """When a run is good enough to be judged."""

    max_unscored_rate: float = Field(default=0.2, ge=0, le=1)
    """Above this share of unscored or failed replies the run is inconclusive (exit 3)."""
    min_items: int = Field(default=20, ge=1)
    """Fewer scored items than this make the run inconclusive."""
    limit: int | None = Field(default=None, ge=1)
    """Only the first N items of the set (quick checks)."""
    bootstrap: int = Field(default=1000, ge=0)
    """Bootstrap resamples for intervals."""
    seed: int = 0
    """Seed of the bootstrap (the same run gives the same intervals)."""
    deadline_s: float = Field(default=4 * 3600.0, gt=0)
    """Longest time the replay of one run may take. Past it the requests still waiting are
    not sent, what arrived is kept, and the run ends inconclusive (exit 3)."""
    stale_after_hours: float = Field(default=36.0, gt=0)
    """A judge whose last conclusive drift check is older than this is *stale*: watched on
    paper only (``judgecal status``; exit 6 from a run that could not conclude either). Set
    it a little above the schedule's interval (36 hours for a nightly job)."""
    sample_share: float | None = Field(default=None, gt=0, le=1)
    """Replay only a rotating share of the set each night, e.g. ``0.25`` (a *sampled
    night*). The item ids, in natural order, are shuffled once by a permutation seeded by
    the set version and ``sample_seed``, and cut into ``ceil(1 / sample_share)`` blocks of
    equal size (± 1 item); night *k* replays block *k* mod blocks, *k* counting the
    judge's closed runs on this set version, so every item is replayed within that many
    nights and a killed night resumes with the same items. A night whose sample cannot rule
    out a drop of incident size (its interval of ± one standard error reaches
    ``drift.sev2_points``), or on which anything alarms, requests the rest of the set in the
    same run (*expanded*). A night without an accepted baseline replays the whole set.
    Unset (default): every night replays the whole set."""
    sample_cycle_nights: int | None = Field(default=None, ge=1)
    """The nights in which a sampled judge covers the whole set: the number of blocks
    (``sample_share`` 1 / this when only this is given; when both are given they must
    agree, ``ceil(1 / sample_share)``)."""
    sample_seed: int = 0
    """Seed of the sampling permutation (with the set version): change it to draw other
    blocks. Against one baseline keep it fixed — the evidence across nights knows which
    nights shared items only within one permutation."""

    @model_validator(mode="after")
    def _sample_cycle(self) -> RunSettings:
        share, cycle = self.sample_share, self.sample_cycle_nights
        if share is not None and cycle is not None and math.ceil(1 / share - 1e-9) != cycle:
            raise ValueError(
                f"run.sample_share {share:g} cuts the set into {math.ceil(1 / share - 1e-9)} "
                f"blocks, so every item is covered within {math.ceil(1 / share - 1e-9)} "
                f"nights, not run.sample_cycle_nights {cycle}: give one of them, or both "
                "agreeing")
        return self

    @property
    def sample_blocks(self) -> int | None:
        """Blocks of a sampled night (None: every night replays the whole set)."""
        if self.sample_share is not None:
            blocks = math.ceil(1 / self.sample_share - 1e-9)
        else:
            blocks = self.sample_cycle_nights or 1
        return blocks if blocks > 1 else None


class Price(_Strict):
    """What one model costs, per million tokens."""

    prompt_per_million: float = Field(ge=0)
    """Price of a million prompt (input) tokens."""
    completion_per_million: float = Field(ge=0)
    """Price of a million completion (output) tokens."""


class CostSettings(_Strict):
    """What runs cost, and the most a night may spend."""

    prices: dict[str, Price] = Field(default_factory=dict)
    """Price per model name, e.g. ``gpt-4o: {prompt_per_million: 2.5,
    completion_per_million: 10}``. A reply is priced by the model that served it when that
    name is listed, else by the judge's requested ``model``; a reply with neither listed (or
    without token counts) is counted as unpriced."""
    currency: str = Field(default="USD", min_length=1, max_length=12)
    """The unit of the prices, shown with every cost."""
    budget_per_night: float | None = Field(default=None, gt=0)
    """The most one night may cost (its run, and the reference runs of a replicated baseline
    taken that night, ``drift.baseline_replicates``). Before each request the run reserves
    its worst case (the rendered prompt at 2 characters per token, or the ratio seen so far,
    plus ``decoding.max_tokens``, times 1 + ``parse_retries``); a request that does not fit
    waits for the reservations in flight to settle, and one that would take the night past
    the budget even then is not sent: the run ends inconclusive (exit 3) with what it spent.
    Needs the judge's ``model`` in ``prices``."""


class DriftSettings(_Strict):
    """The drift rule: when a move of agreement against the baseline is a warning or an incident.

    Magnitudes are in points (100 × the change of the dimension's primary metric). A move
    counts only when its paired interval excludes 0 at the level set by ``confidence``,
    corrected across dimensions (Holm) and, on nights when nothing visible changed in the
    judge's fingerprint, across ``horizon_nights`` nights (see :mod:`judgecal.drift`).
    """

    warning_points: float = Field(default=1.0, gt=0)
    """A real move of at least this many points is a warning (recorded, exit 10)."""
    sev2_points: float = Field(default=4.0, gt=0)
    """A real drop of at least this many points opens a SEV2 incident (exit 20)."""
    sev0_points: float = Field(default=8.0, gt=0)
    """A real drop of at least this many points opens a SEV0 incident."""
    primary_metric: dict[str, str] = Field(default_factory=dict)
    """Metric the rule watches, by dimension name or scale kind (``{pairwise: accuracy}``).
    Default per scale: kappa (binary, nominal, pairwise; quadratic-weighted for ordinal),
    Krippendorff's alpha (interval)."""
    confidence: float = Field(default=0.98, gt=0.5, lt=1)
    """Family-wise confidence of one drift check (across its dimensions). The default, 0.98,
    leaves 0.02 of a 5 % false-alarm budget to the nightly rule and its watches and 0.03 to
    the sequential test (``sequential_alpha``): over ``horizon_nights`` healthy nights the
    chance of any false alarm is at most ``(1 − confidence) + sequential_alpha``."""
    horizon_nights: int = Field(default=30, ge=1)
    """Nights over which repeated checks against one baseline share the false-alarm budget
    when the fingerprint shows no new change."""
    sequential: bool = True
    """Also accumulate the nightly comparisons with the baseline across nights (an
    anytime-valid sequential test, :mod:`judgecal.stats.sequential`): a small persistent
    drop that no single night shows is found, with the night it began."""
    sequential_alpha: float = Field(default=0.03, gt=0, lt=0.5)
    """False-alarm level of the sequential test over all nights against one baseline (split
    across dimensions, Bonferroni)."""
    baseline_replicates: int = Field(default=1, ge=1, le=10)
    """Runs that make up the baseline for the sequential test: the accepted run and
    ``baseline_replicates − 1`` *reference runs* of the whole set, replayed by the nightly
    job right after the acceptance (or, after a manual ``baseline accept``, before the next
    night). Each is compared with the accepted run and added to the evidence as a reference:
    the nights are then compared with the mean of all of them, whose own noise is
    ``baseline_replicates`` times smaller, each night is weighed by the noise the reference
    runs showed rather than by its own spread (which a drop inflates), and no drop may begin
    on them. This is what lets
    a drop present from the first night be seen sooner (``docs/drift.md``); it costs
    ``baseline_replicates − 1`` extra replays per accepted baseline, or one when the judge
    repeats itself (a reference run with exactly the baseline's verdicts ends the
    replication). 1: the accepted run alone."""
    rises: Literal["notice", "warning", "incident"] = "warning"
    """What a real *rise* of agreement at least ``warning_points`` is: scores on either side
    of it are not comparable, so it is never passed over silently."""
    auto_baseline: bool = False
    """Accept the first healthy run of a judge on a set version as its baseline."""
    unscored_jump_points: float = Field(default=5.0, gt=0)
    """A real rise of the unparseable-reply rate of at least this many points is a warning."""
    distribution_shift_points: float = Field(default=5.0, gt=0)
    """A real shift of the judge's own score distribution on the same items (e.g. more
    lenient) of at least this many points is a warning."""
    worst_items: int = Field(default=20, ge=0, le=1000)
    """How many flipped items an incident keeps as evidence."""
    bootstrap: int | None = Field(default=None, ge=100)
    """Bootstrap resamples of the paired intervals (default: ``run.bootstrap``, at least 1000,
    so that a 95% percentile interval is resolved)."""

    @model_validator(mode="after")
    def _ordered(self) -> DriftSettings:
        if not self.warning_points <= self.sev2_points <= self.sev0_points:
            raise ValueError("thresholds must satisfy warning_points <= sev2_points <= sev0_points")
        if self.baseline_replicates > 1 and not self.sequential:
            raise ValueError("baseline_replicates > 1 needs sequential: true (the reference "
                             "runs only serve the evidence across nights)")
        return self


WebhookEvent = Literal[
    "incident", "warning", "notice", "recheck", "lifecycle", "judge_changed", "not_monitored",
    "stale",
]
DEFAULT_WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = (
    "incident", "warning", "lifecycle", "judge_changed", "not_monitored", "stale",
)


class WebhookSettings(_Strict):
    """A JSON POST for incidents and warnings, retried, never blocking the run's record."""

    url: str | None = None
    """Endpoint URL. Use ``url_env`` instead when the URL itself is a secret (Slack-style)."""
    url_env: str | None = None
    """Name of an environment variable holding the URL."""
    secret_env: str | None = None
    """Name of an environment variable holding an HMAC key: the body is then signed in the
    header ``X-Judgecal-Signature: sha256=<hex>``. The key is never stored."""
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    """Which events are sent."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one POST."""
    tries_per_run: int = Field(default=3, ge=1, le=10)
    """Attempts within one run (backoff 0.5 s, 1 s, 2 s ...) before waiting for a later run."""
    max_attempts: int = Field(default=30, ge=1)
    """Attempts in total before a notification is given up (kept, marked failed)."""

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSettings:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook needs exactly one of 'url' and 'url_env'")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError("the webhook url must start with http:// or https://")
        return self

    def resolved_url(self) -> str | None:
        """The URL, from the config or the environment (None when the variable is unset)."""
        return self.url if self.url is not None else os.environ.get(self.url_env or "")


class NotifySettings(_Strict):
    """Where a run reports beyond its exit code."""

    webhook: WebhookSettings | None = None
    """A JSON POST per event (see ``notify.webhook.*``)."""
    prometheus_textfile: Path | None = None
    """A ``.prom`` file for node_exporter's textfile collector, rewritten atomically after
    every run (latest agreement per judge/dimension, open incidents)."""


class RunConfig(_Strict):
    """A nightly job: which set, which judge, where results go."""

    store: str | None = None
    """SQLAlchemy URL of the run store. A relative SQLite path is relative to the config's
    folder; without ``store``, ``.judgecal/judgecal.db`` in the config's folder."""
    calibration_set: Path
    """Folder of the calibration set (or its ``set.yaml``), relative to the config's folder."""
    judge: JudgeConfig
    """The judge: inline (see ``judge.*``) or the path of a judge file."""
    run: RunSettings = Field(default_factory=RunSettings)
    """When a run is good enough to be judged (see ``run.*``)."""
    drift: DriftSettings = Field(default_factory=DriftSettings)
    """The drift rule (see ``drift.*``)."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    """Notifications beyond the exit code (see ``notify.*``)."""
    cost: CostSettings = Field(default_factory=CostSettings)
    """Token prices and the nightly budget (see ``cost.*``)."""
    score_source: dict[str, Any] | None = None
    """Production scores read in place from a warehouse table (``url``, ``table``,
    ``schema``, ``columns``, ``time_type``); checked by :mod:`judgecal.scores.source` when
    ``judgecal scores … --source CONFIG`` uses it."""
    source: Path | None = Field(default=None, exclude=True)
    """The file this config was read from (not a YAML key)."""

    @model_validator(mode="after")
    def _budget_priced(self) -> RunConfig:
        if self.cost.budget_per_night is not None and self.judge.model not in self.cost.prices:
            raise ValueError(
                f"cost.budget_per_night needs a price for the judge's model "
                f"'{self.judge.model}' in cost.prices (it has: "
                f"{', '.join(sorted(self.cost.prices)) or 'none'})")
        return self

    def secrets(self) -> list[str]:
        """Every secret this job knows (read from the environment, never stored): the judge's
        API key, the webhook URL and its token-like parts, the HMAC key, passwords in URLs.
        What an endpoint echoes of them is redacted before it is stored."""
        from judgecal.redact import url_secrets

        out = url_secrets(self.judge.base_url, whole=False) + url_secrets(self.store, whole=False)
        if self.judge.api_key_env:
            out.append(os.environ.get(self.judge.api_key_env, ""))
        hook = self.notify.webhook
        if hook is not None:
            out += url_secrets(hook.resolved_url())
            if hook.secret_env:
                out.append(os.environ.get(hook.secret_env, ""))
        return [s for s in out if s]


def locate(doc: YamlDocument, loc: tuple[Any, ...], message: str,
            text_line: int | None) -> tuple[int, str]:
    """The file line of ``loc``, or of line ``text_line`` of its text when the YAML lets it
    be mapped (else the message names the template's line)."""
    if text_line is not None:
        line = doc.line_in_text(loc, text_line)
        if line is not None:
            return line, message
        message += f" (line {text_line} of the template)"
    return doc.line_of(loc), message
