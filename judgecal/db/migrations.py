"""Ordered, append-only schema migrations.

Each migration is a function ``mNNN_description(conn)`` registered in order with
:func:`migration`. Applied names are recorded in ``judgecal_migrations``. A migration
is never edited once released: a schema change is a new function at the end. Each
one defines the tables it creates itself (frozen copies), so later changes to
:mod:`judgecal.db.schema` cannot alter what an old migration does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

__all__ = [
    "MIGRATIONS",
    "MigrationFn",
    "applied",
    "m001_initial",
    "m002_audit_log",
    "m003_drift",
    "m004_score_history",
    "m005_score_rollups",
    "m006_remedy",
    "m007_score_trace",
    "m008_run_batches",
    "migrate",
    "migration",
    "ordered",
    "pending",
]

MigrationFn = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, MigrationFn]] = []

_ledger_md = MetaData()
ledger = Table(
    "judgecal_migrations",
    _ledger_md,
    Column("name", String(200), primary_key=True),
    Column("applied_at", String(40), nullable=False),
)


def migration(fn: MigrationFn) -> MigrationFn:
    """Register ``fn`` as the next migration."""
    if any(name == fn.__name__ for name, _ in MIGRATIONS):
        raise ValueError(f"duplicate migration {fn.__name__}")
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def applied(engine: Engine) -> list[str]:
    """Names of the migrations already applied, in order of application."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("judgecal_migrations"):
            return []
        rows = conn.execute(select(ledger.c.name).order_by(ledger.c.applied_at)).all()
    return [r[0] for r in rows]


def ordered() -> list[tuple[str, MigrationFn]]:
    """Migrations in the order they apply: by their ``mNNN_`` name."""
    return sorted(MIGRATIONS, key=lambda m: m[0])


def pending(engine: Engine) -> list[str]:
    done = set(applied(engine))
    return [name for name, _ in ordered() if name not in done]


_MIGRATION_LOCK = 0x6A75646765636131
"""PostgreSQL advisory-lock key serialising migrations (any fixed 64-bit number)."""


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A transaction that only one process at a time can hold on this store.

    Several processes may open a fresh store at the same moment (two ``judgecal run``
    started together); without this they would create the same tables and ledger rows
    twice. SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front (and makes the DDL
    transactional); PostgreSQL: a transaction-scoped advisory lock.
    """
    with engine.begin() as conn:
        backend = engine.url.get_backend_name()
        if backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        yield conn


def migrate(engine: Engine, stop_before: str | None = None) -> list[str]:
    """Apply every pending migration, each in its own transaction. Returns what ran.

    Safe when several processes migrate the same store at once: each migration runs
    under :func:`_exclusive` and re-checks the ledger first.
    """
    ran: list[str] = []
    if not [n for n in pending(engine) if stop_before is None or n < stop_before]:
        return ran  # the common case: nothing to do, no lock taken
    with _exclusive(engine) as conn:
        _ledger_md.create_all(conn)
    for name, fn in ordered():
        if name == stop_before:
            break
        with _exclusive(engine) as conn:
            exists = conn.execute(select(ledger.c.name).where(ledger.c.name == name)).first()
            if exists:
                continue
            fn(conn)
            stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            conn.execute(ledger.insert().values(name=name, applied_at=stamp))
        ran.append(name)
    return ran


@migration
def m001_initial(conn: Connection) -> None:
    md = MetaData()
    Table(
        "calibration_sets", md,
        Column("version", String(80), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("source_path", Text),
        Column("manifest", JSON, nullable=False),
        Column("created_at", String(40), nullable=False),
    )
    Table(
        "set_items", md,
        Column("set_version", String(80), primary_key=True),
        Column("item_id", String(200), primary_key=True),
        Column("position", Integer, nullable=False),
        Column("fields", JSON, nullable=False),
        Column("segments", JSON, nullable=False),
    )
    Table(
        "set_labels", md,
        Column("set_version", String(80), primary_key=True),
        Column("item_id", String(200), primary_key=True),
        Column("dimension", String(200), primary_key=True),
        Column("rater_id", String(200), primary_key=True),
        Column("code", Float, nullable=False),
    )
    Table(
        "runs", md,
        Column("run_id", String(64), primary_key=True),
        Column("judge_name", String(200), nullable=False, index=True),
        Column("set_name", String(200), nullable=False),
        Column("set_version", String(80), nullable=False),
        Column("config_hash", String(80), nullable=False),
        Column("fingerprint", JSON, nullable=False),
        Column("judge_config", JSON, nullable=False),
        Column("origin", String(20), nullable=False),
        Column("status", String(20), nullable=False),
        Column("started_at", String(40), nullable=False),
        Column("finished_at", String(40)),
        Column("n_expected", Integer, nullable=False),
        Column("summary", JSON),
        Column("config_path", Text),
    )
    Table(
        "replies", md,
        Column("run_id", String(64), primary_key=True),
        Column("item_id", String(200), primary_key=True),
        Column("dimension", String(200), primary_key=True),
        Column("variant", String(20), primary_key=True),
        Column("status", String(20), nullable=False),
        Column("score", Float),
        Column("label", Text),
        Column("raw_text", Text),
        Column("unscored_reason", Text),
        Column("latency_ms", Float),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("served_model", String(200)),
        Column("system_fingerprint", String(200)),
        Column("finish_reason", String(40)),
        Column("attempts", Integer, nullable=False),
        Column("error", Text),
        Column("prompt_sha256", String(80)),
        Column("created_at", String(40), nullable=False),
    )
    Table(
        "metric_reports", md,
        Column("report_id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(64), nullable=False, index=True),
        Column("created_at", String(40), nullable=False),
        Column("report", JSON, nullable=False),
    )
    md.create_all(conn)


@migration
def m002_audit_log(conn: Connection) -> None:
    md = MetaData()
    Table(
        "audit_log", md,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("created_at", String(40), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("ref", String(200), nullable=False),
        Column("record", JSON, nullable=False),
        Column("record_sha256", String(80), nullable=False),
        Column("prev_hash", String(80), nullable=False),
        Column("entry_hash", String(80), nullable=False),
    )
    md.create_all(conn)


@migration
def m003_drift(conn: Connection) -> None:
    """Baselines, drift checks, incidents with their append-only events, notification outbox."""
    md = MetaData()
    Table(
        "baselines", md,
        Column("baseline_id", Integer, primary_key=True, autoincrement=True),
        Column("judge_name", String(200), nullable=False, index=True),
        Column("set_name", String(200), nullable=False),
        Column("set_version", String(80), nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("accepted_at", String(40), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("reason", Text, nullable=False),
        Column("auto", Boolean, nullable=False),
        Column("replaces_run_id", String(64)),
    )
    Table(
        "drift_checks", md,
        Column("check_id", String(64), primary_key=True),
        Column("run_id", String(64), nullable=False, index=True),
        Column("baseline_run_id", String(64)),
        Column("judge_name", String(200), nullable=False, index=True),
        Column("set_name", String(200), nullable=False),
        Column("set_version", String(80), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("verdict", String(20), nullable=False),
        Column("severity", String(10)),
        Column("record", JSON, nullable=False),
    )
    Table(
        "incidents", md,
        Column("incident_id", String(64), primary_key=True),
        Column("schema_version", Integer, nullable=False),
        Column("judge_name", String(200), nullable=False, index=True),
        Column("set_name", String(200), nullable=False),
        Column("set_version", String(80), nullable=False),
        Column("baseline_run_id", String(64), nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("check_id", String(64), nullable=False),
        Column("severity", String(10), nullable=False),
        Column("opened_at", String(40), nullable=False),
        Column("record", JSON, nullable=False),
    )
    Table(
        "incident_events", md,
        Column("incident_id", String(64), primary_key=True),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("kind", String(40), nullable=False),
        Column("at", String(40), nullable=False),
        Column("actor", String(200)),
        Column("reason", Text),
        Column("data", JSON, nullable=False),
    )
    Table(
        "notifications", md,
        Column("notification_id", Integer, primary_key=True, autoincrement=True),
        Column("dedupe_key", String(200), nullable=False, unique=True),
        Column("event", String(40), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text),
        Column("next_attempt_at", String(40)),
        Column("delivered_at", String(40)),
    )
    md.create_all(conn)


@migration
def m004_score_history(conn: Connection) -> None:
    """Production score history (``judgecal scores ingest``).

    ``scored_at`` is ``timestamptz`` on PostgreSQL and an integer (microseconds since the
    epoch, UTC) on SQLite. The primary key leads with (judge, scored_at): the link queries
    filter on a judge and a time range, and on SQLite (``WITHOUT ROWID``) the rows of one
    judge are even stored in time order. ``score_id`` is unique on its own (idempotent
    ingest). ``score_fingerprints`` keeps, per (judge, fingerprint), when it was first and
    last seen: the fingerprint lookups of onset read it instead of an index on fingerprint
    (which would slow every ingest).
    """
    from sqlalchemy import BigInteger, DateTime, UniqueConstraint

    # timestamptz on PostgreSQL; SQLite has no time type: microseconds since the epoch, UTC.
    utc_time = DateTime(timezone=True).with_variant(BigInteger(), "sqlite")
    md = MetaData()
    Table(
        "score_history", md,
        Column("judge", String(200), primary_key=True),
        Column("scored_at", utc_time, primary_key=True),
        Column("score_id", String(200), primary_key=True),
        Column("fingerprint", String(200)),
        Column("dimension", String(200), nullable=False),
        Column("score", Float, nullable=False),
        Column("customer", String(200)),
        Column("segment", String(200)),
        UniqueConstraint("score_id", name="uq_score_history_score_id"),
        sqlite_with_rowid=False,
    )
    Table(
        "score_fingerprints", md,
        Column("judge", String(200), primary_key=True),
        Column("fingerprint", String(200), primary_key=True),
        Column("first_seen", utc_time, nullable=False),
        Column("last_seen", utc_time, nullable=False),
    )
    md.create_all(conn)


@migration
def m005_score_rollups(conn: Connection) -> None:
    """Cheaper score_history for bulk ingest, and the rollups that answer the link.

    * ``score_history`` keeps two indexes: ``score_id`` (unique, the ingest dedupe) and
      ``scored_at`` (time ranges). The m004 primary key on (judge, scored_at, score_id) is
      dropped: every insert paid for a third index-ordered B-tree, and the link no longer
      scans the judge's rows (see the rollups). SQLite rebuilds the table as an ordinary
      rowid table (new rows are appended); PostgreSQL drops the constraint.
    * ``score_rollup`` and ``score_customer_rollup``: per hour and per UTC day, the count,
      sum, sum of squares, min and max of the scores per (judge, fingerprint, dimension,
      segment), and the count per (judge, fingerprint, named customer). Filled here from the
      rows already stored; ``scores ingest`` adds exactly the rows it inserts.
    """
    from sqlalchemy import BigInteger, DateTime, Index, UniqueConstraint

    dialect = conn.dialect.name
    utc_time = DateTime(timezone=True).with_variant(BigInteger(), "sqlite")
    md = MetaData()
    history = Table(
        "score_history", md,
        Column("judge", String(200), nullable=False),
        Column("scored_at", utc_time, nullable=False),
        Column("score_id", String(200), nullable=False),
        Column("fingerprint", String(200)),
        Column("dimension", String(200), nullable=False),
        Column("score", Float, nullable=False),
        Column("customer", String(200)),
        Column("segment", String(200)),
        UniqueConstraint("score_id", name="uq_score_history_score_id"),
    )
    Table(
        "score_rollup", md,
        Column("grain", Integer, primary_key=True),
        Column("judge", String(200), primary_key=True),
        Column("bucket", BigInteger, primary_key=True),
        Column("fingerprint", String(200), primary_key=True),
        Column("dimension", String(200), primary_key=True),
        Column("segment", String(200), primary_key=True),
        Column("n", BigInteger, nullable=False),
        Column("total", Float, nullable=False),
        Column("total_sq", Float, nullable=False),
        Column("lo", Float, nullable=False),
        Column("hi", Float, nullable=False),
        sqlite_with_rowid=False,
    )
    Table(
        "score_customer_rollup", md,
        Column("grain", Integer, primary_key=True),
        Column("judge", String(200), primary_key=True),
        Column("bucket", BigInteger, primary_key=True),
        Column("fingerprint", String(200), primary_key=True),
        Column("customer", String(200), primary_key=True),
        Column("n", BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    cols = "judge, scored_at, score_id, fingerprint, dimension, score, customer, segment"
    if dialect == "sqlite":
        conn.exec_driver_sql("ALTER TABLE score_history RENAME TO score_history_m004")
        history.create(conn)
        conn.exec_driver_sql(
            f"INSERT INTO score_history ({cols}) SELECT {cols} FROM score_history_m004"
        )
        conn.exec_driver_sql("DROP TABLE score_history_m004")
        hour = ("(scored_at - ((scored_at % 3600000000) + 3600000000) % 3600000000)"
                " / 3600000000")
    else:
        pk = inspect(conn).get_pk_constraint("score_history").get("name")
        if pk:
            conn.exec_driver_sql(f'ALTER TABLE score_history DROP CONSTRAINT "{pk}"')
        hour = "CAST(floor(extract(epoch FROM scored_at) / 3600) AS BIGINT)"
    Index("ix_score_history_scored_at", history.c.scored_at).create(conn)
    md.tables["score_rollup"].create(conn)
    md.tables["score_customer_rollup"].create(conn)
    day = "h - ((h % 24) + 24) % 24"
    conn.execute(text(
        "INSERT INTO score_rollup (grain, judge, bucket, fingerprint, dimension, segment, "
        "n, total, total_sq, lo, hi) "
        f"SELECT g.grain, s.judge, CASE WHEN g.grain = 1 THEN s.h ELSE s.d END, s.fp, "
        "s.dimension, s.seg, COUNT(*), SUM(s.score), SUM(s.score * s.score), MIN(s.score), "
        "MAX(s.score) FROM ("
        f"SELECT judge, COALESCE(fingerprint, '') AS fp, dimension, "
        f"COALESCE(segment, '') AS seg, score, h, {day} AS d "
        f"FROM (SELECT *, {hour} AS h FROM score_history) AS hs) AS s "
        "CROSS JOIN (SELECT 1 AS grain UNION ALL SELECT 24) AS g "
        "GROUP BY g.grain, s.judge, CASE WHEN g.grain = 1 THEN s.h ELSE s.d END, s.fp, "
        "s.dimension, s.seg"
    ))
    conn.execute(text(
        "INSERT INTO score_customer_rollup (grain, judge, bucket, fingerprint, customer, n) "
        f"SELECT g.grain, s.judge, CASE WHEN g.grain = 1 THEN s.h ELSE s.d END, s.fp, "
        "s.customer, COUNT(*) FROM ("
        f"SELECT judge, COALESCE(fingerprint, '') AS fp, customer, h, {day} AS d "
        f"FROM (SELECT *, {hour} AS h FROM score_history) AS hs "
        "WHERE customer IS NOT NULL AND customer <> '') AS s "
        "CROSS JOIN (SELECT 1 AS grain UNION ALL SELECT 24) AS g "
        "GROUP BY g.grain, s.judge, CASE WHEN g.grain = 1 THEN s.h ELSE s.d END, s.fp, "
        "s.customer"
    ))


@migration
def m006_remedy(conn: Connection) -> None:
    """The remedy: corrected figures of an incident's window (one row per version) and the
    human labels of window samples (one import per file). Both append-only."""
    from sqlalchemy import UniqueConstraint

    md = MetaData()
    Table(
        "corrections", md,
        Column("correction_id", String(64), primary_key=True),
        Column("incident_id", String(64), nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("actor", String(200)),
        Column("result", JSON, nullable=False),
        UniqueConstraint("incident_id", "version", name="uq_corrections_incident_version"),
    )
    Table(
        "window_labels", md,
        Column("import_id", String(64), primary_key=True),
        Column("score_id", String(200), primary_key=True),
        Column("incident_id", String(64), nullable=False, index=True),
        Column("label", Float, nullable=False),
        Column("imported_at", String(40), nullable=False),
        Column("source_file", Text),
    )
    md.create_all(conn)


@migration
def m007_score_trace(conn: Connection) -> None:
    """``score_history.trace_id``: the conversation or trace a production score belongs to
    (optional; NULL for the scores stored before)."""
    conn.exec_driver_sql("ALTER TABLE score_history ADD COLUMN trace_id VARCHAR(200)")


@migration
def m008_run_batches(conn: Connection) -> None:
    """``run_batches``: the batches a run sent through a batch API, stored the moment each is
    created (a killed run resumes its batch instead of submitting another)."""
    md = MetaData()
    Table(
        "run_batches", md,
        Column("run_id", String(64), primary_key=True),
        Column("input_file_id", String(200), primary_key=True),
        Column("batch_id", String(200)),
        Column("endpoint", Text),
        Column("requests", Integer, nullable=False),
        Column("state", String(20), nullable=False),
        Column("status", String(40)),
        Column("outcome", JSON),
        Column("created_at", String(40), nullable=False),
        Column("updated_at", String(40), nullable=False),
    )
    md.create_all(conn)
