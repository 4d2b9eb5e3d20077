"""What a run's replies add up to: its status and summary, and whether stored replies can be
used at all (a resume, an import)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from judgecal.judge.completion import token_count
from judgecal.judge.fingerprint import served_half
from judgecal.records import COMPLETED, FAILED, INCONCLUSIVE, SCORED, UNSCORED

__all__ = ["summarize_replies", "unusable_replies"]


def summarize_replies(
    replies: list[dict[str, Any]],
    n_expected: int,
    settings_max_unscored: float,
    min_items: int,
    stopped: str | None = None,
    requested_model: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Status and summary of a run from its stored replies.

    ``unscored_reasons`` counts the reason of every reply without a score, failed requests
    included (``transient_failure: …``). ``truncated`` counts the scored replies that were
    cut by ``max_tokens`` (``finish_reason`` ``"length"``): their verdict was read from the
    part that arrived. ``tokens`` are ``None`` when no reply reported a count (an endpoint
    without ``usage``), never 0; ``tokens.unknown`` counts replies without counts. With
    ``requested_model``, ``observed_fingerprint`` also says whether the served-model half
    is informative (:func:`judgecal.judge.fingerprint.served_half`).

    ``stopped`` says why the replay stopped before every request was answered (the run's
    deadline, an endpoint that failed everything): such a run is inconclusive whatever
    arrived. Token counts that are not counts (a store written by an older version, edited
    by hand) are left out of the totals rather than failing the summary.
    """
    counts = Counter(r["status"] for r in replies)
    reasons = Counter(r["unscored_reason"] for r in replies if r["status"] != SCORED)
    served = Counter(r["served_model"] for r in replies if r["served_model"])
    fingerprints = Counter(r["system_fingerprint"] for r in replies if r["system_fingerprint"])
    per_dim: dict[str, Counter[str]] = {}
    for r in replies:
        per_dim.setdefault(r["dimension"], Counter())[r["status"]] += 1
    missing = n_expected - len(replies)
    bad = counts[UNSCORED] + counts[FAILED] + max(missing, 0)
    rate = bad / n_expected if n_expected else 1.0
    problems = []
    if rate > settings_max_unscored:
        problems.append(f"{rate:.1%} of requests have no score (limit {settings_max_unscored:.0%})")
    for dim, c in per_dim.items():
        if c[SCORED] < min_items:
            problems.append(f"dimension '{dim}': only {c[SCORED]} scored items (need {min_items})")
    if not per_dim:
        problems.append("no replies")
    if stopped:
        problems.append(stopped)
    total = sum(served.values())
    observed: dict[str, Any] = {
        "served_models": {k: {"count": v, "share": v / total} for k, v in served.most_common()},
        "system_fingerprints": dict(fingerprints.most_common()),
    }
    if requested_model is not None:
        observed["informative"], observed["note"] = served_half(observed, requested_model)
    answered = [r for r in replies if r.get("raw_text") is not None or r["status"] == SCORED]
    prompt_counts = [token_count(r["prompt_tokens"]) for r in answered]
    completion_counts = [token_count(r["completion_tokens"]) for r in answered]
    summary = {
        "expected": n_expected,
        "scored": counts[SCORED],
        "unscored": counts[UNSCORED],
        "failed": counts[FAILED],
        "missing": max(missing, 0),
        "unscored_rate": rate,
        "unscored_reasons": dict(reasons.most_common()),
        "per_dimension": {d: dict(c) for d, c in per_dim.items()},
        "observed_fingerprint": observed,
        "inconclusive_because": problems,
        "truncated": sum(
            1 for r in replies if r["status"] == SCORED and r.get("finish_reason") == "length"
        ),
        "tokens": {
            "prompt": _total(prompt_counts),
            "completion": _total(completion_counts),
            "unknown": sum(1 for c in completion_counts if c is None),
        },
    }
    return (INCONCLUSIVE if problems else COMPLETED), summary


def _total(counts: list[int | None]) -> int | None:
    """The sum of the known counts; None when none is known (unknown is not 0)."""
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def unusable_replies(replies: list[dict[str, Any]]) -> str | None:
    """Why stored replies cannot be summarised or measured, or None when they can.

    Guards a resume: a reply written by an older version or edited by hand (a score that is
    text, an unknown status) must not make every later night fail on the same run.
    """
    for r in replies:
        where = f"reply {r.get('item_id')!r}/{r.get('dimension')!r}"
        if r.get("status") not in (SCORED, UNSCORED, FAILED):
            return f"{where} has the unknown status {str(r.get('status'))[:40]!r}"
        score = r.get("score")
        if r["status"] == SCORED and (
            isinstance(score, bool) or not isinstance(score, int | float) or score != score
        ):
            return f"{where} is scored but its score is {str(score)[:40]!r}"
        for name in ("prompt_tokens", "completion_tokens"):
            value = r.get(name)
            if value is not None and token_count(value) is None:
                return f"{where} has {name} {str(value)[:40]!r}, not a token count"
    return None
