"""The one YAML reader of judgecal: strict, bounded, and able to say on which line.

Every YAML file judgecal reads (run and judge configs, a calibration set's ``set.yaml``,
a ``score_source:`` block) goes through :func:`load_yaml`. It reads the file as UTF-8,
composes the node tree with a :class:`yaml.SafeLoader` subclass and refuses, naming the
file and the line:

* a file larger than :data:`MAX_BYTES`, a file that cannot be read or is not UTF-8;
* nesting deeper than :data:`MAX_DEPTH` (a 5,000-deep ``[[[[…`` would otherwise end in
  Python's ``RecursionError``);
* a document larger than :data:`MAX_NODES` nodes *as if every alias were written out*
  (a "billion laughs" alias bomb is refused after a few hundred nodes, long before
  anything walks it), and an alias inside the node it refers to;
* a mapping key given twice (PyYAML would silently keep the last);
* anything PyYAML's safe loader refuses (syntax, unknown or Python tags, bad values).

It returns the data with the node tree, so that a caller can map a pydantic error
location back to a line (:meth:`YamlDocument.line_of`). Problems are raised as the
caller's :class:`~judgecal.errors.InputError` subclass (``ConfigError`` by default), and
quote file content only as a short escaped excerpt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from judgecal.errors import ConfigError, InputError, Problem
from judgecal.messages import excerpt, field_text

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "YamlDocument", "load_yaml"]

MAX_BYTES = 10 * 1024 * 1024
"""Largest YAML file read (judgecal's YAML files are configs of a few kilobytes)."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences (aliases expanded)."""
MAX_NODES = 100_000
"""Most nodes in a document, counting an aliased node once per use."""
MAX_DUPLICATES = 20
"""Duplicate keys listed one by one (the rest are counted)."""
_PROBLEM_CHARS = 130
"""Longest PyYAML problem text passed on (it may quote an anchor or a tag)."""


@dataclass(frozen=True)
class YamlDocument:
    """A YAML file read by :func:`load_yaml`: its top-level mapping and its node tree."""

    path: Path
    data: dict[Any, Any]
    root: yaml.Node

    def line_of(self, loc: Sequence[object]) -> int:
        """Line (1-based) of the deepest node along ``loc`` (mapping keys and sequence
        indices, e.g. a pydantic error's ``loc``) present in the file: the line of the
        key when ``loc`` ends at a mapping entry, else of its closest present parent."""
        node = self.root
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        line = key.start_mark.line + 1
                        node = value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def line_in_text(self, loc: Sequence[object], text_line: int) -> int | None:
        """File line (1-based) of line ``text_line`` (1-based) of the string at ``loc``, when
        the YAML writes it line for line: a literal block (``|``), or the first line of any
        scalar. None when it cannot be mapped (a folded ``>`` block, a multi-line quoted or
        plain scalar) or ``loc`` is not a string in the file."""
        node: yaml.Node = self.root
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = next((v for k, v in node.value
                              if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
                if found is None:
                    return None
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and (
                0 <= part < len(node.value)
            ):
                node = node.value[part]
            else:
                return None
        if not isinstance(node, yaml.ScalarNode) or text_line < 1:
            return None
        if node.style == "|":
            return int(node.start_mark.line) + 1 + text_line
        if text_line == 1 and node.style != ">":
            return int(node.start_mark.line) + 1
        return None


class _Refused(yaml.MarkedYAMLError):
    """A limit of the bounded loader, reported like a YAML error at its mark."""


def _dotted(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer bounds depth and expanded size and notes duplicate keys.

    Sizes are counted as the tree is composed: each composed node adds 1 and each alias
    adds the expanded size of the node it names, so the running total is the size of the
    document with every alias written out; it is checked at every step.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.total = 0
        self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (size, height)
        self.heights: list[int] = []  # per open node: the tallest child so far
        self.path: list[object] = []
        self.duplicates: list[tuple[str, int]] = []

    def _grow(self, size: int, mark: Any) -> None:
        self.total += size
        if self.total > MAX_NODES:
            raise _Refused(
                problem=f"the document is larger than {MAX_NODES:,} nodes with its aliases "
                "expanded (an alias bomb?); judgecal refuses it",
                problem_mark=mark,
            )

    def _child_height(self, height: int) -> None:
        if self.heights:
            self.heights[-1] = max(self.heights[-1], height)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        named = isinstance(index, int | yaml.ScalarNode)
        if named:
            self.path.append(index if isinstance(index, int) else index.value)
        try:
            return self._compose(parent, index)
        finally:
            if named:
                self.path.pop()

    def _compose(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node: Any = super().compose_node(parent, index)
            measured = self.measured.get(id(node))
            if measured is None:
                raise _Refused(problem=f"the alias {excerpt(event.anchor, 40)} is used inside "
                               "the node it names (a recursive structure)",
                               problem_mark=mark)
            size, height = measured
            if len(self.heights) + height > MAX_DEPTH:
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels (with aliases "
                               "expanded)", problem_mark=mark)
            self._grow(size, mark)
            self._child_height(height)
            return node
        if len(self.heights) >= MAX_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels",
                           problem_mark=mark)
        before = self.total
        self._grow(1, mark)
        self.heights.append(0)
        try:
            node = super().compose_node(parent, index)
        finally:
            height = self.heights.pop() + 1
        self.measured[id(node)] = (self.total - before, height)
        self._child_height(height)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2026-13-40
            raise _Refused(problem=f"invalid YAML value: {field_text(str(exc))}",
                           problem_mark=node.start_mark) from None

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            ident = (key.tag, key.value)
            if ident in seen:
                self.duplicates.append((_dotted([*self.path, key.value]),
                                        key.start_mark.line + 1))
            seen.add(ident)
        return node


def _read_text(path: Path, error: type[InputError]) -> str:
    where = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise error(Problem(file=where, message="file not found")) from None
    except OSError as exc:  # a directory, no permission, ...
        raise error(Problem(file=where, message=f"cannot read the file: "
                            f"{exc.strerror or exc}")) from None
    if len(raw) > MAX_BYTES:
        raise error(Problem(file=where, message=f"the file is larger than {MAX_BYTES:,} bytes; "
                            "judgecal reads YAML files up to that size"))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(Problem(file=where, line=line,
                            message="not valid UTF-8; save the file as UTF-8")) from None


def _yaml_problem(where: str, text: str, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = str(exc.problem or exc.context or "malformed")
        if len(what) > _PROBLEM_CHARS:
            what = what[: _PROBLEM_CHARS - 1] + "…"
        label = "" if isinstance(exc, _Refused) else "invalid YAML: "
        return Problem(file=where, line=mark.line + 1 if mark else None,
                       message=label + what)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return Problem(file=where, line=line, message=f"invalid YAML: character "
                       f"U+{int(exc.character):04X} is not allowed in YAML")
    return Problem(file=where, message="invalid YAML")


def load_yaml(path: str | Path, *, error: type[InputError] = ConfigError) -> YamlDocument:
    """Read a YAML file whose top level is a mapping (see the module docstring).

    Raises ``error`` (an :class:`~judgecal.errors.InputError` subclass) with one problem
    per thing wrong, each naming the file and, where there is one, the line.
    """
    p = Path(path)
    where = str(p)
    text = _read_text(p, error)
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader checks the characters here
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise error(_yaml_problem(where, text, exc)) from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps recursion shallow
        raise error(Problem(file=where,
                            message=f"nested deeper than {MAX_DEPTH} levels")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        loader.duplicates.sort(key=lambda d: d[1])
        problems = [Problem(file=where, line=line, field=field_text(key),
                            message=f"setting {excerpt(key)} is given twice")
                    for key, line in loader.duplicates[:MAX_DUPLICATES]]
        if len(loader.duplicates) > MAX_DUPLICATES:
            problems.append(Problem(file=where, message=f"... and "
                                    f"{len(loader.duplicates) - MAX_DUPLICATES} more keys "
                                    "given twice"))
        raise error(problems)
    if root is None or data is None:
        raise error(Problem(file=where, message="the file is empty"))
    if not isinstance(data, dict):
        raise error(Problem(file=where, line=root.start_mark.line + 1,
                            message=f"expected a mapping of settings at the top, found a "
                            f"{type(data).__name__}"))
    return YamlDocument(path=p, data=data, root=root)
