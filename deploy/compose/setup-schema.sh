#!/bin/sh
# docker-compose.yml's `temporal-schema` job (image temporalio/admin-tools): creates Temporal's two
# PostgreSQL databases and brings their schemas to the version of the admin-tools image, as
# Temporal's compose samples do. Safe to run again: existing databases are kept, and
# update-schema only applies versions not yet applied (so a newer image upgrades the schema).
set -eu

host="${POSTGRES_SEEDS:-postgres}"
port="${DB_PORT:-5432}"
user="${POSTGRES_USER:-temporal}"
export SQL_PASSWORD="${POSTGRES_PWD:-temporal}"
schemas=/etc/temporal/schema/postgresql/v12

echo "Waiting for PostgreSQL at $host:$port ..."
tries=0
until nc -z -w 2 "$host" "$port"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then echo "PostgreSQL did not answer at $host:$port" >&2; exit 1; fi
  sleep 2
done

sql() { temporal-sql-tool --plugin postgres12 --ep "$host" -p "$port" -u "$user" "$@"; }

for db in temporal:temporal temporal_visibility:visibility; do
  name="${db%%:*}"
  dir="$schemas/${db##*:}/versioned"
  # `create` fails when the database exists (a second `up`): the steps after it still run, and
  # fail loudly on a real problem.
  sql --db "$name" create || echo "database $name exists"
  sql --db "$name" setup-schema -v 0.0
  sql --db "$name" update-schema -d "$dir"
done
echo "PostgreSQL schemas for Temporal are ready."
