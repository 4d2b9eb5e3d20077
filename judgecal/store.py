"""The run store: calibration-set snapshots, runs, every judge reply, metric reports.

:class:`Store` is the only way the rest of judgecal reads or writes the database.
Opening a store applies pending migrations, so any command works on an empty file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Engine, and_, delete, func, inspect, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from judgecal.db import schema
from judgecal.db.engine import make_engine, safe_url
from judgecal.db.lock import run_lock
from judgecal.db.migrations import migrate
from judgecal.errors import InputError, JudgecalError, NotFoundError, Problem, StoreError
from judgecal.records import FAILED, REJUDGE, RUNNING, ReplyRecord, utcnow

if TYPE_CHECKING:
    from judgecal.calibration import CalibrationSet

__all__ = ["Store", "open_store", "run_lock"]


class Store:
    """A migrated database holding judgecal's records."""

    def __init__(self, engine: Engine):
        self.engine = engine
        migrate(engine)

    @property
    def url(self) -> str:
        return safe_url(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- calibration sets ---------------------------------------------------------
    def save_set(self, cs: CalibrationSet) -> bool:
        """Snapshot a calibration set (items and labels) under its version. Idempotent.

        The first snapshot of a version appends its audit entry in the same transaction
        (:mod:`judgecal.audit.sets`); a version stored before set auditing gets its entry on
        its next save_set. Two processes may snapshot the same version at once (two runs
        started together): the one whose insert collides with the other's committed snapshot
        returns False.
        """
        try:
            stored = self._save_set(cs)
        except IntegrityError:
            if self._has_set(cs.version):
                return False
            raise
        if not stored:
            self._cover_set(cs)
        return stored

    def _cover_set(self, cs: CalibrationSet) -> None:
        """Append the audit entry of a version stored before set auditing (else nothing)."""
        from judgecal.audit import sets as audit_sets

        if audit_sets.is_logged(self.engine, cs.version):
            return
        item_rows, label_rows = _set_rows(cs)
        with self.engine.begin() as conn:
            audit_sets.log_uncovered_set(conn, cs.version, item_rows, label_rows)

    def _has_set(self, version: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                select(schema.calibration_sets.c.version).where(
                    schema.calibration_sets.c.version == version
                )
            ).first() is not None

    def _save_set(self, cs: CalibrationSet) -> bool:
        from judgecal.audit import sets as audit_sets

        with self.engine.begin() as conn:
            if conn.execute(
                select(schema.calibration_sets.c.version).where(
                    schema.calibration_sets.c.version == cs.version
                )
            ).first():
                return False
            manifest = {
                "name": cs.name,
                "description": cs.description,
                "dimensions": [d.model_dump(mode="json") for d in cs.dimensions.values()],
                "segment_fields": list(cs.segment_fields),
            }
            conn.execute(
                schema.calibration_sets.insert().values(
                    version=cs.version,
                    name=cs.name,
                    source_path=str(cs.path),
                    manifest=manifest,
                    created_at=utcnow(),
                )
            )
            item_rows, label_rows = _set_rows(cs)
            conn.execute(schema.set_items.insert(), item_rows)
            for start in range(0, len(label_rows), 5000):
                conn.execute(schema.set_labels.insert(), label_rows[start : start + 5000])
            audit_sets.log_stored_set(conn, cs.version)
        return True

    def set_snapshot(self, version: str) -> dict[str, Any]:
        """The stored snapshot of a set version: manifest, items and labels."""
        with self.engine.connect() as conn:
            head = (
                conn.execute(
                    select(schema.calibration_sets).where(
                        schema.calibration_sets.c.version == version
                    )
                )
                .mappings()
                .first()
            )
            if head is None:
                raise NotFoundError(f"calibration set version {version} is not in the store")
            items = (
                conn.execute(
                    select(schema.set_items)
                    .where(schema.set_items.c.set_version == version)
                    .order_by(schema.set_items.c.position)
                )
                .mappings()
                .all()
            )
            labels = (
                conn.execute(
                    select(schema.set_labels).where(schema.set_labels.c.set_version == version)
                )
                .mappings()
                .all()
            )
        return {
            "head": dict(head),
            "items": [dict(r) for r in items],
            "labels": [dict(r) for r in labels],
        }

    # -- runs -----------------------------------------------------------------------
    def create_run(self, **values: Any) -> str:
        values.setdefault("started_at", utcnow())
        values.setdefault("status", RUNNING)
        with self.engine.begin() as conn:
            conn.execute(schema.runs.insert().values(**values))
        return str(values["run_id"])

    def find_resumable_run(self, judge_name: str, set_version: str, config_hash: str) -> str | None:
        """The newest unfinished run of exactly this judge configuration and set version."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.runs.c.run_id)
                .where(
                    and_(
                        schema.runs.c.judge_name == judge_name,
                        schema.runs.c.set_version == set_version,
                        schema.runs.c.config_hash == config_hash,
                        schema.runs.c.status == RUNNING,
                    )
                )
                .order_by(schema.runs.c.started_at.desc())
            ).first()
        return None if row is None else str(row[0])

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close a run; log its final state (with a digest of its replies) in the audit chain."""
        from judgecal import audit

        with self.engine.begin() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.run_id == run_id)
                .values(status=status, summary=summary, finished_at=utcnow())
            )
            record = audit.snapshot_run(conn, run_id)
            assert record is not None
            audit.append(conn, "run", run_id, record)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run, by id or unique prefix; ``latest`` is the newest run, ``latest~N`` the
        N-th before it, ``latest@JUDGE`` / ``latest~N@JUDGE`` the same among the runs of one
        judge (a remedy's re-judge runs are not counted)."""
        ref = re.fullmatch(r"latest(?:~(\d+))?(?:@(.+))?", run_id)
        with self.engine.connect() as conn:
            if ref is not None:
                back = int(ref.group(1) or 0)
                judge = ref.group(2)
                where = [schema.runs.c.origin != REJUDGE]
                if judge is not None:
                    where.append(schema.runs.c.judge_name == judge)
                newest = (
                    conn.execute(
                        select(schema.runs)
                        .where(*where)
                        .order_by(schema.runs.c.started_at.desc())
                        .offset(back)
                        .limit(1)
                    )
                    .mappings()
                    .first()
                )
                row = None if newest is None else dict(newest)
                if row is None:
                    count = conn.execute(select(func.count()).select_from(schema.runs)
                                         .where(*where)).scalar()
                    if judge is not None and not count:
                        judges = conn.execute(select(schema.runs.c.judge_name).distinct()
                                              .where(where[0])).scalars().all()
                        raise NotFoundError(
                            f"{run_id}: no run of judge {judge!r} in the store {self.url}"
                            + (f" (its judges: {', '.join(sorted(judges))})" if judges else ""))
                    raise NotFoundError(self._too_far_back(run_id, int(count or 0)))
            else:
                row = by_id_or_prefix(conn, schema.runs.c.run_id, run_id, "run id")
        if row is None:
            raise NotFoundError(f"no run '{run_id}' in the store {self.url} "
                                "(`judgecal runs list` shows its runs)")
        return row

    def _too_far_back(self, ref: str, count: int) -> str:
        if count == 0:
            return f"{ref}: there are no runs in the store {self.url} yet"
        scope = ref[ref.index("@"):] if "@" in ref else ""
        newest = f"latest{scope}" if count == 1 else \
            f"latest{scope} to latest~{count - 1}{scope}"
        what = f"run(s) of judge {scope[1:]!r}" if scope else "run(s)"
        return f"{ref}: the store {self.url} holds {count} {what} ({newest})"

    def list_runs(self, judge_name: str | None = None, limit: int = 50, *,
                  rejudges: bool = False) -> list[dict[str, Any]]:
        """Newest first; a remedy's re-judge runs only with ``rejudges=True``."""
        query = select(schema.runs).order_by(schema.runs.c.started_at.desc()).limit(limit)
        if not rejudges:
            query = query.where(schema.runs.c.origin != REJUDGE)
        if judge_name:
            query = query.where(schema.runs.c.judge_name == judge_name)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    # -- replies --------------------------------------------------------------------
    def done_keys(self, run_id: str) -> set[tuple[str, str, str]]:
        """(item, dimension, variant) that already have a final reply (never re-requested)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    schema.replies.c.item_id, schema.replies.c.dimension, schema.replies.c.variant
                ).where(and_(schema.replies.c.run_id == run_id, schema.replies.c.status != FAILED))
            ).all()
        return {(r[0], r[1], r[2]) for r in rows}

    def save_reply(self, run_id: str, record: ReplyRecord) -> None:
        """Persist one reply now, in its own transaction (replacing an earlier failure)."""
        self.save_reply_batch(run_id, [record])

    def save_reply_batch(self, run_id: str, records: list[ReplyRecord]) -> None:
        """Persist replies that just arrived, in one transaction (group commit).

        A reply replaces an earlier *failed* attempt at the same (item, dimension, variant);
        a final reply is never overwritten.
        """
        r = schema.replies.c
        with self.engine.begin() as conn:
            for record in records:
                conn.execute(
                    delete(schema.replies).where(
                        and_(
                            r.run_id == run_id,
                            r.item_id == record.item_id,
                            r.dimension == record.dimension,
                            r.variant == record.variant,
                            r.status == FAILED,
                        )
                    )
                )
            conn.execute(schema.replies.insert(), [rec.to_row(run_id) for rec in records])

    def save_replies(self, run_id: str, records: Iterable[ReplyRecord]) -> int:
        """Insert many replies in one transaction (imports)."""
        rows = [rec.to_row(run_id) for rec in records]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(schema.replies.insert(), rows[start : start + 5000])
        return len(rows)

    def import_run(
        self, run: dict[str, Any], records: list[ReplyRecord], status: str, summary: dict[str, Any]
    ) -> str:
        """Write a whole imported run in one transaction: all of it or nothing."""
        values = dict(run, status=status, summary=summary)
        values.setdefault("started_at", utcnow())
        values.setdefault("finished_at", values["started_at"])
        rows = [rec.to_row(run["run_id"]) for rec in records]
        from judgecal import audit

        with self.engine.begin() as conn:
            conn.execute(schema.runs.insert().values(**values))
            for start in range(0, len(rows), 5000):
                conn.execute(schema.replies.insert(), rows[start : start + 5000])
            record = audit.snapshot_run(conn, str(run["run_id"]))
            assert record is not None
            audit.append(conn, "run", str(run["run_id"]), record)
        return str(run["run_id"])

    def replies(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(schema.replies).where(schema.replies.c.run_id == run_id))
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def reply_counts(self, run_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.replies.c.status, func.count())
                .where(schema.replies.c.run_id == run_id)
                .group_by(schema.replies.c.status)
            ).all()
        return {str(s): int(n) for s, n in rows}

    # -- batches ----------------------------------------------------------------------
    def save_batch(self, run_id: str, input_file_id: str, requests: int,
                   endpoint: str | None = None) -> None:
        """Record an uploaded batch input file of ``run_id`` (before its batch is created)."""
        stamp = utcnow()
        with self.engine.begin() as conn:
            conn.execute(schema.run_batches.insert().values(
                input_file_id=input_file_id, run_id=run_id, endpoint=endpoint,
                requests=requests, state="uploaded", created_at=stamp, updated_at=stamp))

    def update_batch(self, run_id: str, input_file_id: str, **values: Any) -> None:
        """Change a batch's ``batch_id``, ``state``, ``status`` or ``outcome``, committed now."""
        t = schema.run_batches
        with self.engine.begin() as conn:
            conn.execute(update(t)
                         .where(and_(t.c.run_id == run_id, t.c.input_file_id == input_file_id))
                         .values(updated_at=utcnow(), **values))

    def run_batches(self, run_id: str) -> list[dict[str, Any]]:
        """The batches of a run, oldest first."""
        t = schema.run_batches
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.run_id == run_id)
                                .order_by(t.c.created_at, t.c.input_file_id)).mappings().all()
        return [dict(r) for r in rows]

    # -- metric reports ---------------------------------------------------------------
    def save_metric_report(self, run_id: str, report: dict[str, Any]) -> int:
        """Store a metric report (and log it in the audit chain). Returns its id."""
        from judgecal import audit

        with self.engine.begin() as conn:
            result = conn.execute(
                schema.metric_reports.insert().values(
                    run_id=run_id, created_at=utcnow(), report=report
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            report_id = int(key[0])
            record = audit.snapshot_metric_report(conn, str(report_id))
            assert record is not None
            audit.append(conn, "metric_report", str(report_id), record)
        return report_id

    def latest_metric_report(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.metric_reports.c.report)
                .where(schema.metric_reports.c.run_id == run_id)
                .order_by(schema.metric_reports.c.report_id.desc())
                .limit(1)
            ).first()
        return None if row is None else dict(row[0])


def _set_rows(cs: CalibrationSet) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``set_items`` and ``set_labels`` rows of a set version, as save_set stores them."""
    item_rows = [
        {
            "set_version": cs.version,
            "item_id": item.id,
            "position": i,
            "fields": item.fields,
            "segments": item.segments,
        }
        for i, item in enumerate(cs.items)
    ]
    label_rows = []
    for dim in cs.dimensions:
        raters = cs.raters(dim)
        matrix = cs.human_matrix(dim)
        for i, item in enumerate(cs.items):
            for j, rater in enumerate(raters):
                value = float(matrix[i, j])
                if value == value:  # not NaN
                    label_rows.append(
                        {
                            "set_version": cs.version,
                            "item_id": item.id,
                            "dimension": dim,
                            "rater_id": rater,
                            "code": value,
                        }
                    )
    return item_rows, label_rows


def by_id_or_prefix(
    conn: Connection, column: Column[str], ref: str, what: str
) -> dict[str, Any] | None:
    """The row of ``column``'s table whose id is ``ref`` or starts with it (None if none).

    An exact id wins; a prefix shared by several ids raises NotFoundError.
    """
    rows = (
        conn.execute(
            select(column.table).where(column.startswith(ref, autoescape=True)).limit(2)
        ).mappings().all()
    )
    exact = [r for r in rows if r[column.name] == ref]
    if len(rows) > 1 and not exact:
        raise NotFoundError(f"{what} prefix '{ref}' is ambiguous: it matches "
                            f"{rows[0][column.name]}, {rows[1][column.name]} and maybe more; "
                            "give more of the id")
    row = exact[0] if exact else (rows[0] if rows else None)
    return None if row is None else dict(row)


def open_store(url: str | None) -> Store:
    """Open (and migrate) the store at ``url`` (default: ``.judgecal/judgecal.db``).

    A URL that cannot be used (unknown database type, a directory, a file that is not a
    SQLite database) raises :class:`InputError`; a database server that cannot be reached
    raises :class:`StoreError`. Both name the URL without its password.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            inspect(conn).get_table_names()  # reads the file: a non-database fails here
    except DBAPIError as exc:
        engine.dispose()
        raise _unusable(engine, exc) from None
    return Store(engine)


def _unusable(engine: Engine, exc: DBAPIError) -> JudgecalError:
    text = str(exc.orig or exc).strip()
    reason = text.splitlines()[0] if text else type(exc.orig or exc).__name__
    password = engine.url.password
    if password:
        reason = reason.replace(str(password), "***")
    if engine.url.get_backend_name() == "sqlite":
        path = engine.url.database or ":memory:"
        if "not a database" in reason:
            reason = "the file is not a SQLite database (is it the right --store?)"
        return InputError(Problem(file=path, message=f"cannot open the store: {reason}"))
    return StoreError(f"cannot open the store {safe_url(engine)}: {reason}")
