#!/bin/sh
# Entry point of localhost/helios-pgtest:15 (tests/k8s): a PostgreSQL 15
# server on 127.0.0.1:$PGPORT (host network), run as the postgres user.
#   PG_ROLE=primary  (default) a new cluster with the roles the played
#                    manifests use: $APP_USER ($APP_PASSWORD, owns the
#                    database $APP_DB, default $APP_USER) and repl_user
#                    ($REPL_PASSWORD, replication)
#   PG_ROLE=replica  a streaming replica of 127.0.0.1:$PG_PRIMARY_PORT
#                    (pg_basebackup -R; waits for the primary to accept)
# The data directory lives in the container, so a stopped pod keeps it.
set -eu
D=${PGDATA:-/var/lib/postgresql/data}
port=${PGPORT:-5432}
if [ ! -s "$D/PG_VERSION" ]; then
	if [ "${PG_ROLE:-primary}" = replica ]; then
		export PGPASSWORD="$REPL_PASSWORD"
		i=0
		until pg_basebackup -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U repl_user -D "$D" -R -X stream -c fast; do
			i=$((i + 1))
			if [ "$i" -ge 120 ]; then
				echo "pgtest: no primary on 127.0.0.1:$PG_PRIMARY_PORT after 60 s" >&2
				exit 1
			fi
			rm -rf "$D"
			sleep 0.5
		done
		unset PGPASSWORD
	else
		pwfile=$(mktemp)
		printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" >"$pwfile"
		initdb -D "$D" -U postgres --pwfile="$pwfile" --auth-local=trust \
			--auth-host=scram-sha-256 -E UTF8 --locale=C >/dev/null
		rm -f "$pwfile"
		pg_ctl -D "$D" -w -s -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
		psql -h /tmp -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
			-v user="$APP_USER" -v pw="$APP_PASSWORD" -v db="${APP_DB:-$APP_USER}" \
			-v repl="$REPL_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE ROLE repl_user LOGIN REPLICATION PASSWORD :'repl';
CREATE DATABASE :"db" OWNER :"user";
SQL
		pg_ctl -D "$D" -w -s -m fast stop
	fi
fi
exec postgres -D "$D" -c listen_addresses=127.0.0.1 -c port="$port" \
	-c unix_socket_directories=/tmp -c wal_level=replica -c max_wal_senders=5 \
	-c hot_standby=on -c shared_buffers=16MB -c max_connections=50 -c jit=off
