#!/usr/bin/env bash
# make demo / make demo-stop: a PostgreSQL primary + replica in run/demo
# (ports 5440/5441) with HeliosProxy in front on 127.0.0.1:5433.
#
#   HELIOS_BIN=<dir with heliosproxy> scripts/demo.sh start
#   scripts/demo.sh stop
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/run/demo
PPORT=5440
RPORT=5441
LISTEN_PORT=5433
CONF=$RUN/heliosproxy.toml
PIDFILE=$RUN/heliosproxy.pid
LOG=$RUN/heliosproxy.log
PGBIN=/usr/lib/postgresql/15/bin
HELIOS_BIN=${HELIOS_BIN:-$ROOT/build/release/bin}

proxy_pid() { # prints the pid of a running demo proxy, fails if none
	local pid
	[[ -f "$PIDFILE" ]] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null || true)
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q heliosproxy || return 1
	echo "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
	cat >"$CONF" <<EOF
# HeliosProxy demo configuration (written by scripts/demo.sh)
listen_address = "127.0.0.1:$LISTEN_PORT"
admin_address = "127.0.0.1:8432"
admin_users = "demo"

[routing]
# the control plane measures replica lag with a heartbeat row it writes here
check_database = "demo"

[pool_mode]
mode = "session"
max_pool_size = 20

[[nodes]]
name = "primary"
host = "127.0.0.1"
port = $PPORT
role = "primary"

[[nodes]]
name = "replica"
host = "127.0.0.1"
port = $RPORT
role = "replica"

[auth]
method = "scram-sha-256"

[[auth.users]]
name = "demo"
password = "demo"
EOF
}

start() {
	bash "$ROOT/scripts/pgcluster.sh" start "$RUN" "$PPORT" "$RPORT"
	# shellcheck disable=SC1091
	source "$RUN/pgcluster.env"
	local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PPORT" -U postgres -d postgres)
	"${psql[@]}" <<'EOF'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo') THEN
    CREATE ROLE demo LOGIN PASSWORD 'demo';
  END IF;
END $$;
EOF
	if [[ -z "$("${psql[@]}" -At -c "SELECT 1 FROM pg_database WHERE datname = 'demo'")" ]]; then
		"${psql[@]}" -c "CREATE DATABASE demo OWNER demo"
	fi

	local pid
	if pid=$(proxy_pid); then
		echo "demo: heliosproxy already running (pid $pid)"
	else
		if [[ ! -x "$HELIOS_BIN/heliosproxy" ]]; then
			echo "demo: $HELIOS_BIN/heliosproxy not found (run make first)" >&2
			exit 1
		fi
		if port_open "$LISTEN_PORT"; then
			echo "demo: 127.0.0.1:$LISTEN_PORT is already in use by another program" >&2
			exit 1
		fi
		write_config
		: >"$LOG"
		(cd "$RUN" && exec setsid "$HELIOS_BIN/heliosproxy" -c "$CONF" </dev/null >>"$LOG" 2>&1) &
		pid=$!
		echo "$pid" >"$PIDFILE"
		local i
		for ((i = 0; i < 150; i++)); do
			if port_open "$LISTEN_PORT"; then
				break
			fi
			if ! kill -0 "$pid" 2>/dev/null; then
				echo "demo: heliosproxy exited; log tail:" >&2
				tail -n 30 "$LOG" >&2 || true
				rm -f "$PIDFILE"
				exit 1
			fi
			sleep 0.1
		done
		if ! port_open "$LISTEN_PORT"; then
			echo "demo: heliosproxy does not accept on 127.0.0.1:$LISTEN_PORT after 15 s; log tail:" >&2
			tail -n 30 "$LOG" >&2 || true
			kill -TERM "$pid" 2>/dev/null || true
			rm -f "$PIDFILE"
			exit 1
		fi
		echo "demo: heliosproxy running (pid $pid), config $CONF, log $LOG"
	fi
	echo "demo: connect with:"
	echo "  psql \"host=127.0.0.1 port=$LISTEN_PORT dbname=demo user=demo password=demo\""
	echo "demo: the control plane runs in-process; try:"
	echo "  $HELIOS_BIN/helioctl -c $CONF status"
	echo "  $HELIOS_BIN/helioctl -c $CONF config set pool_mode.max_pool_size 10"
	echo "  curl -s 127.0.0.1:8432/metrics"
	echo "  psql \"host=127.0.0.1 port=$LISTEN_PORT dbname=heliosproxy user=demo password=demo\" -c 'SHOW POOLS'"
}

stop() {
	local pid i
	if pid=$(proxy_pid); then
		kill -TERM "$pid"
		for ((i = 0; i < 400; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "demo: heliosproxy (pid $pid) still running after 40 s; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		echo "demo: heliosproxy stopped"
	else
		echo "demo: heliosproxy not running"
	fi
	rm -f "$PIDFILE"
	bash "$ROOT/scripts/pgcluster.sh" stop "$RUN"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
