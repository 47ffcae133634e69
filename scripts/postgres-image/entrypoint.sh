#!/bin/sh
# First start: a cluster in $PGDATA that listens on every address and asks for a password,
# with POSTGRES_USER owning each of POSTGRES_DATABASES. Later starts reuse it as it is.
set -eu
: "${POSTGRES_USER:=signals}" "${POSTGRES_DATABASES:=signals signals_dagster}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD" >&2
    exit 2
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username=postgres --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
    psql -h /tmp -U postgres -v ON_ERROR_STOP=1 -q \
        -v user="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN CREATEDB PASSWORD :'password';
SQL
    for db in $POSTGRES_DATABASES; do
        createdb -h /tmp -U postgres --owner="$POSTGRES_USER" "$db"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres-entrypoint: initialised $PGDATA (databases: $POSTGRES_DATABASES)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
