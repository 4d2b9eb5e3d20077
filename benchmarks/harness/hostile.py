"""Hostile input: malformed calibration sets, configs, imported judgments and score files.

The promise: *bad input gets one clear message naming the file, line and
field, exit 2, and nothing half-written.* Every attempt here copies a small valid input,
breaks it with one :class:`Mutation`, runs the real command in-process
(:func:`benchmarks.harness.sandbox.cli_in_process`) against a copy of a populated store,
and checks:

* the exit code is 2 — or, for a mutation that may leave the input valid (a truncation
  at a line end, a huge but legal field), 0 and a normal result;
* the message is *clear*: on stderr, names the broken file (or the config field), no
  traceback, no "unexpected" last-resort error, no raw SQL, at most 20 kB;
* the store is unchanged **row for row** (every table compared) when the input was refused.

The targets and their commands:

=========  ==================================================================
set        ``judgecal validate SET``, then ``judgecal run --config`` on it
config     ``judgecal run --config`` with a broken run config or judge file
import     ``judgecal runs import FILE --set … --judge … --model … --prompt …``
scores     ``judgecal scores ingest FILE --atomic``
=========  ==================================================================

The mutations are plain functions of a :class:`random.Random`, so the harness draws them
from a seed and the property tests draw them through hypothesis (``st.randoms()``), which
shrinks a failure to a small example.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness.sandbox import Row, cli_in_process, table_rows

REJECT = (2,)
EITHER = (0, 2)
MAX_MESSAGE = 20_000

TEMPLATE_PAYLOADS = (
    "{{ 7*7 }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "{{ config }}{{ self }}{{ rubric }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% raw %}{{ raw }}{% endraw %}",
    "{#",
    "}}{{",
    "${HOME} %(x)s {0} <script>alert(1)</script>",
)
"""Item texts that a template engine would evaluate if it treated item text as code."""


@dataclass
class Case:
    """A copy of the valid inputs in a scratch directory, ready to be broken."""

    root: Path
    set_dir: Path
    config: Path
    judge: Path
    judgments: Path
    scores: Path
    store_url: str


@dataclass
class Mutation:
    """What one mutation did: which file, how, and which exit codes are right for it."""

    name: str
    file: Path
    detail: str
    expected: tuple[int, ...] = REJECT
    names: tuple[str, ...] = ()
    """Texts of which one must appear in the message (default: the file's name)."""


MutationFn = Callable[[random.Random, Case], Mutation]


@dataclass
class Attempt:
    """One hostile input and what judgecal did with it."""

    target: str
    mutation: str
    detail: str
    expected: tuple[int, ...]
    exit_code: int
    message: str
    clear: bool
    store_unchanged: bool | None
    elapsed_s: float
    why: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.why

    def explain(self) -> str:
        return (f"{self.target}/{self.mutation} ({self.detail}): exit {self.exit_code}, "
                f"expected {self.expected}; {'; '.join(self.why)}\n{self.message[:2000]}")


# --------------------------------------------------------------------------- base inputs


def _write_base(root: Path) -> None:
    """The valid inputs every case starts from: a two-dimension set, a judge, files."""
    s = root / "set"
    s.mkdir(parents=True)
    (s / "set.yaml").write_text(
        "name: fuzz\n"
        "description: A tiny set for hostile-input tests.\n"
        "items: items.jsonl\n"
        "labels: labels.csv\n"
        "dimensions:\n"
        "  - name: preference\n"
        "    scale: {kind: pairwise, ties: true}\n"
        "  - name: fluency\n"
        "    scale: {kind: ordinal, min: 1, max: 5}\n",
        encoding="utf-8",
    )
    with (s / "items.jsonl").open("w", encoding="utf-8") as f:
        for i in range(30):
            f.write(json.dumps({"id": str(i), "instruction": f"Répondez à la question {i}.",
                                "input": "", "response1": f"réponse A {i}",
                                "response2": f"réponse B {i}"}, ensure_ascii=False) + "\n")
    with (s / "labels.csv").open("w", encoding="utf-8") as f:
        f.write("item_id,rater_id,dimension,label\n")
        for i in range(30):
            for r, rater in enumerate(("r1", "r2")):
                f.write(f"{i},{rater},preference,{(i + r) % 3}\n")
                f.write(f"{i},{rater},fluency,{1 + (i + r) % 5}\n")
    (root / "judge.yaml").write_text(yaml.safe_dump({
        "name": "fuzz-judge",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "max_retries": 0,
        "concurrency": 8,
        "timeout_s": 2,
        "prompts": {"preference": {
            "template": "Which is better?\n{{ instruction }}\n1: {{ response1 }}\n"
                        "2: {{ response2 }}",
            "parse": {"type": "regex", "pattern": "^([012])"},
        }},
    }, sort_keys=False, allow_unicode=True), encoding="utf-8")
    with (root / "judgments.jsonl").open("w", encoding="utf-8") as f:
        for i in range(30):
            f.write(json.dumps({"item_id": str(i), "dimension": "preference",
                                "score": (i % 3), "raw": f"{i % 3}\nbecause"}) + "\n")
    with (root / "scores.csv").open("w", encoding="utf-8") as f:
        f.write("score_id,scored_at,judge,fingerprint,dimension,score,customer,segment\n")
        for i in range(50):
            f.write(f"s{i},2026-03-{1 + i % 28:02d}T12:00:00Z,fuzz-judge,fp1,preference,"
                    f"{i % 3},cust{i % 4},seg{i % 2}\n")


def _write_config(root: Path, store_url: str) -> Path:
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump({
        "store": store_url,
        "calibration_set": str(root / "set"),
        "judge": str(root / "judge.yaml"),
        "run": {"bootstrap": 0, "min_items": 5},
    }, sort_keys=False), encoding="utf-8")
    return path


class HostileInputs:
    """Valid inputs and a populated store, copied for every attempt.

    The base store holds one imported run and 50 production scores, so "unchanged row for
    row" compares real rows, not an empty schema.
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.base = workdir / "base"
        if self.base.exists():
            shutil.rmtree(self.base)
        _write_base(self.base)
        self.store_path = self.base / "store.db"
        url = f"sqlite:///{self.store_path}"
        for args in (
            ["--store", url, "runs", "import", str(self.base / "judgments.jsonl"),
             "--set", str(self.base / "set"), "--judge", "imported", "--model", "m",
             "--prompt", "p"],
            ["--store", url, "scores", "ingest", str(self.base / "scores.csv")],
            ["validate", str(self.base / "set")],
        ):
            code, _out, err = cli_in_process(args)
            if code != 0:
                raise RuntimeError(f"the valid base input was refused ({args[2:4]}): {err}")
        self.snapshot = table_rows(url)
        self._counter = 0

    def case(self) -> Case:
        """A fresh scratch copy of the inputs and of the store."""
        self._counter += 1
        # Same-length paths for every case: the mutations' random draws depend on file
        # sizes, and hypothesis replays a draw only with the same bounds.
        root = Path(tempfile.mkdtemp(prefix=f"case{self._counter:06d}-", dir=self.workdir))
        for name in ("set",):
            shutil.copytree(self.base / name, root / name)
        for name in ("judge.yaml", "judgments.jsonl", "scores.csv"):
            shutil.copy2(self.base / name, root / name)
        shutil.copy2(self.store_path, root / "store.db")
        url = f"sqlite:///{root / 'store.db'}"
        return Case(root, root / "set", _write_config(root, url), root / "judge.yaml",
                    root / "judgments.jsonl", root / "scores.csv", url)

    def attempt(self, target: str, mutate: MutationFn, rng: random.Random) -> Attempt:
        """Break one input with ``mutate`` and run the target's command on it."""
        case = self.case()
        try:
            m = mutate(rng, case)
            return self._run(target, m, case)
        finally:
            shutil.rmtree(case.root, ignore_errors=True)

    def _run(self, target: str, m: Mutation, case: Case) -> Attempt:
        started = time.perf_counter()
        store_args = ["--store", case.store_url]
        if target == "set":
            code, out, err = cli_in_process(["validate", str(case.set_dir)])
            if code == 2:
                code2, _out2, err2 = cli_in_process(["run", "--config", str(case.config)])
                if code2 != 2:
                    code, err = code2, f"validate refused the set but run exited {code2}:\n{err2}"
        elif target == "config":
            code, out, err = cli_in_process(["run", "--config", str(case.config)])
        elif target == "import":
            code, out, err = cli_in_process([
                *store_args, "runs", "import", str(m.file), "--set", str(case.set_dir),
                "--judge", "imported-2", "--model", "m", "--prompt", "p"])
        elif target == "scores":
            code, out, err = cli_in_process([*store_args, "scores", "ingest", str(m.file),
                                             "--atomic"])
        else:
            raise ValueError(f"unknown target {target!r}")
        elapsed = time.perf_counter() - started
        message = err.strip()
        attempt = Attempt(target, m.name, m.detail, m.expected, code, message, True, None,
                          elapsed)
        if code not in m.expected:
            attempt.why.append(f"exit {code}, expected {' or '.join(map(str, m.expected))}")
        if code == 2:
            attempt.clear = _clear(message, m)
            if not attempt.clear:
                attempt.why.append("the message is not clear (see it below)")
            attempt.store_unchanged = table_rows(case.store_url) == self.snapshot
            if not attempt.store_unchanged:
                attempt.why.append("the store changed although the input was refused")
        for marker in ("Traceback", "Error: unexpected ", "JUDGECAL_RAISE_ERRORS", "sqlalche.me"):
            if marker in err or marker in out:
                attempt.why.append(f"output contains {marker.strip()!r}")
                attempt.clear = False
        return attempt


def _clear(message: str, m: Mutation) -> bool:
    if not message or len(message) > MAX_MESSAGE:
        return False
    if not message.startswith(("Error", "Usage", "bad row")) and "Error:" not in message:
        return False
    names = m.names or (m.file.name,)
    return any(n in message for n in names)


# --------------------------------------------------------------------------- generic mutations


def _read(p: Path) -> bytes:
    return p.read_bytes()


def truncate(rng: random.Random, path: Path) -> str:
    data = _read(path)
    cut = rng.randrange(1, max(2, len(data)))
    path.write_bytes(data[:cut])
    return f"cut at byte {cut} of {len(data)}"


def reencode(rng: random.Random, path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    how = rng.choice(("utf-16", "latin-1", "bad-bytes", "cp1252"))
    if how == "bad-bytes":
        data = bytearray(text.encode("utf-8"))
        pos = rng.randrange(0, len(data))
        junk = rng.choice((b"\xff", b"\xc3(", b"\x80\x80", b"\xed\xa0\x80", b"\xf8\x88\x80"))
        data[pos:pos] = junk
        path.write_bytes(bytes(data))
        return f"invalid UTF-8 {junk!r} at byte {pos}"
    if "é" not in text:
        text = text.replace("e", "é", 1)
    path.write_bytes(text.encode(how, errors="replace"))
    return f"saved as {how}"


def garbage(rng: random.Random, path: Path) -> str:
    n = rng.randrange(1, 4096)
    path.write_bytes(rng.randbytes(n))
    return f"{n} random bytes"


def empty(rng: random.Random, path: Path) -> str:
    path.write_bytes(rng.choice((b"", b"\n", b"   \n\n", b"\xef\xbb\xbf")))
    return "empty"


def _edit_line(rng: random.Random, path: Path, edit: Callable[[str], str],
               skip_header: bool = False) -> str:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = 1 if skip_header else 0
    i = rng.randrange(start, len(lines))
    lines[i] = edit(lines[i].rstrip("\n")) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return f"line {i + 1}"


def _weird_word(rng: random.Random) -> str:
    return rng.choice(("fluncy", "Preference", "safety", "preference_", "ünknown", "0",
                       "x" * rng.randrange(1, 300), "\u200bpreference"))


def _off_scale(rng: random.Random) -> str:
    return rng.choice(("7", "-1", "2.5", "maybe", "6", "0.5", "1e3", "'1'", "[1]", "true"))


def _non_finite(rng: random.Random) -> str:
    return rng.choice(("nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e400"))


# --------------------------------------------------------------------------- set mutations


def _labels_edit(rng: random.Random, case: Case, column: int, value: str, name: str,
                 expected: tuple[int, ...] = REJECT) -> Mutation:
    path = case.set_dir / "labels.csv"

    def edit(line: str) -> str:
        cells = line.split(",")
        cells[column] = value
        return ",".join(cells)

    where = _edit_line(rng, path, edit, skip_header=True)
    return Mutation(name, path, f"{where}: {value[:40]!r}", expected)


def _items_rows(case: Case) -> list[dict[str, Any]]:
    p = case.set_dir / "items.jsonl"
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]


def _write_items(case: Case, rows: list[Any]) -> Path:
    p = case.set_dir / "items.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                 encoding="utf-8")
    return p


def set_truncate(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / rng.choice(("set.yaml", "items.jsonl", "labels.csv"))
    return Mutation("truncated file", path, truncate(rng, path), EITHER)


def set_encoding(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / rng.choice(("set.yaml", "items.jsonl", "labels.csv"))
    return Mutation("wrong encoding", path, reencode(rng, path))


def set_garbage(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / rng.choice(("set.yaml", "items.jsonl", "labels.csv"))
    if rng.random() < 0.5:
        return Mutation("empty file", path, empty(rng, path))
    return Mutation("binary garbage", path, garbage(rng, path))


def set_missing_file(rng: random.Random, case: Case) -> Mutation:
    name = rng.choice(("set.yaml", "items.jsonl", "labels.csv"))
    path = case.set_dir / name
    if rng.random() < 0.5:
        path.unlink()
        detail = "deleted"
    else:
        path.unlink()
        path.mkdir()
        detail = "a directory instead"
    return Mutation("missing file", path, f"{name} {detail}")


def set_unknown_dimension(rng: random.Random, case: Case) -> Mutation:
    return _labels_edit(rng, case, 2, _weird_word(rng), "unknown dimension")


def set_off_scale(rng: random.Random, case: Case) -> Mutation:
    return _labels_edit(rng, case, 3, _off_scale(rng), "label off-scale")


def set_non_finite(rng: random.Random, case: Case) -> Mutation:
    return _labels_edit(rng, case, 3, _non_finite(rng), "NaN/inf label")


def set_unknown_item(rng: random.Random, case: Case) -> Mutation:
    return _labels_edit(rng, case, 0, rng.choice(("999", "x", "0.5", "01")), "unknown item")


def set_ragged_row(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / "labels.csv"
    where = _edit_line(rng, path, lambda line: line.rsplit(",", rng.randrange(1, 3))[0],
                       skip_header=True)
    return Mutation("ragged CSV row", path, where)


def set_duplicate_id(rng: random.Random, case: Case) -> Mutation:
    rows = _items_rows(case)
    dup = dict(rng.choice(rows))
    dup["instruction"] = "a different text under the same id"
    rows.insert(rng.randrange(0, len(rows) + 1), dup)
    return Mutation("duplicate item id", _write_items(case, rows), f"id {dup['id']!r} twice")


def set_duplicate_label(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / "labels.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    line = rng.choice(lines[1:])
    if rng.random() < 0.5:  # the same rater, another value
        cells = line.split(",")
        cells[3] = "1" if cells[3] != "1" else "2"
        line = ",".join(cells)
    lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Mutation("duplicate label", path, line)


def set_bad_id(rng: random.Random, case: Case) -> Mutation:
    rows = _items_rows(case)
    i = rng.randrange(len(rows))
    bad: Any = rng.choice(([1, 2], {"a": 1}, None, "", "   ", 1.5e300, float("nan")))
    rows[i]["id"] = bad
    path = case.set_dir / "items.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return Mutation("bad item id", path, f"id {bad!r}")


def set_huge_id(rng: random.Random, case: Case) -> Mutation:
    rows = _items_rows(case)
    i = rng.randrange(len(rows))
    n = rng.randrange(201, 20_000)
    new = "L" * n
    old = rows[i]["id"]
    rows[i]["id"] = new
    _write_items(case, rows)
    labels = case.set_dir / "labels.csv"
    text = labels.read_text(encoding="utf-8").replace(f"\n{old},", f"\n{new},")
    labels.write_text(text, encoding="utf-8")
    return Mutation("huge item id", case.set_dir / "items.jsonl", f"{n} characters")


def set_huge_field(rng: random.Random, case: Case) -> Mutation:
    rows = _items_rows(case)
    i = rng.randrange(len(rows))
    n = rng.choice((100_000, 1_000_000, 4_000_000))
    rows[i][rng.choice(("instruction", "response1", "extra"))] = rng.choice("xé☃") * n
    return Mutation("huge field", _write_items(case, rows), f"{n:,} characters", (0,))


def set_deep_nesting(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / "items.jsonl"
    depth = rng.choice((2_000, 50_000, 200_000))
    opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
    line = '{"id": "deep", "instruction": ' + opener * depth + "1" + closer * depth + "}\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
    return Mutation("deeply nested JSON", path, f"depth {depth}", EITHER)


def set_template_injection(rng: random.Random, case: Case) -> Mutation:
    rows = _items_rows(case)
    payload = rng.choice(TEMPLATE_PAYLOADS)
    for r in rows[: rng.randrange(1, len(rows))]:
        r[rng.choice(("instruction", "response1", "response2", "input"))] = payload
    return Mutation("template injection in item text", _write_items(case, rows), payload,
                    (0,))


def set_yaml_attack(rng: random.Random, case: Case) -> Mutation:
    path = case.set_dir / "set.yaml"
    text = path.read_text(encoding="utf-8")
    kind = rng.choice(("alias bomb", "unknown setting", "duplicate setting", "bad scale",
                       "python tag", "duplicate dimension", "not a mapping"))
    if kind == "alias bomb":
        levels = rng.randrange(3, 6)
        bomb = 'l0: &l0 ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
            f"l{k}: &l{k} [{','.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, levels))
        text = text.replace("dimensions:", bomb + "dimensions:")
    elif kind == "unknown setting":
        text += rng.choice(("segmnets: [x]\n", "dimensons: []\n", "extra: 1\n"))
    elif kind == "duplicate setting":
        text += "items: other.jsonl\n"
    elif kind == "bad scale":
        text = text.replace("{kind: ordinal, min: 1, max: 5}", rng.choice((
            "{kind: ordinal, min: 5, max: 1}", "{kind: ordinal}", "{kind: likert, min: 1}",
            "{kind: ordinal, min: .nan, max: 5}", "{kind: pairwise, ties: maybe}")))
    elif kind == "python tag":
        text = text.replace("name: fuzz", "name: !!python/object/apply:os.system ['true']")
    elif kind == "duplicate dimension":
        text = text.replace("  - name: fluency", "  - name: preference")
    else:
        text = rng.choice(("- a\n- b\n", "just a string\n", "42\n", "~\n"))
    path.write_text(text, encoding="utf-8")
    return Mutation("hostile set.yaml", path, kind)


SET_MUTATIONS: tuple[MutationFn, ...] = (
    set_truncate, set_encoding, set_garbage, set_missing_file, set_unknown_dimension,
    set_off_scale, set_non_finite, set_unknown_item, set_ragged_row, set_duplicate_id,
    set_duplicate_label, set_bad_id, set_huge_id, set_huge_field, set_deep_nesting,
    set_template_injection, set_yaml_attack,
)


# --------------------------------------------------------------------------- config mutations


def _judge_data(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(case.judge.read_text(encoding="utf-8"))
    return data


def _write_judge(case: Case, data: dict[str, Any]) -> None:
    case.judge.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                          encoding="utf-8")


def config_truncate(rng: random.Random, case: Case) -> Mutation:
    path = rng.choice((case.config, case.judge))
    # Either refused, or (cut after the last required key) a normal run: exit 0 or 3. A
    # cut run config may name another file (``judge: /``): the message then names that one.
    return Mutation("truncated file", path, truncate(rng, path), (0, 2, 3),
                    names=(path.name, "") if path == case.config else ())


def config_encoding(rng: random.Random, case: Case) -> Mutation:
    path = rng.choice((case.config, case.judge))
    if path == case.config:  # give the run config a non-ASCII character to mangle
        path.write_text(path.read_text(encoding="utf-8") + "# café\n", encoding="utf-8")
    return Mutation("wrong encoding", path, reencode(rng, path))


def config_garbage(rng: random.Random, case: Case) -> Mutation:
    path = rng.choice((case.config, case.judge))
    if rng.random() < 0.5:
        return Mutation("empty file", path, empty(rng, path))
    return Mutation("binary garbage", path, garbage(rng, path))


def config_bad_value(rng: random.Random, case: Case) -> Mutation:
    data = _judge_data(case)
    key, value = rng.choice((
        ("concurrency", "many"), ("concurrency", -3), ("concurrency", 10**9),
        ("timeout_s", float("nan")), ("timeout_s", 0), ("max_retries", 1.5),
        ("base_url", "ftp://example.com"), ("base_url", "127.0.0.1:8000"),
        ("name", "has spaces and / slashes"), ("name", ""), ("model", None),
        ("decoding", {"temperature": float("nan")}), ("decoding", {"temperature": 9}),
        ("decoding", {"top_p": float("inf")}), ("decoding", {"max_tokens": 0}),
        ("concurency", 4), ("prompts", {}), ("prompts", []), ("parse_retries", -1),
    ))
    data[key] = value
    _write_judge(case, data)
    return Mutation("bad judge setting", case.judge, f"{key}: {value!r}",
                    names=(case.judge.name,))


def config_bad_run_setting(rng: random.Random, case: Case) -> Mutation:
    data = yaml.safe_load(case.config.read_text(encoding="utf-8"))
    key, value = rng.choice((
        ("max_unscored_rate", float("nan")), ("max_unscored_rate", float("inf")),
        ("max_unscored_rate", -0.1), ("min_items", 0), ("limit", -5), ("bootstrap", "lots"),
        ("seed", "x"), ("sead", 1),
    ))
    data.setdefault("run", {})[key] = value
    if rng.random() < 0.3:
        data["calibration_set"] = rng.choice(("/nonexistent/set", str(case.root / "nope")))
        key, value = "calibration_set", data["calibration_set"]
    case.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Mutation("bad run setting", case.config, f"{key}: {value!r}")


def config_judge_path(rng: random.Random, case: Case) -> Mutation:
    data = yaml.safe_load(case.config.read_text(encoding="utf-8"))
    data["judge"] = rng.choice((str(case.root / "missing.yaml"), str(case.root),
                                str(case.set_dir / "labels.csv")))
    case.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Mutation("bad judge file", case.config, f"judge: {data['judge']}",
                    names=(Path(data["judge"]).name, case.config.name))


def config_template(rng: random.Random, case: Case) -> Mutation:
    data = _judge_data(case)
    template = rng.choice((
        "{{ instruction ", "{% for x in %}", "{{ no_such_field }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ response1.__class__ }}",
        "{{ cycler.__init__.__globals__ }}", "{{ [].append(1) }}", "{{ 1/0 }}",
        "{% for i in range(10**9) %}{% endfor %}", "{{ instruction|int + 'x' }}",
        "{{ lipsum.__globals__['os'] }}", "{% include 'x' %}", "{% extends 'base' %}",
    ))
    target = rng.choice(("template", "system"))
    data["prompts"]["preference"][target] = template
    _write_judge(case, data)
    return Mutation("hostile template", case.judge, f"{target}: {template}",
                    names=(case.judge.name, "prompts.preference", "fuzz-judge"))


def config_parse_rule(rng: random.Random, case: Case) -> Mutation:
    data = _judge_data(case)
    rule = rng.choice(({"type": "regex", "pattern": "(["}, {"type": "regex", "pattern": "x"},
                       {"type": "regex"}, {"type": "json"}, {"type": "xml", "field": "a"},
                       {"type": "regex", "pattern": "(a)", "group": 5, "match": "middle"}))
    data["prompts"]["preference"]["parse"] = rule
    _write_judge(case, data)
    return Mutation("bad parse rule", case.judge, json.dumps(rule), names=(case.judge.name,))


def config_dimension(rng: random.Random, case: Case) -> Mutation:
    data = _judge_data(case)
    prompts = data["prompts"]
    kind = rng.choice(("unknown dimension", "swap without fields"))
    if kind == "unknown dimension":
        prompts[rng.choice(("fluncy", "safety", "Preference"))] = prompts.pop("preference")
    else:
        data["swap_order"] = True
    _write_judge(case, data)
    return Mutation("judge/set mismatch", case.judge, kind,
                    names=(case.judge.name, "judge.prompts", "fuzz-judge", "prompts."))


CONFIG_MUTATIONS: tuple[MutationFn, ...] = (
    config_truncate, config_encoding, config_garbage, config_bad_value,
    config_bad_run_setting, config_judge_path, config_template, config_parse_rule,
    config_dimension,
)


# --------------------------------------------------------------------------- imported judgments


def _judgment_rows(case: Case) -> list[dict[str, Any]]:
    text = case.judgments.read_text(encoding="utf-8")
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def _write_judgments(case: Case, rows: list[Any]) -> Path:
    case.judgments.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                              encoding="utf-8")
    return case.judgments


def import_truncate(rng: random.Random, case: Case) -> Mutation:
    return Mutation("truncated file", case.judgments, truncate(rng, case.judgments), EITHER)


def import_encoding(rng: random.Random, case: Case) -> Mutation:
    rows = _judgment_rows(case)
    rows[0]["raw"] = "réponse"
    _write_judgments(case, rows)
    return Mutation("wrong encoding", case.judgments, reencode(rng, case.judgments))


def import_garbage(rng: random.Random, case: Case) -> Mutation:
    if rng.random() < 0.5:
        return Mutation("empty file", case.judgments, empty(rng, case.judgments))
    return Mutation("binary garbage", case.judgments, garbage(rng, case.judgments))


def import_bad_row(rng: random.Random, case: Case) -> Mutation:
    rows: list[Any] = _judgment_rows(case)
    i = rng.randrange(len(rows))
    kind = rng.choice(("unknown dimension", "unknown item", "off-scale", "non-finite",
                       "duplicate", "missing column", "wrong type", "not an object"))
    detail = kind
    if kind == "unknown dimension":
        rows[i]["dimension"] = _weird_word(rng)
    elif kind == "unknown item":
        rows[i]["item_id"] = rng.choice(("999", "x", "0.5"))
    elif kind == "off-scale":
        rows[i]["score"] = rng.choice((3, -1, 7, 1.5, "maybe", "0.2", "1e999"))
    elif kind == "non-finite":
        rows[i]["score"] = rng.choice((float("nan"), float("inf"), float("-inf"), "NaN", "inf"))
    elif kind == "duplicate":
        rows.insert(rng.randrange(len(rows)), dict(rows[i], score=(rows[i]["score"] + 1) % 3))
    elif kind == "missing column":
        for r in rows if rng.random() < 0.5 else [rows[i]]:
            r.pop(rng.choice(("item_id", "dimension", "score")), None)
    elif kind == "wrong type":
        rows[i][rng.choice(("item_id", "dimension", "score"))] = rng.choice(([1], {"a": 1}))
    else:
        rows[i] = rng.choice(([1, 2], "text", 3))
    _write_judgments(case, rows)
    return Mutation("bad judgment row", case.judgments, f"{detail} (row {i + 1})")


def import_huge_raw(rng: random.Random, case: Case) -> Mutation:
    rows = _judgment_rows(case)
    n = rng.choice((100_000, 2_000_000))
    rows[rng.randrange(len(rows))]["raw"] = "y" * n
    return Mutation("huge field", _write_judgments(case, rows), f"raw of {n:,} characters",
                    (0,))


IMPORT_MUTATIONS: tuple[MutationFn, ...] = (
    import_truncate, import_encoding, import_garbage, import_bad_row, import_huge_raw,
)


# --------------------------------------------------------------------------- score files


def scores_truncate(rng: random.Random, case: Case) -> Mutation:
    return Mutation("truncated file", case.scores, truncate(rng, case.scores), EITHER)


def scores_encoding(rng: random.Random, case: Case) -> Mutation:
    text = case.scores.read_text(encoding="utf-8").replace("cust1", "cüst1")
    case.scores.write_text(text, encoding="utf-8")
    return Mutation("wrong encoding", case.scores, reencode(rng, case.scores))


def scores_garbage(rng: random.Random, case: Case) -> Mutation:
    if rng.random() < 0.5:
        return Mutation("empty file", case.scores, empty(rng, case.scores))
    return Mutation("binary garbage", case.scores, garbage(rng, case.scores))


def scores_bad_row(rng: random.Random, case: Case) -> Mutation:
    kind, column, value = rng.choice((
        ("bad time", 1, "yesterday"), ("bad time", 1, "2026-13-45T99:00:00Z"),
        ("bad time", 1, ""), ("non-finite", 5, "nan"), ("non-finite", 5, "inf"),
        ("non-finite", 5, "-Infinity"), ("not a number", 5, "high"), ("no id", 0, ""),
        ("no judge", 2, ""), ("huge id", 0, "S" * 5000), ("huge judge", 2, "J" * 500),
        ("no dimension", 4, ""),
    ))

    def edit(line: str) -> str:
        cells = line.split(",")
        cells[column] = value
        return ",".join(cells)

    where = _edit_line(rng, case.scores, edit, skip_header=True)
    # A long id is legal on SQLite (its TEXT has no width); what PostgreSQL does with it is
    # for the PostgreSQL tests.
    expected = EITHER if kind.startswith("huge") else REJECT
    return Mutation("bad score row", case.scores, f"{kind}, {where}", expected,
                    names=(case.scores.name, "bad row"))


def scores_missing_column(rng: random.Random, case: Case) -> Mutation:
    lines = case.scores.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    drop = rng.choice(("score_id", "scored_at", "judge", "dimension", "score"))
    k = header.index(drop)
    lines = [",".join(c for j, c in enumerate(line.split(",")) if j != k) for line in lines]
    case.scores.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Mutation("missing column", case.scores, drop)


SCORE_MUTATIONS: tuple[MutationFn, ...] = (
    scores_truncate, scores_encoding, scores_garbage, scores_bad_row, scores_missing_column,
)

TARGETS: dict[str, tuple[MutationFn, ...]] = {
    "set": SET_MUTATIONS,
    "config": CONFIG_MUTATIONS,
    "import": IMPORT_MUTATIONS,
    "scores": SCORE_MUTATIONS,
}


# --------------------------------------------------------------------------- the campaign


@dataclass
class HostileReport:
    attempts: list[Attempt] = field(default_factory=list)

    def rows(self) -> list[Row]:
        a = self.attempts
        refused = [x for x in a if x.exit_code == 2]
        by_target = Counter(x.target for x in a)
        kinds = len({(x.target, x.mutation) for x in a})
        failures = [x for x in a if not x.ok]
        wrong_exit = [x for x in a if x.exit_code not in x.expected]
        unclear = [x for x in refused if not x.clear]
        changed = [x for x in refused if x.store_unchanged is False]
        crashes = [x for x in a if any("Traceback" in w or "unexpected" in w for w in x.why)]
        slowest = max(a, key=lambda x: x.elapsed_s) if a else None
        examples = "; ".join(f"{x.target}/{x.mutation}: {x.why[0]}" for x in failures[:3])
        return [
            Row("hostile", "bad inputs tried",
                f"{len(a)} ({', '.join(f'{n} {t}' for t, n in by_target.items())})",
                bool(a), f"{kinds} kinds of damage; slowest {slowest.elapsed_s:.1f} s "
                f"({slowest.target}/{slowest.mutation})" if slowest else ""),
            Row("hostile", "exit code right (2 when refused, never 1 or a crash)",
                f"{len(a) - len(wrong_exit)}/{len(a)}", not wrong_exit,
                examples if wrong_exit else f"{len(refused)} refused with exit 2"),
            Row("hostile", "one clear message naming the file, no traceback",
                f"{len(refused) - len(unclear)}/{len(refused)}", not unclear and not crashes),
            Row("hostile", "store unchanged row for row when refused",
                f"{len(refused) - len(changed)}/{len(refused)}", not changed),
        ]


def campaign(workdir: Path, *, per_kind: int = 3, seed: int = 0,
             targets: tuple[str, ...] = tuple(TARGETS)) -> HostileReport:
    """Try every mutation of every target ``per_kind`` times with seeded randomness."""
    inputs = HostileInputs(workdir)
    report = HostileReport()
    for target in targets:
        for k, mutate in enumerate(TARGETS[target]):
            for i in range(per_kind):
                rng = random.Random(f"{seed}:{target}:{k}:{i}")
                report.attempts.append(inputs.attempt(target, mutate, rng))
    return report


__all__ = [
    "CONFIG_MUTATIONS",
    "IMPORT_MUTATIONS",
    "SCORE_MUTATIONS",
    "SET_MUTATIONS",
    "TARGETS",
    "TEMPLATE_PAYLOADS",
    "Attempt",
    "HostileInputs",
    "HostileReport",
    "Mutation",
    "campaign",
]
