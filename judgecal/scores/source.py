"""Where production scores are read from: the ingested table, or a table read in place.

A :class:`ScoreSource` is a SQLAlchemy table expression whose columns are addressed by
the canonical names (``score_id, scored_at, judge, fingerprint, dimension, score,
customer, segment``), plus the rules to bind and read its timestamps. Every query of
:mod:`judgecal.scores` is built against it with SQLAlchemy Core, so it runs inside the
database that holds the scores: the judgecal store (``score_history``), or any table in
any database with a SQLAlchemy dialect (PostgreSQL, SQLite, DuckDB, a warehouse) named in
a config — nothing is copied::

    score_source:
      url: postgresql://analytics@warehouse/prod     # ${VAR} is read from the environment
      schema: judging                                # optional
      table: judge_scores
      columns:                                       # canonical name: column in the table
        score_id: id
        scored_at: created_at
        judge: grader
      time_type: auto       # auto | timestamp | text | epoch_s | epoch_ms | epoch_us

Or a folder of Parquet files (or one file, or a glob; relative to the YAML file's folder),
read in place through an in-memory DuckDB (:mod:`judgecal.scores.parquet_source`)::

    score_source:
      parquet: exports/scores/

Unmapped canonical names are expected under their own name. ``customer`` and ``segment``
may be mapped to ``null`` when the table has no such column. ``trace_id`` (the conversation
or trace a score belongs to, optional) is read only when it is mapped.

Timestamps in a table read in place: a timestamp column (with or without time zone; naive
values are taken as UTC), ISO-8601 text in one consistent format (compared as text, so the
bound values are written in the format the table uses), or seconds/milliseconds/
microseconds since the epoch. ``time_type: auto`` looks at one stored value to decide.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import Engine

from judgecal.errors import ConfigError, InputError, Problem
from judgecal.messages import excerpt

__all__ = [
    "CANONICAL",
    "ScoreSource",
    "SourceConfig",
    "TimeCodec",
    "load_source_config",
    "open_source",
    "parse_mapping",
    "store_source",
]

CANONICAL: tuple[str, ...] = (
    "score_id",
    "scored_at",
    "judge",
    "fingerprint",
    "dimension",
    "score",
    "customer",
    "segment",
    "trace_id",
)
OPTIONAL: frozenset[str] = frozenset({"customer", "segment", "fingerprint", "trace_id"})
ONLY_WHEN_MAPPED: frozenset[str] = frozenset({"trace_id"})
"""Canonical names a table read in place has only when its config maps them (a table
without such a column needs no ``null`` mapping)."""

TimeType = Literal["auto", "timestamp", "text", "epoch_s", "epoch_ms", "epoch_us"]


def parse_mapping(pairs: list[str] | tuple[str, ...] | Mapping[str, str | None]) -> dict[str, str]:
    """``["score_id=id", "scored_at=ts"]`` → ``{"score_id": "id", "scored_at": "ts"}``.

    Keys must be canonical column names; raises :class:`InputError` otherwise.
    """
    out: dict[str, str] = {}
    items: list[tuple[str, str | None]]
    if isinstance(pairs, Mapping):
        items = list(pairs.items())
    else:
        items = []
        for pair in pairs:
            if "=" not in pair:
                raise InputError(
                    Problem(file="--map", message=f"expected CANONICAL=COLUMN, got {pair!r}")
                )
            key, _, value = pair.partition("=")
            items.append((key.strip(), value.strip()))
    for key, column in items:
        if key not in CANONICAL:
            raise InputError(
                Problem(
                    file="--map",
                    field=key,
                    message=f"unknown column {key!r}; the columns are {', '.join(CANONICAL)}",
                )
            )
        if column:
            out[key] = column
    return out


# -- timestamps ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeCodec:
    """How instants are bound into queries and read back for one source.

    ``kind``: ``aware`` (timestamp with time zone), ``naive`` (timestamp without time
    zone, holding UTC), ``text`` (ISO-8601 text; ``sep``/``suffix``/``frac`` describe the
    stored format), ``epoch`` (``scale`` units per second).
    """

    kind: Literal["aware", "naive", "text", "epoch"]
    sep: str = "T"
    suffix: str = "Z"
    frac: int = 6
    scale: int = 1

    def bind(self, value: datetime) -> Any:
        """The value to compare the time column with."""
        utc = value.astimezone(UTC)
        if self.kind == "aware":
            return utc
        if self.kind == "naive":
            return utc.replace(tzinfo=None)
        if self.kind == "epoch":
            micros = int(utc.timestamp()) * 1_000_000 + utc.microsecond
            return micros * self.scale // 1_000_000 if self.scale < 1_000_000 else micros
        text = utc.strftime(f"%Y-%m-%d{self.sep}%H:%M:%S")
        if self.frac:
            text += "." + f"{utc.microsecond:06d}"[: self.frac]
        return text + self.suffix

    def read(self, raw: Any) -> datetime | None:
        """A stored value as an aware UTC datetime."""
        if raw is None:
            return None
        if isinstance(raw, datetime):
            return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _EPOCH + timedelta(microseconds=raw * (1_000_000 // self.scale))
        if isinstance(raw, float):
            return _EPOCH + timedelta(microseconds=round(raw * 1_000_000 / self.scale))
        return parse_instant(str(raw))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?P<sep>[T ])\d{2}:\d{2}(:\d{2}(?P<frac>\.\d+)?)?"
    r"(?P<suffix>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; a value without an offset is taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _text_codec(sample: str) -> TimeCodec:
    match = _ISO.match(sample.strip())
    if not match:
        raise ConfigError(
            Problem(
                file="score_source",
                field="scored_at",
                message=f"the time column holds {excerpt(sample, 40)}, which is not an "
                "ISO-8601 instant; set time_type",
            )
        )
    suffix = match.group("suffix") or ""
    if suffix not in ("", "Z", "+00:00", "+0000"):
        raise ConfigError(
            Problem(
                file="score_source",
                field="scored_at",
                message="text timestamps must be UTC to be compared as text "
                f"(found {excerpt(sample, 40)})",
            )
        )
    frac = len(match.group("frac") or "") - 1 if match.group("frac") else 0
    return TimeCodec("text", sep=match.group("sep"), suffix=suffix, frac=max(frac, 0))


def _epoch_codec(sample: float, time_type: str) -> TimeCodec:
    if time_type == "epoch_s":
        return TimeCodec("epoch", scale=1)
    if time_type == "epoch_ms":
        return TimeCodec("epoch", scale=1_000)
    if time_type == "epoch_us":
        return TimeCodec("epoch", scale=1_000_000)
    magnitude = abs(sample)
    if magnitude > 1e14:
        return TimeCodec("epoch", scale=1_000_000)
    if magnitude > 1e11:
        return TimeCodec("epoch", scale=1_000)
    return TimeCodec("epoch", scale=1)


# -- the source ------------------------------------------------------------------------------
@dataclass
class ScoreSource:
    """A score table and how to address it. Build one with :func:`store_source` or
    :func:`open_source`."""

    engine: Engine
    selectable: sa.FromClause
    columns: dict[str, sa.ColumnElement[Any]]
    codec: TimeCodec
    description: str
    owns_engine: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    fingerprints_table: sa.Table | None = None
    """For the store: ``score_fingerprints`` (first/last seen per judge and fingerprint)."""
    rollups: bool = False
    """For the store: hourly and daily rollups are kept (:mod:`judgecal.scores.rollup`)."""

    def c(self, name: str) -> sa.ColumnElement[Any]:
        """The column for a canonical name (a NULL literal for an unmapped optional one)."""
        return self.columns[name]

    def t(self, value: datetime) -> sa.BindParameter[Any]:
        """A bound instant comparable with the time column."""
        return sa.bindparam(None, self.codec.bind(value))

    def when(self, raw: Any) -> datetime | None:
        return self.codec.read(raw)

    def judges(self, conn: sa.Connection) -> list[str] | None:
        """Every judge in the history when that is cheap to know (the store), else None."""
        if self.fingerprints_table is None:
            return None
        fp = self.fingerprints_table
        return [str(j) for j in conn.execute(sa.select(fp.c.judge).distinct()).scalars()]

    def latest(self, conn: sa.Connection) -> datetime | None:
        """The newest score's time (``history_through``)."""
        if self.fingerprints_table is not None:
            col: Any = self.fingerprints_table.c.last_seen
            query = sa.select(sa.func.max(col))
        else:
            query = sa.select(sa.func.max(self.c("scored_at"))).select_from(self.selectable)
        return self.when(conn.execute(query).scalar())

    def score_expr(self) -> sa.ColumnElement[Any]:
        """The score as a float (a cast only for tables read in place)."""
        if self.fingerprints_table is not None:
            return self.c("score")
        return sa.cast(self.c("score"), sa.Float)

    def first_seen(self, conn: sa.Connection, judge: str) -> dict[str, datetime] | None:
        """fingerprint → first seen, for one judge, when the store keeps it (else None)."""
        if self.fingerprints_table is None:
            return None
        fp = self.fingerprints_table
        rows = conn.execute(
            sa.select(fp.c.fingerprint, fp.c.first_seen).where(fp.c.judge == judge)
        ).all()
        out: dict[str, datetime] = {}
        for name, first in rows:
            when = self.when(first)
            if name and when is not None:
                out[str(name)] = when
        return out

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


def store_source(engine: Engine) -> ScoreSource:
    """The ``score_history`` table of a judgecal store (filled by ``scores ingest``)."""
    from judgecal.db import schema
    from judgecal.db.engine import safe_url

    table = schema.score_history
    # See schema.score_history: integer microseconds on SQLite, timestamptz elsewhere.
    sqlite = engine.dialect.name == "sqlite"
    return ScoreSource(
        engine=engine,
        selectable=table,
        columns={name: table.c[name] for name in CANONICAL},
        codec=TimeCodec("epoch", scale=1_000_000) if sqlite else TimeCodec("aware"),
        description=f"score_history in the judgecal store {safe_url(engine)}",
        fingerprints_table=schema.score_fingerprints,
        rollups=True,
    )


class SourceConfig(BaseModel):
    """The ``score_source:`` block of a config (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    table: str | None = None
    parquet: str | None = None
    """A folder, file or glob of Parquet files read through DuckDB instead of url/table."""
    schema_: str | None = None
    columns: dict[str, str | None] = {}
    time_type: TimeType = "auto"

    @model_validator(mode="after")
    def _one_place(self) -> SourceConfig:
        if self.parquet is not None:
            if self.url is not None or self.schema_ is not None:
                raise ValueError("give either parquet (a folder, file or glob) or url and "
                                 "table, not both")
        elif self.url is None or self.table is None:
            raise ValueError("give url and table (a database table), or parquet (a folder, "
                             "file or glob of Parquet files)")
        return self

    @field_validator("columns")
    @classmethod
    def _known(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        unknown = sorted(set(value) - set(CANONICAL))
        if unknown:
            raise ValueError(
                f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(CANONICAL)}"
            )
        for key, col in value.items():
            if col is None and key not in OPTIONAL:
                raise ValueError(f"column {key!r} is required and cannot be mapped to null")
        return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(url: str, path: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                Problem(file=path, field="score_source.url",
                        message=f"environment variable {name} is not set")
            )
        return os.environ[name]

    return _ENV.sub(repl, url)


def load_source_config(path: str | Path) -> SourceConfig:
    """Read the ``score_source:`` block of a YAML file (other top-level keys are ignored,
    so the block can live in a larger config)."""
    from judgecal.config import render_errors
    from judgecal.io import load_yaml

    p = Path(path)
    doc = load_yaml(p)
    block = doc.data.get("score_source")
    if not isinstance(block, dict):
        raise ConfigError(
            Problem(file=str(p), field="score_source",
                    message="expected a 'score_source:' mapping with url, table and columns "
                            "(or parquet)")
        )
    block = dict(block)
    if "schema" in block:
        block["schema_"] = block.pop("schema")
    try:
        config = SourceConfig.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(render_errors(doc, exc, ("score_source",))) from None
    if config.url is not None:
        config.url = _expand_env(config.url, str(p))
    if config.parquet is not None:
        from judgecal.scores.parquet_source import parquet_pattern

        config.parquet = parquet_pattern(config.parquet, p.parent)
    return config


def open_source(config: SourceConfig | str | Path) -> ScoreSource:
    """Connect to a table read in place. The caller closes the returned source."""
    from judgecal.db.engine import normalize_url
    from judgecal.errors import StoreError

    cfg = config if isinstance(config, SourceConfig) else load_source_config(config)
    if cfg.parquet is not None:
        from judgecal.scores.parquet_source import DEFAULT_VIEW, parquet_engine, parquet_pattern

        engine = parquet_engine(parquet_pattern(cfg.parquet), cfg.table or DEFAULT_VIEW)
        cfg = cfg.model_copy(update={"table": cfg.table or DEFAULT_VIEW})
    else:
        try:
            engine = sa.create_engine(normalize_url(str(cfg.url)))
        except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
            raise StoreError(
                f"cannot open the score source: {exc}; install its SQLAlchemy dialect "
                "(e.g. pip install 'judgecal-drift[postgres]' or 'judgecal-drift[duckdb]')"
            ) from None
    names = {name: cfg.columns.get(name, None if name in ONLY_WHEN_MAPPED else name)
             for name in CANONICAL}
    real = [col for col in names.values() if col]
    table = sa.table(str(cfg.table), *[sa.column(col) for col in dict.fromkeys(real)],
                     schema=cfg.schema_)
    columns: dict[str, sa.ColumnElement[Any]] = {}
    for name, col in names.items():
        columns[name] = table.c[col] if col else sa.null()
    where = f"{cfg.schema_ + '.' if cfg.schema_ else ''}{cfg.table}"
    at = (f"the Parquet files {cfg.parquet} (DuckDB)" if cfg.parquet is not None
          else engine.url.render_as_string(hide_password=True))
    source = ScoreSource(
        engine=engine,
        selectable=table,
        columns=columns,
        codec=TimeCodec("aware"),
        description=f"{where} read in place at {at}",
        owns_engine=True,
        info={"table": where, "mapping": {k: v for k, v in names.items()
                                           if v != k and (v or k in cfg.columns)}},
    )
    try:
        source.codec = _detect_codec(source, cfg.time_type)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot read the score source {source.description}: "
                         f"{str(exc).splitlines()[0]}") from None
    except BaseException:
        engine.dispose()
        raise
    return source


def _detect_codec(source: ScoreSource, time_type: str) -> TimeCodec:
    if time_type == "timestamp":
        kind_hint: str | None = "timestamp"
    elif time_type == "text":
        kind_hint = "text"
    else:
        kind_hint = None
    col = source.c("scored_at")
    with source.engine.connect() as conn:
        sample = conn.execute(
            sa.select(col).select_from(source.selectable).where(col.is_not(None)).limit(1)
        ).scalar()
    if time_type.startswith("epoch"):
        return _epoch_codec(float(sample or 0), time_type)
    if sample is None:
        return TimeCodec("aware" if kind_hint != "text" else "text")
    if isinstance(sample, datetime):
        return TimeCodec("aware" if sample.tzinfo is not None else "naive")
    if isinstance(sample, int | float) and not isinstance(sample, bool):
        return _epoch_codec(float(sample), "auto")
    return _text_codec(str(sample))
