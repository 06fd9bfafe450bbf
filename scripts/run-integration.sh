#!/usr/bin/env bash
# Integration tests: a PostgreSQL primary + replica in run/test (ports
# 55432/55433, reused if a developer already started it), then
# tests/integration under pytest once per I/O backend (io_uring, epoll).
#
#   HELIOS_BIN=<dir with heliosproxy> scripts/run-integration.sh [pytest args...]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
RUN=$ROOT/run/test
PPORT=55432
RPORT=55433
export HELIOS_BIN=${HELIOS_BIN:-$ROOT/build/release/bin}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-600} # per backend run

if [[ ! -x "$HELIOS_BIN/heliosproxy" ]]; then
	echo "integration: $HELIOS_BIN/heliosproxy not found (build it first: make)" >&2
	exit 1
fi

started=0
if bash scripts/pgcluster.sh status "$RUN" "$PPORT" "$RPORT" >/dev/null 2>&1; then
	echo "integration: reusing the running cluster in $RUN"
else
	bash scripts/pgcluster.sh start "$RUN" "$PPORT" "$RPORT" || exit 1
	started=1
fi
cleanup() {
	if ((started)); then
		bash scripts/pgcluster.sh stop "$RUN" || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC1091
source "$RUN/pgcluster.env"
export HELIOS_PG_PORT=$PG_PRIMARY_PORT
export HELIOS_PG_REPLICA_PORT=$PG_REPLICA_PORT
export HELIOS_PG_SOCKET=$PG_SOCKET_DIR
export PYTHONDONTWRITEBYTECODE=1

failed=0
total_pass=0
total_fail=0
results=()
log=$(mktemp)
for backend in io_uring epoll; do
	echo "=== integration tests, io_backend=$backend"
	HELIOS_IO_BACKEND=$backend timeout -k 10 "$PYTEST_TIMEOUT" \
		/usr/bin/python3 -m pytest tests/integration -v -p no:cacheprovider "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# pytest's closing line, e.g. "==== 3 failed, 40 passed, 1 error in 52.1s ===="
	last=$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n 1 || true)
	pass=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	fail=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	errs=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	fail=$((fail + errs))
	case $rc in
	0) results+=("$backend: ok ($pass passed)") ;;
	5) results+=("$backend: FAILED (no tests collected)") ;;
	124 | 137) results+=("$backend: FAILED (timed out after ${PYTEST_TIMEOUT}s)") ;;
	*) results+=("$backend: FAILED (pytest exit $rc)") ;;
	esac
	if ((rc != 0)); then
		failed=1
		((fail > 0)) || fail=1
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
done
rm -f "$log"
cleanup >/dev/null # stop the cluster now, so the totals are the last lines
started=0

echo "=== integration summary"
for r in "${results[@]}"; do
	echo "  $r"
done
echo "integration: $total_pass passed, $total_fail failed"
exit $failed
