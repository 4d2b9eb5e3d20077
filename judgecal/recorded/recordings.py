"""Recorded judge verdicts: finding them, loading them, matching a prompt to its item.

A *recording* is one real judge's verdicts on every item of a shipped calibration set,
stored under ``<sets_dir>/<set>/recorded/`` (see ``manifest.json`` there). It is named by
a spec string ``<set>:<name>``, e.g. ``pandalm:gpt-3.5-turbo`` or ``llmbar:GPT-4/Vanilla``.

Matching a prompt to an item (:meth:`Recording.resolve`):

1. Whitespace is normalised on both sides (every run of whitespace becomes one space,
   ends stripped), so a template that re-indents or re-wraps the texts still matches.
2. *Candidates* are the items all of whose non-empty text fields occur in the prompt.
   A precomputed index keyed by each item's longest field keeps this to one substring
   search per distinct long field instead of one per item and field.
3. A candidate whose every field is contained in the fields of another candidate is
   dropped (its texts are only there because they are part of the other item's).
4. The *orientation* of each candidate is read from where its two compared texts sit in
   the prompt (``response1``/``response2`` or ``output_1``/``output_2``): in a swapped
   prompt the second text comes first. Candidates shown in their own order are preferred
   over candidates shown swapped.
5. The request header ``X-Judgecal-Item-Id`` picks one of the candidates if it names one
   (checked first, so the usual request costs a handful of substring searches).
6. If the remaining candidates would all get the same reply text, it is served;
   otherwise the prompt is ambiguous.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgecal.errors import InputError, JudgecalError, Problem
from judgecal.shipped import SETS, find_data_root

__all__ = [
    "NO_VERDICT_REPLY",
    "AmbiguousPrompt",
    "ItemIndex",
    "Match",
    "MatchError",
    "NoRecordedItem",
    "NoRecordedVerdict",
    "Recording",
    "RecordingInfo",
    "Resolved",
    "find_recording",
    "list_recordings",
    "load_recording",
    "resolve_sets_dir",
]

SETS_DIR_ENV = "JUDGECAL_SETS_DIR"
MANIFEST = "manifest.json"

NO_VERDICT_REPLY = (
    "[judgecal recorded judge] The original judge reply to this item contained no "
    "parseable verdict; the source data kept only a marker, so there is nothing more to "
    "show."
)
"""Served where the recorded judge gave no usable verdict (PandaLM gpt-3.5 "garbage",
LLMBar empty winner). Deliberately free of digits and of "Output (a)/(b)"."""


class MatchError(JudgecalError):
    """A prompt could not be answered from the recording. ``code`` is the API error code."""

    code = "no_recorded_item"
    status = 404


class NoRecordedItem(MatchError):
    """No recorded item has all of its texts in the prompt."""


class NoRecordedVerdict(MatchError):
    """The prompt matches an item, but the recording has no verdict for how it is shown."""

    code = "no_recorded_verdict"


class AmbiguousPrompt(MatchError):
    """Several items match and their recorded replies differ."""

    code = "ambiguous_prompt"
    status = 409

    def __init__(self, message: str, candidates: Sequence[str]):
        super().__init__(message)
        self.candidates = list(candidates)


def resolve_sets_dir(sets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The calibration-sets root: the argument, else ``$JUDGECAL_SETS_DIR``, else
    ``./calibration_sets`` if there is one, else the shipped sets
    (:func:`judgecal.shipped.find_data_root`: the checkout's, else the installed package's)."""
    if sets_dir is None:
        sets_dir = os.environ.get(SETS_DIR_ENV) or None
    if sets_dir is not None:
        return Path(sets_dir)
    here = Path(SETS)
    if here.is_dir():
        return here
    root = find_data_root()
    return root / SETS if root is not None else here


def _norm(text: str) -> str:
    return " ".join(text.split())


def _text(value: Any) -> str:
    """An item field as a template renders it (the PandaLM file has a few JSON booleans)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class RecordingInfo:
    """What the manifest says about one recording (nothing is loaded yet)."""

    spec: str
    set_name: str
    name: str
    judge_model: str
    format: str
    rows: int
    counts: Mapping[str, int]
    path: Path
    set_dir: Path
    rating: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "set": self.set_name,
            "name": self.name,
            "judge_model": self.judge_model,
            "format": self.format,
            "rows": self.rows,
            "counts": dict(self.counts),
            "rating": self.rating,
        }


def _read_manifest(set_dir: Path) -> dict[str, Any] | None:
    path = set_dir / "recorded" / MANIFEST
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(Problem(file=str(path), message=f"cannot read manifest: {exc}")) from None
    return data


def list_recordings(sets_dir: str | os.PathLike[str] | None = None) -> list[RecordingInfo]:
    """Every recording under the calibration-sets root, sorted by spec."""
    root = resolve_sets_dir(sets_dir)
    if not root.is_dir():
        raise InputError(
            Problem(file=str(root), message="calibration sets directory does not exist "
                    f"(use --sets-dir or ${SETS_DIR_ENV})")
        )
    out: list[RecordingInfo] = []
    for set_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        manifest = _read_manifest(set_dir)
        if manifest is None:
            continue
        for rec in manifest.get("recordings", []):
            out.append(
                RecordingInfo(
                    spec=f"{set_dir.name}:{rec['name']}",
                    set_name=set_dir.name,
                    name=rec["name"],
                    judge_model=rec.get("judge_model", rec["name"]),
                    format=manifest["format"],
                    rows=int(rec.get("rows", 0)),
                    counts=dict(rec.get("counts", {})),
                    path=set_dir / "recorded" / rec["file"],
                    set_dir=set_dir,
                    rating=bool(rec.get("rating", False)),
                )
            )
    return sorted(out, key=lambda r: r.spec)


def find_recording(spec: str, sets_dir: str | os.PathLike[str] | None = None) -> RecordingInfo:
    """The manifest entry of ``spec`` (``<set>:<name>``); :class:`InputError` if unknown."""
    root = resolve_sets_dir(sets_dir)
    set_name, sep, name = spec.partition(":")
    if not sep or not set_name or not name:
        raise InputError(f"recording '{spec}': expected <set>:<name>, e.g. pandalm:gpt-3.5-turbo")
    available = list_recordings(root)
    for info in available:
        if info.spec == spec:
            return info
    same_set = [i.spec for i in available if i.set_name == set_name]
    hint = ", ".join(same_set or [i.spec for i in available][:8]) or "none"
    raise InputError(
        Problem(file=str(root), message=f"no recording '{spec}' (available: {hint}; "
                "see 'judgecal serve-recorded --list')")
    )


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Item:
    id: str
    order: int
    fields: tuple[str, ...]
    """Normalised non-empty match fields."""
    context: tuple[str, ...]
    """The non-empty match fields other than the two compared texts, longest first."""
    pair: tuple[str, str] | None
    """Normalised (first, second) compared texts, None if either is empty."""


@dataclass(frozen=True)
class Match:
    """An item found in a prompt, and whether the prompt shows its two texts swapped."""

    item_id: str
    swapped: bool
    coverage: int = 0
    """How many characters of the normalised prompt the item's texts account for."""


def _occurrences(haystack: str, needle: str) -> list[int]:
    out = []
    start = haystack.find(needle)
    while start >= 0:
        out.append(start)
        start = haystack.find(needle, start + 1)
    return out


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


class ItemIndex:
    """The items of one set, indexed for matching prompts."""

    def __init__(
        self,
        items: Sequence[Mapping[str, Any]],
        match_fields: Sequence[str],
        swap_fields: Sequence[str],
    ):
        self._items: dict[str, _Item] = {}
        self._by_anchor: dict[str, list[_Item]] = {}
        first, second = swap_fields
        for n, raw in enumerate(items):
            item_id = str(raw["id"])
            values = {k: _norm(_text(raw.get(k))) for k in match_fields}
            fields = tuple(v for v in values.values() if v)
            context = tuple(
                sorted((v for k, v in values.items() if v and k not in swap_fields),
                       key=len, reverse=True)
            )
            a, b = _norm(_text(raw.get(first))), _norm(_text(raw.get(second)))
            item = _Item(item_id, n, fields, context, (a, b) if a and b else None)
            self._items[item_id] = item
            if fields:
                anchor = max(fields, key=len)
                self._by_anchor.setdefault(anchor, []).append(item)
        # Longest anchors first: the search skips faster and they are the most selective.
        self._anchors = sorted(self._by_anchor, key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    @property
    def ids(self) -> list[str]:
        return list(self._items)

    def order(self, item_id: str) -> int:
        return self._items[item_id].order

    @staticmethod
    def normalise(prompt: str) -> str:
        return _norm(prompt)

    def _candidates(self, prompt: str) -> list[_Item]:
        found = []
        for anchor in self._anchors:
            if anchor in prompt:
                for item in self._by_anchor[anchor]:
                    if all(f in prompt for f in item.fields):
                        found.append(item)
        return found

    def contains(self, item_id: str, prompt: str) -> bool:
        """Whether every text of ``item_id`` occurs in the (normalised) prompt."""
        item = self._items.get(item_id)
        return item is not None and bool(item.fields) and all(f in prompt for f in item.fields)

    def place(self, item_id: str, prompt: str) -> Match | None:
        """Lay the item's texts out in the (normalised) prompt without overlaps.

        The fields other than the two compared texts are placed first, longest first,
        each at its first free occurrence (templates put the task before the texts they
        compare); then the longer compared text at its first free occurrence; then the
        free occurrence of the shorter one nearest to it. The prompt is *swapped* when the
        second text (``response2``/``output_2``) ends up first. None if some text has no
        free occurrence left, e.g. a response equal to the input that the prompt shows
        only once.
        """
        item = self._items.get(item_id)
        if item is None or not item.fields:
            return None
        taken: list[tuple[int, int]] = []

        def first_free(text: str) -> int | None:
            for s in _occurrences(prompt, text):
                if not _overlaps(s, s + len(text), taken):
                    taken.append((s, s + len(text)))
                    return s
            return None

        for f in item.context:
            if first_free(f) is None:
                return None
        if item.pair is None:
            for f in item.fields:
                if f not in item.context and first_free(f) is None:
                    return None
            return Match(item.id, False, sum(e - s for s, e in taken))
        a, b = item.pair
        a_is_long = len(a) >= len(b)
        long_, short = (a, b) if a_is_long else (b, a)
        long_pos = first_free(long_)
        if long_pos is None:
            return None
        long_end = long_pos + len(long_)
        best: tuple[int, int] | None = None  # (distance, start)
        for s in _occurrences(prompt, short):
            if _overlaps(s, s + len(short), taken):
                continue
            distance = long_pos - (s + len(short)) if s < long_pos else s - long_end
            if best is None or distance < best[0]:
                best = (distance, s)
        if best is None:
            return None
        taken.append((best[1], best[1] + len(short)))
        short_first = best[1] < long_pos
        swapped = a != b and (short_first if a_is_long else not short_first)
        return Match(item.id, swapped, sum(e - s for s, e in taken))

    def match(self, prompt: str) -> list[Match]:
        """The items a normalised prompt shows, after the rules in the module docstring."""
        placed = [m for m in (self.place(c.id, prompt) for c in self._candidates(prompt)) if m]
        if len(placed) > 1:
            # Drop an item whose texts all sit inside another's and that covers less of
            # the prompt: its texts are there only as parts of the other item's.
            placed = [
                m for m in placed
                if not any(
                    o.coverage > m.coverage
                    and _inside(self._items[m.item_id], self._items[o.item_id])
                    for o in placed
                )
            ]
        if any(not m.swapped for m in placed):
            placed = [m for m in placed if not m.swapped]
        return placed


def _inside(item: _Item, other: _Item) -> bool:
    """Every text of ``item`` is contained in some text of ``other``."""
    return all(any(f in g for g in other.fields) for f in item.fields)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Resolved:
    """The reply for one prompt."""

    item_id: str
    swapped: bool
    text: str
    has_verdict: bool
    candidates: tuple[str, ...] = field(default=())


def _fmt_score(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Recording:
    """One loaded recording: its rows and the index of its set's items."""

    def __init__(
        self, info: RecordingInfo, index: ItemIndex, rows: Mapping[str, Mapping[str, Any]]
    ):
        self.info = info
        self.index = index
        self._rows = rows

    @property
    def spec(self) -> str:
        return self.info.spec

    def reply(self, item_id: str, swapped: bool) -> tuple[str, bool] | None:
        """``(text, has_verdict)`` for an item shown in the given orientation, or None
        when the recording has no verdict for that orientation."""
        row = self._rows.get(item_id)
        if row is None:
            return None
        if self.info.format.startswith("pandalm"):
            if swapped:
                return None
            verdict = row.get("verdict")
            if verdict is None:
                return NO_VERDICT_REPLY, False
            reason = row.get("reason") or ""
            return f"{verdict}\n\nReason: {reason}".rstrip(), True
        if self.info.format.startswith("llmbar"):
            if self.info.rating:
                s1, s2 = row.get("score_1"), row.get("score_2")
                if s1 is None or s2 is None:
                    return NO_VERDICT_REPLY, False
                a, b = (s2, s1) if swapped else (s1, s2)
                return f"Output (a): {_fmt_score(a)}\nOutput (b): {_fmt_score(b)}", True
            winner = row.get("winner_swapped" if swapped else "winner")
            if winner not in (1, 2):
                return NO_VERDICT_REPLY, False
            # In a swapped prompt "Output (a)" is output_2; winners are in original terms.
            first_won = (winner == 1) != swapped
            return ("Output (a)" if first_won else "Output (b)"), True
        raise JudgecalError(f"recording {self.spec}: unknown format {self.info.format!r}")

    def rescored(self, resolved: Resolved, rng: random.Random) -> str:
        """The ``rescore`` fault: the verdict the judge recorded for another item, drawn at
        random, in the same orientation. A well-formed reply whose verdict is re-drawn from
        the judge's own verdicts, as a judge that does not repeat itself re-scores an item.
        The item's own reply when no other item has a verdict."""
        ids = self.index.ids
        for _ in range(16):
            other = ids[rng.randrange(len(ids))]
            if other == resolved.item_id:
                continue
            reply = self.reply(other, resolved.swapped)
            if reply is not None and reply[1]:
                return reply[0]
        return resolved.text

    def resolve(self, prompt: str, item_id_hint: str | None = None) -> Resolved:
        """The reply for a prompt (all message texts joined). Raises :class:`MatchError`."""
        text = _norm(prompt)
        hinted = (
            self.index.place(item_id_hint, text)
            if item_id_hint and self.index.contains(item_id_hint, text)
            else None
        )
        matches = [hinted] if hinted else self.index.match(text)
        if not matches:
            raise NoRecordedItem(
                f"no recorded item of set '{self.info.set_name}' has all of its texts in "
                "this prompt (recording " + self.spec + ")"
            )
        replies = [(m, self.reply(m.item_id, m.swapped)) for m in matches]
        answered = [(m, r) for m, r in replies if r is not None]
        ids = tuple(m.item_id for m in matches)
        if not answered:
            m = matches[0]
            raise NoRecordedVerdict(
                f"the prompt shows item {m.item_id} of set '{self.info.set_name}' with its "
                "two texts in swapped order; recording " + self.spec + " has no "
                "swapped-order verdicts"
            )
        texts = {r[0] for _, r in answered}
        if len(texts) > 1 or len(answered) < len(replies):
            shown = sorted(ids, key=self.index.order)
            raise AmbiguousPrompt(
                f"ambiguous: matches items {shown} of set '{self.info.set_name}' whose "
                f"recorded replies differ (recording {self.spec}); send the header "
                "X-Judgecal-Item-Id to pick one",
                shown,
            )
        m, (reply_text, has_verdict) = min(answered, key=lambda mr: self.index.order(mr[0].item_id))
        return Resolved(m.item_id, m.swapped, reply_text, has_verdict, ids)


# --------------------------------------------------------------------------- loading

_cache_lock = threading.Lock()
_index_cache: dict[tuple[Path, float], ItemIndex] = {}
_recording_cache: dict[tuple[Path, float, Path, float], Recording] = {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise InputError(Problem(file=str(path), line=n, message=str(exc))) from None
    return rows


def _load_index(set_dir: Path, manifest: Mapping[str, Any]) -> ItemIndex:
    items_path = (set_dir / "recorded" / manifest.get("items", "../items.jsonl")).resolve()
    if not items_path.is_file():
        raise InputError(
            Problem(file=str(items_path), message="items file of the recording is missing")
        )
    key = (items_path, items_path.stat().st_mtime)
    cached = _index_cache.get(key)
    if cached is None:
        cached = ItemIndex(
            _read_jsonl(items_path), manifest["match_fields"], manifest["swap_fields"]
        )
        _index_cache[key] = cached
    return cached


def load_recording(spec: str, sets_dir: str | os.PathLike[str] | None = None) -> Recording:
    """Load (or take from the process-wide cache) the recording named by ``spec``."""
    info = find_recording(spec, sets_dir)
    with _cache_lock:
        manifest = _read_manifest(info.set_dir) or {}
        index = _load_index(info.set_dir, manifest)
        path = info.path.resolve()
        if not path.is_file():
            raise InputError(Problem(file=str(path), message="recording file is missing"))
        items_path = (info.set_dir / "recorded" / manifest.get("items", "../items.jsonl")).resolve()
        key = (path, path.stat().st_mtime, items_path, items_path.stat().st_mtime)
        cached = _recording_cache.get(key)
        if cached is None:
            rows: dict[str, dict[str, Any]] = {}
            for n, row in enumerate(_read_jsonl(path), 1):
                item_id = str(row.get("id"))
                if item_id not in index:
                    raise InputError(
                        Problem(file=str(path), line=n, field="id",
                                message=f"item '{item_id}' is not in the set's items file")
                    )
                rows[item_id] = row
            cached = Recording(info, index, rows)
            _recording_cache[key] = cached
        return cached
