"""Writing clean production-score rows into the store's ``score_history``: idempotent by
``score_id``, the rows inserted added to the rollups in the same transaction, a repeated id
with other values reported as a conflict (see :mod:`judgecal.scores.ingest` for the whole
ingest: SQLite through a temporary stage and ``ON CONFLICT DO NOTHING`` in a
``BEGIN IMMEDIATE`` transaction, PostgreSQL through ``COPY``)."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import Connection

from judgecal.db import schema
from judgecal.errors import Problem, StoreError
from judgecal.messages import excerpt
from judgecal.scores import rollup
from judgecal.scores.rows import MAX_REPORTED, TS

__all__ = ["ScoreWriter", "conflict_problems"]


def _pylist(arr: Any) -> list[Any]:
    """A column as a Python list, cheaply: dictionary values are converted once and shared,
    timestamps become integer microseconds."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        values = np.array([*arr.dictionary.to_pylist(), None], dtype=object)
        codes = pc.fill_null(pc.cast(arr.indices, pa.int32()), len(values) - 1)
        return list(values[np.asarray(codes.to_numpy(zero_copy_only=False))].tolist())
    if pa.types.is_timestamp(arr.type):
        return list(pc.cast(arr, pa.int64()).to_numpy().tolist())
    if pa.types.is_floating(arr.type) and arr.null_count == 0:
        return list(arr.to_numpy().tolist())
    return list(arr.to_pylist())


_KEY_COLUMNS = ("judge", "fingerprint", "dimension", "customer", "segment")


def _combinations(clean: pa.Table) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Per row, the number of its (judge, fingerprint, dimension, customer, segment)
    combination; and the combinations as ``(number, judge, …, segment)`` (None for null)."""
    tables: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for name in _KEY_COLUMNS:
        arr = clean.column(name)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        values = np.array([*arr.dictionary.to_pylist(), None], dtype=object)
        filled = pc.fill_null(pc.cast(arr.indices, pa.int64()), len(values) - 1)
        tables.append(values)
        codes.append(np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64))
    if math.prod(len(t) for t in tables) < 2**62:  # one mixed-radix number per row
        combined = np.zeros(clean.num_rows, dtype=np.int64)
        for values, code in zip(tables, codes, strict=True):
            combined = combined * len(values) + code
        unique, inverse = np.unique(combined, return_inverse=True)
        parts: list[np.ndarray] = []
        for values in reversed(tables):
            parts.append(unique % len(values))
            unique = unique // len(values)
        parts.reverse()
    else:
        unique_rows, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        parts = [unique_rows[:, k] for k in range(len(tables))]
    decoded = [values[part].tolist() for values, part in zip(tables, parts, strict=True)]
    keys = list(zip(range(len(parts[0])), *decoded, strict=True))
    return np.asarray(inverse).reshape(-1), keys


def _first_of_each_id(clean: pa.Table) -> np.ndarray:
    """Mask of the rows of a chunk that are the first occurrence of their score_id."""
    ids = clean.column("score_id")
    if pc.count_distinct(ids).as_py() == clean.num_rows:
        return np.ones(clean.num_rows, dtype=bool)
    firsts = pa.table({"id": ids, "i": np.arange(clean.num_rows)}).group_by(
        "id", use_threads=False).aggregate([("i", "min")]).column("i_min").to_numpy()
    keep = np.zeros(clean.num_rows, dtype=bool)
    keep[firsts] = True
    return keep


# -- a score_id repeated with other values -----------------------------------------------------
_COMPARED = ("scored_at", "judge", "fingerprint", "dimension", "score", "customer", "segment")
_Conflicts = list[tuple[int, dict[str, Any]]]
"""(position in the chunk, the stored row) of rows whose score_id is stored with other values."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SQLITE_CONFLICTS = (
    # Every staged row that was not inserted met a stored row with its score_id (stored
    # before, or by an earlier row of the chunk); those whose values differ are conflicts.
    "SELECT s.rowid - 1, h.scored_at, h.judge, h.fingerprint, h.dimension, h.score, "
    "h.customer, h.segment "
    "FROM temp.score_stage AS s CROSS JOIN temp.score_keys AS k ON k.k = s.k "
    "JOIN score_history AS h ON h.score_id = s.score_id "
    "WHERE NOT (h.scored_at IS s.scored_at AND h.score IS s.score AND h.judge IS k.judge "
    "AND h.fingerprint IS k.fingerprint AND h.dimension IS k.dimension "
    "AND h.customer IS k.customer AND h.segment IS k.segment) ORDER BY s.rowid"
)


def _pg_conflicts(cur: Any, clean: pa.Table, positions: np.ndarray) -> _Conflicts:
    """Rows at ``positions`` (not inserted) whose score_id is stored with other values."""
    if not len(positions):
        return []
    rows = clean.take(pa.array(positions)).select(["score_id", *_COMPARED]).to_pylist()
    cur.execute(f"SELECT score_id, {', '.join(_COMPARED)} FROM score_history "
                "WHERE score_id = ANY(%s)", (list({r["score_id"] for r in rows}),))
    stored = {r[0]: dict(zip(_COMPARED, r[1:], strict=True)) for r in cur.fetchall()}
    return [(int(pos), stored[row["score_id"]]) for pos, row in zip(positions, rows, strict=True)
            if row["score_id"] in stored and _differs(row, stored[row["score_id"]])]


def _differs(row: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    return [c for c in _COMPARED if row[c] != stored[c]]


def conflict_problems(clean: pa.Table, lines: np.ndarray, conflicts: _Conflicts,
                       path: str) -> list[Problem]:
    shown = conflicts[:MAX_REPORTED]
    rows = clean.take(pa.array([pos for pos, _ in shown], pa.int64())).to_pylist()
    problems = []
    for (pos, stored), row in zip(shown, rows, strict=True):
        column = (_differs(row, stored) or ["score"])[0]

        def text(value: Any) -> str:
            if isinstance(value, datetime):
                return value.isoformat()
            return excerpt(value, 40) if isinstance(value, str) else repr(value)

        problems.append(Problem(
            file=path, line=int(lines[pos]), field="score_id",
            message=f"score_id {excerpt(row['score_id'], 60)} is already stored (by an "
            f"earlier row or ingest) with another {column}: {text(stored[column])} there, "
            f"{text(row[column])} here; the stored row is kept",
        ))
    return problems


_PG_INGEST_LOCK = 0x6A63696E67657374
"""PostgreSQL advisory-lock key: one ingest transaction at a time adds to the rollups
(concurrent upserts of the same rollup rows could otherwise deadlock)."""

_PG_STAGES = (("score_history_stage", "score_history"), ("score_rollup_stage", "score_rollup"),
              ("score_customer_rollup_stage", "score_customer_rollup"))


def _csv(table: pa.Table) -> bytes:
    """CSV for PostgreSQL's COPY: nulls unquoted (NULL), strings quoted (so "" stays an empty
    string), timestamps as UTC text (formatted without a time zone: much faster in pyarrow)."""
    import pyarrow.csv as pacsv

    for k, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            naive = pc.cast(pc.cast(table.column(k), pa.int64()), pa.timestamp("us"))
            text = pc.binary_join_element_wise(pc.cast(naive, pa.string()), "+00", "")
            table = table.set_column(k, column.name, text)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


_INSERT_COLUMNS = ("score_id", "scored_at", "judge", "fingerprint", "dimension", "score",
                   "customer", "segment", "trace_id")


class ScoreWriter:
    """Inserts a clean chunk, skipping stored score ids, and adds exactly the inserted rows
    to the rollups, in the caller's transaction; returns the rows inserted.

    SQLite: ``BEGIN IMMEDIATE`` (the write lock is held from the start of the transaction,
    so nothing else can insert in between); the chunk goes into a temporary stage through
    the driver's ``executemany`` (4 values per row: id, time, score and the number of its
    judge/fingerprint/dimension/customer/segment combination, whose names are bound once
    each; a fifth, the trace id, only in chunks that carry one), then one ``INSERT … SELECT
    … ON CONFLICT DO NOTHING`` joins the names back. The rollup rows of what was inserted
    are computed with pyarrow; when some ids were already stored, the rows this chunk
    appended are read back by rowid. PostgreSQL: ``COPY`` straight into the table, falling
    back to a staged ``INSERT … ON CONFLICT DO NOTHING RETURNING score_id`` when an id is
    already stored; rollup rows are copied into a stage and added with one ``INSERT … ON
    CONFLICT DO UPDATE`` per rollup table, under an advisory lock.
    """

    def __init__(self, conn: Connection):
        self.conn = conn
        self.dialect = conn.dialect.name
        cols = ", ".join(_INSERT_COLUMNS)
        if self.dialect == "sqlite":
            # Each row binds 4 values into a temporary stage; its repeated names are bound
            # once per distinct combination (score_keys) and joined back in SQLite.
            conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS score_stage "
                                 "(score_id TEXT, scored_at INTEGER, score REAL, k INTEGER, "
                                 "trace_id TEXT)")
            conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS score_keys "
                                 f"(k INTEGER PRIMARY KEY, {', '.join(_KEY_COLUMNS)})")
            self.sql = (
                f"INSERT INTO score_history ({cols}) "
                "SELECT s.score_id, s.scored_at, k.judge, k.fingerprint, k.dimension, s.score, "
                "k.customer, k.segment, s.trace_id "
                # CROSS JOIN keeps the stage as the outer loop: rows go in in file order,
                # so the first row of a repeated score_id wins. WHERE true: see SQLite's
                # UPSERT parsing note.
                "FROM temp.score_stage AS s CROSS JOIN temp.score_keys AS k ON k.k = s.k "
                "WHERE true ON CONFLICT DO NOTHING"
            )
        elif self.dialect == "postgresql":
            for stage, like in _PG_STAGES:
                conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                                     f"(LIKE {like} INCLUDING DEFAULTS)")
            self.insert_from_stage = (
                f"INSERT INTO score_history ({cols}) SELECT {cols} FROM score_history_stage "
                "ON CONFLICT DO NOTHING RETURNING score_id"
            )
            self.upserts = rollup.postgres_upsert_sql("score_rollup_stage",
                                                      "score_customer_rollup_stage")
        else:
            raise StoreError(
                f"ingest supports SQLite and PostgreSQL stores, not {self.dialect}; "
                "read other databases in place with --source"
            )

    def write(self, clean: pa.Table) -> tuple[int, _Conflicts]:
        """Rows inserted, and the rows not inserted whose score_id is stored with other
        values: (position in ``clean``, the stored row)."""
        if clean.num_rows == 0:
            return 0, []
        if not self.conn.in_transaction():
            self.conn.begin()  # the raw driver calls below run in this transaction
        if self.dialect == "sqlite":
            inserted, conflicts = self._write_sqlite(clean)
        else:
            inserted, conflicts = self._write_postgres(clean)
        self._note_fingerprints(clean)
        return inserted, conflicts

    def _note_fingerprints(self, clean: pa.Table) -> None:
        """Widen (judge, fingerprint) → [first_seen, last_seen] in score_fingerprints."""
        judge_codes, judges = rollup._codes(clean.column("judge"))
        fp_codes, fps = rollup._codes(clean.column("fingerprint"))
        keys = pa.table({"j": judge_codes, "f": fp_codes, "t": clean.column("scored_at")})
        seen = keys.group_by(["j", "f"], use_threads=False).aggregate(
            [("t", "min"), ("t", "max")]
        )
        table = schema.score_fingerprints
        rows = [
            {"judge": j, "fingerprint": f, "first_seen": lo, "last_seen": hi}
            for j, f, lo, hi in zip(
                judges[seen.column("j").to_numpy()].tolist(),
                fps[seen.column("f").to_numpy()].tolist(),
                self._times(seen.column("t_min")),
                self._times(seen.column("t_max")),
                strict=True,
            )
        ]
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
            lower: Any = sa.func.min  # two-argument min/max are scalar functions in SQLite
            upper: Any = sa.func.max
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table)  # type: ignore[assignment]
            lower, upper = sa.func.least, sa.func.greatest
        stmt = stmt.on_conflict_do_update(
            index_elements=["judge", "fingerprint"],
            set_={
                "first_seen": lower(table.c.first_seen, stmt.excluded.first_seen),
                "last_seen": upper(table.c.last_seen, stmt.excluded.last_seen),
            },
        )
        self.conn.execute(stmt, rows)

    def _times(self, arr: Any) -> list[Any]:
        if self.dialect == "sqlite":
            return [int(v) for v in pc.cast(arr, pa.int64()).to_pylist()]
        return list(arr.to_pylist())

    def _write_sqlite(self, clean: pa.Table) -> tuple[int, _Conflicts]:
        # On SQLite scored_at is an integer: microseconds since the epoch, UTC.
        raw: Any = self.conn.connection.driver_connection
        cursor = raw.cursor()
        try:
            if not raw.in_transaction:
                cursor.execute("BEGIN IMMEDIATE")
            last = cursor.execute("SELECT max(rowid) FROM score_history").fetchone()[0] or 0
            row_keys, keys = _combinations(clean)
            cursor.execute("DELETE FROM temp.score_stage")
            cursor.execute("DELETE FROM temp.score_keys")
            cursor.executemany("INSERT INTO temp.score_keys VALUES (?, ?, ?, ?, ?, ?)", keys)
            columns = [_pylist(clean.column("score_id")), _pylist(clean.column("scored_at")),
                       _pylist(clean.column("score")), row_keys.tolist()]
            stage = "score_id, scored_at, score, k"
            if clean.column("trace_id").null_count < clean.num_rows:
                # Only chunks that carry traces bind a fifth value per row.
                columns.append(_pylist(clean.column("trace_id")))
                stage += ", trace_id"
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO temp.score_stage ({stage}) VALUES ({marks})",
                               zip(*columns, strict=True))
            del columns
            del row_keys, keys
            cursor.execute(self.sql)
            inserted = int(cursor.rowcount)
            conflicts: _Conflicts = []
            if inserted < clean.num_rows:  # stage rowids are 1..n: the stage was emptied
                conflicts = [
                    (int(pos), dict(zip(_COMPARED, (_EPOCH + timedelta(microseconds=row[0]),
                                                    *row[1:]), strict=True)))
                    for pos, *row in cursor.execute(_SQLITE_CONFLICTS)
                ]
            if inserted == clean.num_rows:
                new: pa.Table | None = clean
            elif inserted == 0:
                new = None
            else:  # some ids were stored already: exactly the rows this chunk appended
                new = self._read_back(cursor, last)
            if new is not None:
                moments, customers = rollup.aggregate(new)
                cursor.executemany(rollup.SQLITE_UPSERT_MOMENTS, rollup.as_rows(moments))
                cursor.executemany(rollup.SQLITE_UPSERT_CUSTOMERS, rollup.as_rows(customers))
            return inserted, conflicts
        finally:
            cursor.close()

    @staticmethod
    def _read_back(cursor: Any, after_rowid: int) -> pa.Table:
        names = ("judge", "fingerprint", "dimension", "segment", "customer", "scored_at",
                 "score")
        rows = cursor.execute(
            f"SELECT {', '.join(names)} FROM score_history WHERE rowid > ?", (after_rowid,)
        ).fetchall()
        cols = list(zip(*rows, strict=True))
        arrays = {name: pa.array(cols[k], pa.string()) for k, name in enumerate(names[:5])}
        arrays["scored_at"] = pa.array(cols[5], pa.int64()).cast(TS)
        arrays["score"] = pa.array(cols[6], pa.float64())
        return pa.table(arrays)

    def _write_postgres(self, clean: pa.Table) -> tuple[int, _Conflicts]:
        import psycopg

        every, keep = clean, _first_of_each_id(clean)
        if not keep.all():
            clean = clean.filter(pa.array(keep))
        data = _csv(clean.select(list(_INSERT_COLUMNS)))
        raw = self.conn.connection.driver_connection
        cols = ", ".join(_INSERT_COLUMNS)
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_INGEST_LOCK,))
            new = clean
            # The common case, new scores: COPY straight into the table (no stage, no
            # conflict handling). A stored score id aborts it: then stage the chunk and
            # insert what is new, learning exactly which rows that was.
            cur.execute("SAVEPOINT judgecal_ingest")
            try:
                with cur.copy(f"COPY score_history ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(data)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT judgecal_ingest")
                cur.execute("TRUNCATE score_history_stage")
                with cur.copy(f"COPY score_history_stage ({cols}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(data)
                cur.execute(self.insert_from_stage)
                inserted = pa.array([r[0] for r in cur.fetchall()], pa.string())
                new = clean.filter(pc.is_in(clean.column("score_id"), value_set=inserted))
                keep &= np.asarray(pc.is_in(every.column("score_id"), value_set=inserted)
                                   .to_numpy(zero_copy_only=False), dtype=bool)
            else:
                cur.execute("RELEASE SAVEPOINT judgecal_ingest")
            del data
            conflicts = _pg_conflicts(cur, every, np.flatnonzero(~keep))
            if new.num_rows:
                stages = ("score_rollup_stage", "score_customer_rollup_stage")
                for table, stage in zip(rollup.aggregate(new), stages, strict=True):
                    names = ", ".join(table.column_names)
                    cur.execute(f"TRUNCATE {stage}")
                    with cur.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT csv)") as copy:
                        copy.write(_csv(table))
                for statement in self.upserts:
                    cur.execute(statement)
            return int(new.num_rows), conflicts

    def close(self) -> None:
        if self.dialect == "postgresql":
            for stage, _ in _PG_STAGES:
                self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
