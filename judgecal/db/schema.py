"""The current schema of the run store, as SQLAlchemy Core tables.

These definitions are what queries use. The database itself is built only by the
ordered migrations in :mod:`judgecal.db.migrations`; a test checks that migrating an
empty database yields exactly these tables and columns.

Timestamps of runs and replies are ISO-8601 UTC strings (``2026-11-27T07:43:03.123456Z``):
portable across SQLite and PostgreSQL, exact, and sortable as text.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

calibration_sets = Table(
    "calibration_sets",
    metadata,
    Column("version", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("source_path", Text),
    Column("manifest", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
)

set_items = Table(
    "set_items",
    metadata,
    Column("set_version", String(80), primary_key=True),
    Column("item_id", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("segments", JSON, nullable=False),
)

set_labels = Table(
    "set_labels",
    metadata,
    Column("set_version", String(80), primary_key=True),
    Column("item_id", String(200), primary_key=True),
    Column("dimension", String(200), primary_key=True),
    Column("rater_id", String(200), primary_key=True),
    Column("code", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
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

replies = Table(
    "replies",
    metadata,
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

metric_reports = Table(
    "metric_reports",
    metadata,
    Column("report_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("created_at", String(40), nullable=False),
    Column("report", JSON, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("created_at", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("ref", String(200), nullable=False),
    Column("record", JSON, nullable=False),
    Column("record_sha256", String(80), nullable=False),
    Column("prev_hash", String(80), nullable=False),
    Column("entry_hash", String(80), nullable=False),
)

# -- m003_drift: baselines, drift checks, incidents, incident events, notification outbox ----
baselines = Table(
    "baselines",
    metadata,
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
"""Append-only history of accepted baselines; the newest row per (judge, set version) is current."""

drift_checks = Table(
    "drift_checks",
    metadata,
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

incidents = Table(
    "incidents",
    metadata,
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
"""Immutable incident evidence; the lifecycle lives in ``incident_events`` (append-only)."""

incident_events = Table(
    "incident_events",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(40), nullable=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(200)),
    Column("reason", Text),
    Column("data", JSON, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
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
"""Webhook outbox: written with the record it announces, delivered after the run."""

# timestamptz on PostgreSQL; SQLite has no time type: microseconds since the epoch, UTC.
_utc_time = DateTime(timezone=True).with_variant(BigInteger(), "sqlite")
score_history = Table(
    "score_history",
    metadata,
    Column("judge", String(200), nullable=False),
    Column("scored_at", _utc_time, nullable=False),
    Column("score_id", String(200), nullable=False),
    Column("fingerprint", String(200)),
    Column("dimension", String(200), nullable=False),
    Column("score", Float, nullable=False),
    Column("customer", String(200)),
    Column("segment", String(200)),
    Column("trace_id", String(200)),
    UniqueConstraint("score_id", name="uq_score_history_score_id"),
    Index("ix_score_history_scored_at", "scored_at"),
)
"""Production scores (m004, restructured by m005). ``scored_at`` is timezone-aware UTC:
``timestamptz`` on PostgreSQL, microseconds since the epoch (UTC) on SQLite, which has no
time type. Read it through :func:`judgecal.scores.store_source`, which binds and converts
instants. Two indexes only (m005): ``score_id`` (unique: idempotent ingest) and
``scored_at`` (time ranges); on SQLite rows are appended in rowid order. Aggregates come
from the rollups below. ``trace_id`` (m007, optional) is the conversation or trace a score
belongs to: scores sharing one are resampled together by the remedy's intervals."""

score_fingerprints = Table(
    "score_fingerprints",
    metadata,
    Column("judge", String(200), primary_key=True),
    Column("fingerprint", String(200), primary_key=True),
    Column("first_seen", _utc_time, nullable=False),
    Column("last_seen", _utc_time, nullable=False),
)
"""When each (judge, fingerprint) was first and last seen in ``score_history``; ``""``
stands for scores without a fingerprint. Maintained by ``scores ingest``."""

# -- m005: rollups of score_history, maintained by `scores ingest` -------------------------------
score_rollup = Table(
    "score_rollup",
    metadata,
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
"""Count, sum, sum of squares, min and max of the scores per (judge, fingerprint,
dimension, segment) and time bucket. ``grain`` is the bucket length in hours (1 or 24);
``bucket`` is the bucket's start in hours since the epoch (UTC); ``""`` stands for a
missing fingerprint or segment. Only rows ``scores ingest`` actually inserted are counted
(idempotent with the score_id dedupe). See :mod:`judgecal.scores.rollup`."""

score_customer_rollup = Table(
    "score_customer_rollup",
    metadata,
    Column("grain", Integer, primary_key=True),
    Column("judge", String(200), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("fingerprint", String(200), primary_key=True),
    Column("customer", String(200), primary_key=True),
    Column("n", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
"""Scores per (judge, fingerprint, named customer) and time bucket (same grains and buckets
as ``score_rollup``; rows without a customer are not counted)."""

# -- m006: the remedy — corrected figures of an incident's window, window-sample labels ---------
corrections = Table(
    "corrections",
    metadata,
    Column("correction_id", String(64), primary_key=True),
    Column("incident_id", String(64), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("actor", String(200)),
    Column("result", JSON, nullable=False),
    UniqueConstraint("incident_id", "version", name="uq_corrections_incident_version"),
)
"""Corrected figures of an incident's affected window (``judgecal incidents correct``): one
row per version, never updated; the newest version is current. The original scores are
untouched in ``score_history``."""

window_labels = Table(
    "window_labels",
    metadata,
    Column("import_id", String(64), primary_key=True),
    Column("score_id", String(200), primary_key=True),
    Column("incident_id", String(64), nullable=False, index=True),
    Column("label", Float, nullable=False),
    Column("imported_at", String(40), nullable=False),
    Column("source_file", Text),
)
"""Human labels of a window sample (``judgecal incidents labels``): one import per file,
never updated; for a score labelled twice the newest import counts."""

run_batches = Table(
    "run_batches",
    metadata,
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
"""The batches a run sent through a batch API (``judge.batch``): one row per uploaded input
file, written before the batch is created and given its ``batch_id`` the moment it is, so a
killed run finds its batch again instead of paying for another. ``state``: ``uploaded``
(the file is up, the batch perhaps not yet created), ``submitted``, ``read`` (every line
handled; ``outcome`` says how the batch ended)."""
