#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 and print its URL on stdout.
# initdb refuses to run as root, so as root the server runs as an unprivileged user.
set -euo pipefail
PORT="${JUDGECAL_PG_PORT:-54329}"
DATA="${JUDGECAL_PG_DATA:-/tmp/judgecal-pg-$PORT}"
PG_USER="${JUDGECAL_PG_OSUSER:-judgecalpg}"
BINDIR="$(dirname "$(readlink -f "$(command -v initdb)")")"

as_user() {
  if [ "$(id -u)" = 0 ]; then
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/sh "$PG_USER"
    su "$PG_USER" -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

if [ -f "$DATA/postmaster.pid" ] && as_user "'$BINDIR/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; then
  echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
  exit 0
fi
rm -rf "$DATA"
mkdir -p "$DATA"
[ "$(id -u)" = 0 ] && { id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/sh "$PG_USER"; chown "$PG_USER" "$DATA"; }
as_user "'$BINDIR/initdb' -D '$DATA' -A trust -U postgres -E UTF8 --no-locale" >/dev/null
as_user "'$BINDIR/pg_ctl' -D '$DATA' -l '$DATA/server.log' -w -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" start" >/dev/null
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
