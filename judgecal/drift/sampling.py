"""Sampled nights: which items a night replays, and when it expands to the whole set.

A judge with ``run.sample_share`` (or ``run.sample_cycle_nights``) replays a rotating block of
its calibration set on a night that has an accepted baseline:

* **Blocks** — the item ids in natural order (item-2 before item-10; the first
  ``run.limit`` when set) are shuffled by a permutation seeded by the set version and
  ``run.sample_seed``, and cut into ``B = ceil(1 / sample_share)`` contiguous blocks of
  equal size (± 1 item).
* **Rotation** — night *k* replays block ``k mod B``, *k* the number of the judge's closed
  runs on this set version (a night that was killed is not closed: it resumes with the same
  items). Every item is replayed within ``B`` nights.
* **Expansion** — the sample is compared with the baseline as any night is (the items both
  scored). The night *expands* — the rest of the set is requested in the same run — unless
  the sample rules out a drop of incident size and nothing alarms: on every dimension the
  change, in its bad direction, minus one paired-bootstrap standard error stays above
  ``-drift.sev2_points``; the rule, the watches and the evidence across nights find nothing
  (warning or worse); and the night is no change event. An expanded night's verdict is the
  whole set's, like any full night's, so a sampled night can only alarm through the whole
  set or the evidence across nights (see ``docs/drift.md``).
* **Evidence across nights** — each comparison is added with its *cover* (which positions
  of the permutation it compared): the sample of a clear night; the sample and then the
  rest of an expanded night, as two comparisons, so the decision to expand (taken on the
  sample) never selects what the e-process sees (:func:`judgecal.stats.sequential.
  night_correlation` gives their correlation through the baseline).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from judgecal.calibration.model import natural_key
from judgecal.db import schema
from judgecal.drift.baselines import current_baseline
from judgecal.records import REJUDGE, RUNNING

if TYPE_CHECKING:
    from judgecal.config import DriftSettings, RunSettings
    from judgecal.drift.verdicts import DriftCheck
    from judgecal.store import Store

__all__ = [
    "EXPAND_SE",
    "SamplePlan",
    "blocks_of",
    "night_index",
    "permutation",
    "plan_night",
    "unclear_reason",
]

EXPAND_SE = 1.0
"""A sampled night is clear when, on every dimension, its change minus this many standard
errors stays above a drop of incident size (``drift.sev2_points``)."""


def permutation(item_ids: list[str], set_version: str, seed: int) -> list[str]:
    """The item ids (in natural order) shuffled by a permutation seeded by the set version
    and ``seed``: the same on every machine and every night."""
    import numpy as np

    ordered = sorted(item_ids, key=natural_key)
    digest = hashlib.sha256(f"judgecal-sample:{set_version}:{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return [ordered[i] for i in rng.permutation(len(ordered))]


def blocks_of(n: int, blocks: int) -> list[tuple[int, int]]:
    """``[start, end)`` positions of ``blocks`` contiguous blocks of ``n`` items (sizes equal
    ± 1, the larger first, as ``numpy.array_split``)."""
    size, extra = divmod(n, blocks)
    out, start = [], 0
    for k in range(blocks):
        end = start + size + (1 if k < extra else 0)
        out.append((start, end))
        start = end
    return out


def night_index(store: Store, judge_name: str, set_version: str) -> int:
    """Night *k* of a sampled judge: its closed runs on this set version (a killed night is
    not closed, so it resumes with the same block)."""
    r = schema.runs.c
    with store.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(schema.runs).where(and_(
                r.judge_name == judge_name, r.set_version == set_version,
                r.status != RUNNING, r.origin != REJUDGE))
        ).scalar()
    return int(count or 0)


@dataclass
class SamplePlan:
    """What a sampled night replays, and (once decided) whether it expanded."""

    set_version: str
    seed: int
    blocks: int
    block: int
    order: list[str]
    """The permuted item ids."""
    expanded: bool = False
    because: str | None = None
    """Why the night expanded to the whole set."""

    @property
    def span(self) -> tuple[int, int]:
        return blocks_of(len(self.order), self.blocks)[self.block]

    @property
    def items(self) -> list[str]:
        """Tonight's sample, in permutation order."""
        start, end = self.span
        return self.order[start:end]

    @property
    def key(self) -> str:
        return hashlib.sha256(
            f"{self.set_version}:{self.seed}:{len(self.order)}".encode()).hexdigest()[:16]

    def cover(self, rest: bool = False) -> dict[str, Any]:
        """The positions tonight's sample (or, ``rest``, the rest of the set) covers."""
        start, end = self.span
        n = len(self.order)
        spans = [[s, e] for s, e in ((0, start), (end, n)) if e > s] if rest else [[start, end]]
        return {"key": self.key, "n": n, "spans": spans}

    def only(self, dimensions: Collection[str]) -> Mapping[str, Collection[str]]:
        """``execute_run``'s ``only``: tonight's items, every judged dimension."""
        dims = tuple(dimensions)
        return {item_id: dims for item_id in self.items}

    def text(self) -> str:
        """``sampled 25% (250 of 1,000 items), block 2 of 4`` or ``expanded to the full set
        because …``."""
        n, k = len(self.order), len(self.items)
        sampled = (f"sampled {k / n:.0%} ({k:,} of {n:,} items), block {self.block + 1} of "
                   f"{self.blocks}")
        if self.expanded:
            return f"{sampled}; expanded to the full set because {self.because}"
        return sampled

    def to_json(self) -> dict[str, Any]:
        """The run summary's ``sampling`` (enough to rebuild the plan with the stored set)."""
        return {
            "share": len(self.items) / len(self.order),
            "items": len(self.items),
            "of": len(self.order),
            "blocks": self.blocks,
            "block": self.block,
            "seed": self.seed,
            "key": self.key,
            "expanded": self.expanded,
            "because": self.because,
            "text": self.text(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], set_version: str, item_ids: list[str]
                  ) -> SamplePlan:
        """The plan of a run from its summary's ``sampling`` and the set's item ids."""
        ids = item_ids[: int(data["of"])]
        return cls(set_version, int(data["seed"]), int(data["blocks"]), int(data["block"]),
                   permutation(ids, set_version, int(data["seed"])),
                   bool(data.get("expanded")), data.get("because"))


def plan_night(store: Store, judge_name: str, set_version: str, item_ids: list[str],
               run: RunSettings) -> SamplePlan | None:
    """Tonight's sample, or None when tonight replays the whole set (no sampling configured,
    or no accepted baseline on this set version yet: a baseline must be a whole run)."""
    blocks = run.sample_blocks
    if blocks is None or current_baseline(store, judge_name, set_version) is None:
        return None
    ids = item_ids[: run.limit] if run.limit else list(item_ids)
    if len(ids) < 2 * blocks:
        return None
    k = night_index(store, judge_name, set_version) % blocks
    return SamplePlan(set_version, run.sample_seed, blocks, k,
                      permutation(ids, set_version, run.sample_seed))


def unclear_reason(dimension: str, delta_points: float | None, se_points: float | None,
                   settings: DriftSettings) -> str | None:
    """Why a dimension's change on the sample cannot rule out a drop of incident size, or None.

    ``delta_points`` is the change in its bad direction (a drop is negative)."""
    if delta_points is None or se_points is None or se_points != se_points:
        return f"the change of {dimension} on the sample is undefined"
    low = delta_points - EXPAND_SE * se_points
    if low <= -settings.sev2_points:
        return (f"on the sample, {dimension} moved {delta_points:+.1f} points ± {se_points:.1f} "
                f"(one standard error), which cannot rule out a drop of "
                f"{settings.sev2_points:g} points or more (an incident)")
    return None


def screen(check: DriftCheck, settings: DriftSettings) -> str | None:
    """Why tonight's sample check (:func:`judgecal.drift.checks.check_sample`) is not clear,
    or None when it is: the night then stays sampled."""
    from judgecal import stats
    from judgecal.drift.verdicts import INCIDENT, WARNING

    if check.alarm_level is not None and check.alarm_level.kind == "change_event":
        return ("the fingerprint changed in a way no earlier night has seen (a change event is "
                "tested on the whole set)")
    if check.verdict in (INCIDENT, WARNING):
        return (f"the sample alone gives a {check.verdict} ({check.severity}); a verdict stands "
                "on the whole set")
    for e in check.dimensions:
        better = stats.METRICS[e["metric"]].higher_is_better
        delta = e.get("delta_points")
        if delta is not None:
            delta = float(delta) if better else (-float(delta) if better is False
                                                 else -abs(float(delta)))
        se = (e.get("sequential") or {}).get("se_points")
        why = unclear_reason(e["dimension"], delta, se, settings)
        if why is not None:
            return why
    return None
