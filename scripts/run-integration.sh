#!/usr/bin/env bash
# Integration tests: a PostgreSQL primary + replica in run/test (ports
# 25432/25433, reused if a developer already started it), then
# tests/integration under pytest once per run.
#
#   HELIOS_BIN=<dir with heliosproxy> scripts/run-integration.sh [pytest args...]
#       one run per I/O backend (io_uring, epoll) with that build
#   INTEGRATION_RUNS="io_uring:<bin dir> epoll:<bin dir>" scripts/run-integration.sh
#       the runs listed, each BACKEND:BIN_DIR (make check: release on io_uring,
#       ASan+UBSan on epoll)
#
# A sanitizer report anywhere in a run's temporary folder (every proxy and
# helios-cp log is there) fails that run, even when no test noticed it.
# tests/integration/conftest.py sets the sanitizer options (ASAN_OPTIONS,
# UBSAN_OPTIONS) unless the environment has them.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
RUN=$ROOT/run/test
# below the ephemeral range (ip_local_port_range, 32768..60999 by default):
# a free port picked by bind(0) elsewhere on the machine, or a client
# socket's local port, can never hold them when the cluster starts
PPORT=25432
RPORT=25433
export HELIOS_BIN=${HELIOS_BIN:-$ROOT/build/release/bin}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-1200} # per run: a hang, not a slow run (each takes ~12 min)
RUNS=${INTEGRATION_RUNS:-"io_uring:$HELIOS_BIN epoll:$HELIOS_BIN"}

for r in $RUNS; do
	if [[ "$r" != *:* || ! -x "${r#*:}/heliosproxy" ]]; then
		echo "integration: run '$r': ${r#*:}/heliosproxy not found (build it first: make)" >&2
		exit 1
	fi
done

started=0
if bash scripts/pgcluster.sh status "$RUN" "$PPORT" "$RPORT" >/dev/null 2>&1; then
	echo "integration: reusing the running cluster in $RUN"
else
	bash scripts/pgcluster.sh start "$RUN" "$PPORT" "$RPORT" || exit 1
	started=1
fi
tmp=$(mktemp -d /tmp/helios-integration.XXXXXX)
keep=0 # a failed run's logs stay for the developer
cleanup() {
	if ((started)); then
		bash scripts/pgcluster.sh stop "$RUN" || true
	fi
	((keep)) || rm -rf "$tmp"
	rm -f "$tmp/pytest.log"
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
log=$tmp/pytest.log
for r in $RUNS; do
	backend=${r%%:*}
	bin=$(cd "${r#*:}" && pwd)
	label=$backend
	[[ $bin == */asan/* ]] && label="$backend, asan"
	base=$tmp/$backend-$(basename "$(dirname "$bin")")
	echo "=== integration tests, io_backend=$backend, $bin"
	t0=$SECONDS
	HELIOS_BIN=$bin HELIOS_IO_BACKEND=$backend timeout -k 10 "$PYTEST_TIMEOUT" \
		/usr/bin/python3 -m pytest tests/integration -v -p no:cacheprovider --durations=15 --basetemp="$base" "$@" 2>&1 |
		tee "$log"
	rc=${PIPESTATUS[0]}
	secs=$((SECONDS - t0))
	# pytest's closing line, e.g. "==== 3 failed, 40 passed, 1 error in 52.1s ===="
	last=$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n 1 || true)
	pass=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	fail=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	errs=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || echo 0)
	fail=$((fail + errs))
	# the safety net: reports in logs no fixture looked at
	# (*.expected-report: a log whose report a test expected, see test_matrix.py)
	reports=$(grep -rlE --exclude='*.expected-report' 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' \
		"$base" 2>/dev/null || true)
	if [[ -n "$reports" ]]; then
		echo "integration: sanitizer reports in:"
		for f in $reports; do
			echo "  $f"
		done
		for f in $reports; do
			grep -m1 -B2 -A30 -E 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$f"
		done
		((rc == 0)) && rc=1
		((fail > 0)) || fail=1
	fi
	case $rc in
	0) results+=("$label: ok ($pass passed, ${secs}s)") ;;
	5) results+=("$label: FAILED (no tests collected)") ;;
	124 | 137) results+=("$label: FAILED (timed out after ${PYTEST_TIMEOUT}s)") ;;
	*) results+=("$label: FAILED (pytest exit $rc${reports:+, sanitizer reports}, ${secs}s)") ;;
	esac
	if ((rc != 0)); then
		failed=1
		((fail > 0)) || fail=1
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if ((rc == 0)); then
		rm -rf "$base" # keep /tmp small
	else
		keep=1
		echo "integration: the logs of this run are kept in $base"
	fi
done
cleanup >/dev/null # stop the cluster now, so the totals are the last lines
started=0
trap - EXIT

echo "=== integration summary"
for r in "${results[@]}"; do
	echo "  $r"
done
echo "integration: $total_pass passed, $total_fail failed"
exit $failed
