#!/bin/sh
# The official postgres image's first start, as far as labci's compose file needs it:
# an empty PGDATA gets a cluster whose superuser is POSTGRES_USER with the password in
# POSTGRES_PASSWORD_FILE (scram-sha-256 over TCP from anywhere), and POSTGRES_DB. PGPORT
# (read by postgres and pg_isready themselves) moves the port.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  initdb --username="$user" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "${POSTGRES_DB:-$user}" != postgres ]; then
    echo "CREATE DATABASE \"${POSTGRES_DB:-$user}\"" |
      postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
fi
exec "$@"
