#!/usr/bin/env bash
# A throwaway PostgreSQL 15 primary + streaming replica for tests and demos.
#
#   scripts/pgcluster.sh start|stop|status RUN_DIR [PRIMARY_PORT] [REPLICA_PORT]
#
# Data lives in RUN_DIR/pg (primary/, replica/, sock/, primary.log,
# replica.log). PostgreSQL refuses to run as root, so as root the servers run
# as the unprivileged user "heliospg" (created if missing); otherwise as the
# current user. When heliospg cannot reach RUN_DIR (e.g. a checkout under a
# mode-700 /root) or the socket path would be too long, the data goes to
# /tmp/heliospg-<hash of RUN_DIR> and RUN_DIR/pg is a symlink to it.
# RUN_DIR/pgcluster.env records ports and the socket dir for other scripts.
#
# Superuser "postgres" (trust over the socket, password "postgres" over TCP);
# role "replicator" (password "replicator") streams to the replica through
# slot "replica1".
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_USER=heliospg
REPL_PASSWORD=replicator
SUPER_PASSWORD=postgres

usage() {
	echo "usage: $0 start|stop|status RUN_DIR [PRIMARY_PORT] [REPLICA_PORT]" >&2
	exit 2
}

(($# >= 2)) || usage
CMD=$1
RUN_DIR=$2
PPORT=${3:-5440}
RPORT=${4:-5441}
[[ "$PPORT" =~ ^[0-9]+$ && "$RPORT" =~ ^[0-9]+$ ]] || usage

if [[ $CMD == start ]]; then
	mkdir -p "$RUN_DIR"
elif [[ ! -d "$RUN_DIR" ]]; then
	echo "pgcluster: no cluster in $RUN_DIR"
	[[ $CMD == stop ]] && exit 0
	exit 3
fi
RUN_DIR=$(cd "$RUN_DIR" && pwd -P)
LINK=$RUN_DIR/pg
ENV_FILE=$RUN_DIR/pgcluster.env

AS_ROOT=0
((EUID == 0)) && AS_ROOT=1

# Runs a command as the database OS user, from a folder it can enter.
as_pg() {
	if ((AS_ROOT)); then
		(cd "${BASE:-/}" && runuser -u "$PG_USER" -- env HOME="${BASE:-/tmp}" "$@")
	else
		(cd "${BASE:-/}" && "$@")
	fi
}

can_reach() { # can the database user enter and write this folder?
	if ((AS_ROOT)); then
		runuser -u "$PG_USER" -- test -x "$1" -a -w "$1" 2>/dev/null
	else
		test -x "$1" -a -w "$1"
	fi
}

ensure_user() {
	((AS_ROOT)) || return 0
	if ! id -u "$PG_USER" >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$PG_USER"
		echo "pgcluster: created OS user $PG_USER"
	fi
}

# Sets BASE (the real data folder) without creating anything.
locate_base() {
	if [[ -L "$LINK" ]]; then
		BASE=$(readlink "$LINK")
	elif [[ -d "$LINK" ]]; then
		BASE=$LINK
	else
		BASE=
	fi
}

# Chooses and creates BASE for a new cluster.
make_base() {
	local tmpbase
	tmpbase=/tmp/heliospg-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)
	if [[ -L "$LINK" ]]; then
		BASE=$(readlink "$LINK")
	elif [[ -d "$LINK" ]]; then
		BASE=$LINK
	else
		# Unix socket paths are limited to 107 bytes (".s.PGSQL.NNNNN" included).
		local sock_suffix=/sock/.s.PGSQL.00000
		local sock_len=$((${#LINK} + ${#sock_suffix}))
		mkdir -p "$LINK"
		if ((AS_ROOT)); then
			chown "$PG_USER:$PG_USER" "$LINK"
		fi
		if ((sock_len > 100)) || ! can_reach "$LINK"; then
			rmdir "$LINK"
			ln -s "$tmpbase" "$LINK"
			BASE=$tmpbase
			echo "pgcluster: $RUN_DIR is not usable by the database user (or too long a path); data in $BASE"
		else
			BASE=$LINK
		fi
	fi
	mkdir -p "$BASE"
	if ((AS_ROOT)); then
		chown "$PG_USER:$PG_USER" "$BASE"
	fi
	chmod 755 "$BASE"
	if ! can_reach "$BASE"; then
		echo "pgcluster: $BASE is not writable by the database user" >&2
		exit 1
	fi
	as_pg mkdir -p "$BASE/sock"
	chmod 755 "$BASE/sock"
}

# Is the postmaster of this data folder running? (pid alive and really ours)
running() {
	local data=$1 pid
	[[ -f "$data/postmaster.pid" ]] || return 1
	pid=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ -d /proc/$pid ]] || return 1
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres* ]] || return 1
	# postgres keeps its data folder as its working directory
	[[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(cd "$data" && pwd -P)" ]] || return 1
}

# Removes postmaster.pid and socket lock files a crashed server left behind.
clear_stale() {
	local data=$1 port=$2
	if [[ -f "$data/postmaster.pid" ]] && ! running "$data"; then
		echo "pgcluster: removing stale $data/postmaster.pid"
		rm -f "$data/postmaster.pid"
	fi
	local lock=$BASE/sock/.s.PGSQL.$port.lock
	if [[ -f "$lock" ]]; then
		local pid
		pid=$(head -n1 "$lock" 2>/dev/null || true)
		if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! [[ -d /proc/$pid ]] ||
			[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != postgres* ]]; then
			rm -f "$lock" "$BASE/sock/.s.PGSQL.$port"
		fi
	fi
}

psql_super() { # psql_super PORT SQL...
	local port=$1
	shift
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BASE/sock" -p "$port" -U postgres -d postgres "$@"
}

write_settings() { # write_settings DATADIR PORT
	local data=$1 port=$2
	as_pg tee "$data/helios.conf" >/dev/null <<EOF
# written by scripts/pgcluster.sh
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$BASE/sock'
wal_level = replica
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
# the result-cache tests count server executions with it
shared_preload_libraries = 'pg_stat_statements'
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %q%u@%d '
hot_standby = on
max_wal_senders = 10
max_replication_slots = 10
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
	make_cert "$data"
	if ! grep -q "^include_if_exists = 'helios.conf'" "$data/postgresql.conf"; then
		echo "include_if_exists = 'helios.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
	fi
}

# A self-signed certificate for 127.0.0.1/localhost, so tests can exercise
# TLS from the proxy to the servers (tls.server_mode). BASE/ca.crt is a
# readable copy to use as the CA.
make_cert() { # make_cert DATADIR
	local data=$1
	if [[ ! -f $BASE/ca.crt ]]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
			-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
			-keyout "$BASE/ca.key" -out "$BASE/ca.crt" >/dev/null 2>&1
		chmod 644 "$BASE/ca.crt"
	fi
	if ! as_pg test -f "$data/server.crt"; then
		as_pg tee "$data/server.crt" <"$BASE/ca.crt" >/dev/null
		as_pg tee "$data/server.key" <"$BASE/ca.key" >/dev/null
		as_pg chmod 600 "$data/server.key"
	fi
}

write_hba() {
	local data=$1
	as_pg tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# written by scripts/pgcluster.sh
# TYPE  DATABASE     USER     ADDRESS        METHOD
local   all          all                     trust
local   replication  all                     trust
host    all          md5user  127.0.0.1/32   md5
host    all          md5user  ::1/128        md5
host    replication  all      127.0.0.1/32   scram-sha-256
host    replication  all      ::1/128        scram-sha-256
host    all          all      127.0.0.1/32   scram-sha-256
host    all          all      ::1/128        scram-sha-256
EOF
}

pg_start() { # pg_start NAME PORT
	local name=$1 port=$2 data=$BASE/$1
	clear_stale "$data" "$port"
	if ! as_pg "$PGBIN/pg_ctl" -D "$data" -l "$BASE/$name.log" -w -t 60 start >/dev/null; then
		echo "pgcluster: $name failed to start on port $port; log tail:" >&2
		tail -n 30 "$BASE/$name.log" >&2 || true
		if [[ $name == replica ]]; then
			# no half cluster left behind for the next start to trip on
			as_pg "$PGBIN/pg_ctl" -D "$BASE/primary" -m fast -w stop >/dev/null 2>&1 || true
		fi
		exit 1
	fi
}

# A data folder without our marker is a setup that was interrupted: stop
# whatever runs there and start over.
stop_half_made() {
	local data=$1
	if running "$data"; then
		as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
	fi
	rm -rf "$data"
}

# The ports are fixed when the cluster is made.
check_ports() {
	local name want have
	for name in primary replica; do
		want=$PPORT
		[[ $name == replica ]] && want=$RPORT
		have=$(sed -n 's/^port = //p' "$BASE/$name/helios.conf" 2>/dev/null || true)
		if [[ -f "$BASE/$name/.helios-ready" && -n "$have" && "$have" != "$want" ]]; then
			echo "pgcluster: the $name in $RUN_DIR was made with port $have, not $want;" \
				"stop it and remove $LINK to change ports" >&2
			exit 1
		fi
	done
}

setup_primary() {
	local data=$BASE/primary
	if [[ -f "$data/.helios-ready" ]]; then
		return 0
	fi
	stop_half_made "$data"
	echo "pgcluster: initdb primary"
	local pwfile=$BASE/.pwfile
	printf '%s\n' "$SUPER_PASSWORD" | as_pg tee "$pwfile" >/dev/null
	as_pg "$PGBIN/initdb" -D "$data" -U postgres --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
		>"$BASE/initdb.log" 2>&1 || {
		cat "$BASE/initdb.log" >&2
		exit 1
	}
	rm -f "$pwfile"
	write_settings "$data" "$PPORT"
	write_hba "$data"
	pg_start primary "$PPORT"
	psql_super "$PPORT" <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'replicator') THEN
    CREATE ROLE replicator LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
  END IF;
END \$\$;
EOF
	as_pg touch "$data/.helios-ready"
}

setup_replica() {
	local data=$BASE/replica
	if [[ -f "$data/.helios-ready" ]]; then
		return 0
	fi
	stop_half_made "$data"
	echo "pgcluster: pg_basebackup replica"
	psql_super "$PPORT" -c \
		"SELECT pg_drop_replication_slot('replica1') FROM pg_replication_slots WHERE slot_name = 'replica1'" >/dev/null
	as_pg "$PGBIN/pg_basebackup" -D "$data" -R -C -S replica1 -X stream -c fast \
		-d "host=127.0.0.1 port=$PPORT user=replicator password=$REPL_PASSWORD" \
		>"$BASE/basebackup.log" 2>&1 || {
		cat "$BASE/basebackup.log" >&2
		exit 1
	}
	write_settings "$data" "$RPORT"
	as_pg touch "$data/.helios-ready"
}

write_env() {
	cat >"$ENV_FILE" <<EOF
PG_PRIMARY_PORT=$PPORT
PG_REPLICA_PORT=$RPORT
PG_SOCKET_DIR=$BASE/sock
PG_SSL_CA=$BASE/ca.crt
PG_BIN=$PGBIN
EOF
}

print_info() {
	echo "pgcluster: primary 127.0.0.1:$PPORT, replica 127.0.0.1:$RPORT, socket dir $BASE/sock"
	echo "pgcluster: superuser: psql -h $BASE/sock -p $PPORT -U postgres"
}

wait_streaming() {
	local i
	for ((i = 0; i < 100; i++)); do
		if [[ "$(psql_super "$PPORT" -At -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null)" -ge 1 ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "pgcluster: warning: replica is not streaming yet" >&2
}

cmd_start() {
	ensure_user
	make_base
	check_ports
	if [[ -f "$BASE/primary/.helios-ready" && -f "$BASE/replica/.helios-ready" ]] &&
		running "$BASE/primary" && running "$BASE/replica"; then
		echo "pgcluster: already running"
		write_env
		print_info
		return 0
	fi
	setup_primary
	if ! running "$BASE/primary"; then
		pg_start primary "$PPORT"
	fi
	setup_replica
	if ! running "$BASE/replica"; then
		pg_start replica "$RPORT"
	fi
	wait_streaming
	write_env
	print_info
}

cmd_stop() {
	locate_base
	if [[ -z "$BASE" || ! -d "$BASE" ]]; then
		echo "pgcluster: nothing to stop in $RUN_DIR"
		return 0
	fi
	local name stopped=0
	for name in replica primary; do
		if running "$BASE/$name"; then
			as_pg "$PGBIN/pg_ctl" -D "$BASE/$name" -m fast -w -t 60 stop >/dev/null
			echo "pgcluster: stopped $name"
			stopped=1
		fi
	done
	((stopped)) || echo "pgcluster: not running"
}

cmd_status() {
	locate_base
	if [[ -z "$BASE" || ! -d "$BASE" ]]; then
		echo "pgcluster: no cluster in $RUN_DIR"
		return 3
	fi
	local rc=0 name port
	for name in primary replica; do
		port=$(sed -n 's/^port = //p' "$BASE/$name/helios.conf" 2>/dev/null || true)
		if running "$BASE/$name"; then
			echo "pgcluster: $name running (pid $(head -n1 "$BASE/$name/postmaster.pid"), port $port)"
		else
			echo "pgcluster: $name not running"
			rc=3
		fi
	done
	echo "pgcluster: socket dir $BASE/sock"
	return $rc
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
