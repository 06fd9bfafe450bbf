#!/usr/bin/env bash
# make bench: the same pgbench loads against HeliosProxy, PgBouncer and
# PostgreSQL directly, in one run; results printed and written to
# docs/benchmarks.md (see bench/bench.py for what is measured, and the
# "Rerunning" section of that file for the BENCH_* / HELIOS_* knobs).
#
#   HELIOS_BIN=<dir with heliosproxy> bash bench/run.sh
#   BENCH_ROUNDS=1 BENCH_SECS=5 bash bench/run.sh      # quick look
#
# Starts its own PostgreSQL primary + replica in run/bench (ports 57432/57433)
# and stops it, and every proxy it started, at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/run/bench
PPORT=57432
RPORT=57433
PY=/usr/bin/python3
export HELIOS_BIN=${HELIOS_BIN:-$ROOT/build/release/bin}

for f in "$HELIOS_BIN/heliosproxy" /usr/sbin/pgbouncer /usr/lib/postgresql/15/bin/pgbench; do
	if [[ ! -x $f ]]; then
		echo "bench: $f not found (make builds heliosproxy; make deps installs pgbouncer and postgresql-15)" >&2
		exit 1
	fi
done
if [[ ! -x $PY ]]; then
	echo "bench: $PY not found" >&2
	exit 1
fi

# 10,000 idle clients need 10,000 descriptors in the client and in each proxy.
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 10100)); then
	echo "bench: warning: open file limit is $(ulimit -n); the idle-client test will open fewer connections" >&2
fi

mkdir -p "$RUN"
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	# proxies bench.py started and could not stop (it stops them itself normally)
	if [[ -f $RUN/bench.pids ]]; then
		while read -r pid; do
			[[ $pid =~ ^[0-9]+$ ]] || continue
			if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qE 'heliosproxy|pgbouncer'; then
				kill -TERM "$pid" 2>/dev/null || true
			fi
		done <"$RUN/bench.pids"
		rm -f "$RUN/bench.pids"
	fi
	bash "$ROOT/scripts/pgcluster.sh" stop "$RUN" || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$ROOT/scripts/pgcluster.sh" start "$RUN" "$PPORT" "$RPORT"
# shellcheck disable=SC1091
source "$RUN/pgcluster.env"
export PG_BIN PG_PRIMARY_PORT PG_SOCKET_DIR
psql_super=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PPORT" -U postgres -d postgres)

echo "bench: fresh database bench (role bench, SCRAM), pgbench -i -s 10"
"${psql_super[@]}" <<'EOF'
SET password_encryption = 'scram-sha-256';
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench') THEN
    CREATE ROLE bench LOGIN PASSWORD 'bench';
  ELSE
    ALTER ROLE bench LOGIN PASSWORD 'bench';
  END IF;
END $$;
EOF
"${psql_super[@]}" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)"
"${psql_super[@]}" -c "CREATE DATABASE bench OWNER bench"
PGPASSWORD=bench PGSSLMODE=disable "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PPORT" -U bench -i -s 10 -q bench 2>&1 |
	tail -n 1

BENCH_ROOT=$ROOT BENCH_RUN_DIR=$RUN "$PY" "$ROOT/bench/bench.py"
