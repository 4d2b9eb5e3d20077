"""The database underneath the store: engine, schema, ordered migrations, run locks.

:mod:`~judgecal.db.engine` makes an engine from a URL (SQLite by default, PostgreSQL for
teams); :mod:`~judgecal.db.schema` is the schema as SQLAlchemy Core tables;
:mod:`~judgecal.db.migrations` the ordered, append-only migrations that build it;
:mod:`~judgecal.db.lock` the lock that keeps one run of a judge and set at a time.
"""
