"""The row reader: CSV/TSV/JSONL/Parquet, line numbers, and every malformed-file message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgecal.errors import InputError, Problem
from judgecal.io.tabular import detect_format, read_all, read_rows


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def _only_problem(exc: pytest.ExceptionInfo[InputError]) -> Problem:
    assert len(exc.value.problems) == 1
    return exc.value.problems[0]


def test_csv_rows_carry_their_line_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        'id,text\n1,plain\n\n2,"two\nlines"\n3,"quoted, comma"\n',
    )
    rows = read_all(path)
    assert rows == [
        (2, {"id": "1", "text": "plain"}),
        (4, {"id": "2", "text": "two\nlines"}),
        (6, {"id": "3", "text": "quoted, comma"}),
    ]


def test_csv_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b"\xef\xbb\xbfid,label\r\n1,yes\r\n")
    assert read_all(path) == [(2, {"id": "1", "label": "yes"})]


def test_tsv(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.tsv", "a\tb\nx,y\tz\n")
    assert read_all(path) == [(2, {"a": "x,y", "b": "z"})]


def test_csv_header_only_is_an_empty_table(tmp_path: Path) -> None:
    assert read_all(_write(tmp_path / "t.csv", "id,text\n")) == []


def test_ragged_csv_row_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "id,label\n1,a\n2,b,extra\n3\n")
    with pytest.raises(InputError) as exc:
        read_all(path)
    problem = _only_problem(exc)
    assert (problem.file, problem.line) == (str(path), 3)
    assert "ragged row: 3 fields" in problem.message
    assert str(problem).startswith(f"{path}:3: ")


def test_problems_list_collects_every_bad_row_and_keeps_the_good_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "id,label\n1,a\n2,b,extra\n3\n4,d\n")
    problems: list[Problem] = []
    rows = list(read_rows(path, problems=problems))
    assert [line for line, _ in rows] == [2, 5]
    assert [p.line for p in problems] == [3, 4]


def test_duplicate_csv_header_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="names column 'id' twice"):
        read_all(_write(tmp_path / "t.csv", "id,id\n1,2\n"))


def test_bad_csv_quoting(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="malformed CSV") as exc:
        read_all(_write(tmp_path / "t.csv", 'id,text\n1,"ab"c\n'))
    assert _only_problem(exc).line == 2


def test_jsonl_rows_skip_blank_lines_and_keep_types(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", '{"id": 1, "x": null}\n\n{"id": "b", "x": [1, 2]}\n')
    assert read_all(path) == [(1, {"id": 1, "x": None}), (3, {"id": "b", "x": [1, 2]})]


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", '{"id": 1}\n{"id": 2,}\n')
    with pytest.raises(InputError) as exc:
        read_all(path)
    problem = _only_problem(exc)
    assert problem.line == 2
    assert problem.message.startswith("malformed JSON")


def test_json_line_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a JSON object, found list"):
        read_all(_write(tmp_path / "t.jsonl", "[1, 2]\n"))


@pytest.mark.parametrize(
    ("name", "content"),
    [("t.csv", b""), ("t.csv", b"\n  \n"), ("t.jsonl", b""), ("t.jsonl", b"\n  \n"),
     ("t.parquet", b"")],
)
def test_empty_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(InputError) as exc:
        read_all(path)
    problem = _only_problem(exc)
    assert problem.file == str(path)
    assert problem.message == "the file is empty"


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl"])
def test_bad_encoding_says_utf8_and_names_the_line(tmp_path: Path, name: str) -> None:
    latin1 = "café".encode("latin-1")
    if name.endswith(".csv"):
        content = b"id,text\n1,ok\n2," + latin1 + b"\n"
    else:
        content = b'{"id": 1}\n{"id": 2}\n{"id": "' + latin1 + b'"}\n'
    path = _write(tmp_path / name, content)
    with pytest.raises(InputError) as exc:
        read_all(path)
    problem = _only_problem(exc)
    assert problem.line == 3
    assert "UTF-8" in problem.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError) as exc:
        read_all(path)
    assert _only_problem(exc) == Problem(file=str(path), message="file not found")


def test_unknown_extension(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.xlsx", "x")
    with pytest.raises(InputError, match=r"unknown file type '\.xlsx'"):
        read_all(path)
    problems: list[Problem] = []
    assert list(read_rows(path, problems=problems)) == []
    assert len(problems) == 1


def test_detect_format() -> None:
    assert detect_format("a/b.JSONL") == "jsonl"
    assert detect_format("x.ndjson") == "jsonl"
    assert detect_format("x.pq") == "parquet"
    assert detect_format("x.csv") == "csv"


def test_fmt_overrides_the_extension(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.txt", json.dumps({"a": 1}) + "\n")
    assert read_all(path, fmt="jsonl") == [(1, {"a": 1})]


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table({"id": ["a", "b", "c"], "n": [1, None, 3]})
    pq.write_table(table, path, row_group_size=2)  # two row groups: numbering continues
    assert read_all(path) == [
        (1, {"id": "a", "n": 1}),
        (2, {"id": "b", "n": None}),
        (3, {"id": "c", "n": 3}),
    ]


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.parquet", b"this is not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_all(path)


# -- a bad row never ends the reading ---------------------------------------------------------


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl"])
def test_a_line_that_is_not_utf8_is_a_bad_row_and_reading_goes_on(
    tmp_path: Path, name: str
) -> None:
    bad = "café".encode("latin-1")
    if name.endswith(".csv"):
        content = b"id,text\n1,ok\n2," + bad + b'\n3,"two\nlines"\n4,"' + bad + b'\nmore"\n5,end\n'
    else:
        content = b'{"id": 1}\n{"id": "' + bad + b'"}\n{"id": 3}\n'
    path = _write(tmp_path / name, content)
    problems: list[Problem] = []
    rows = list(read_rows(path, problems=problems))
    if name.endswith(".csv"):
        # the record spanning lines 6-7 holds the bad byte on line 6: it is skipped whole
        assert [(line, row["id"]) for line, row in rows] == [(2, "1"), (4, "3"), (8, "5")]
        assert [p.line for p in problems] == [3, 6]
    else:
        assert [line for line, _ in rows] == [1, 3]
        assert [p.line for p in problems] == [2]
    assert all("UTF-8" in p.message for p in problems)


def test_a_csv_header_that_is_not_utf8_ends_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b"id,t\xe9xt\n1,a\n")
    problems: list[Problem] = []
    assert list(read_rows(path, problems=problems)) == []
    assert [p.line for p in problems] == [1]


def test_a_huge_csv_field_is_read(tmp_path: Path) -> None:
    huge = "x" * 5_000_000
    path = _write(tmp_path / "t.csv", f"id,text\n1,a\n2,{huge}\n3,c\n")
    assert [(line, len(row["text"])) for line, row in read_all(path)] == [
        (2, 1), (3, 5_000_000), (4, 1)]


def test_a_malformed_csv_record_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", 'id,text\n1,a\n2,"ab"c\n3,"x\ny"z\n4,d\n')
    problems: list[Problem] = []
    rows = list(read_rows(path, problems=problems))
    assert [line for line, _ in rows] == [2, 6]
    assert [p.line for p in problems] == [3, 4]
    assert "malformed CSV" in problems[0].message
    assert "(on line 5)" in problems[1].message  # the record of line 4 broke on line 5


def test_an_unclosed_quote_names_the_record_where_it_opens(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", 'id,text\n1,a\n2,"never closed\n3,c\n4,d\n')
    problems: list[Problem] = []
    assert [line for line, _ in read_rows(path, problems=problems)] == [2]
    assert [p.line for p in problems] == [3]
    assert "not closed before the end of the file (line 5)" in problems[0].message


def test_messages_quote_file_content_short_and_escaped(tmp_path: Path) -> None:
    name = "n\x01" + "a" * 5_000_000
    path = _write(tmp_path / "t.csv", f"id,{name},{name}\n1,2,3\n")
    with pytest.raises(InputError) as exc:
        read_all(path)
    problem = _only_problem(exc)
    assert len(str(problem)) < 400
    assert "'n\\x01aaa" in problem.message and "(5,000,002 characters)" in problem.message
