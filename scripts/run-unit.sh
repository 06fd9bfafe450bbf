#!/usr/bin/env bash
# Runs every BUILD_DIR/tests/test_* cmocka program from the repo root under
# ASan/UBSan settings, then prints "unit: N passed, M failed" (individual
# cmocka tests; a program that crashes or exits non-zero without reporting a
# failed test counts as one failure). Exit status non-zero on any failure or
# when there is no test program at all.
set -uo pipefail

if (($# != 1)); then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$1
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$PWD/$BUILD_DIR
cd "$ROOT" || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
unset CMOCKA_MESSAGE_OUTPUT CMOCKA_XML_FILE # keep cmocka's standard output format
TIMEOUT=${UNIT_TIMEOUT:-300}

progs=()
for f in "$BUILD_DIR"/tests/test_*; do
	[[ -f "$f" && -x "$f" ]] && progs+=("$f")
done
if ((${#progs[@]} == 0)); then
	echo "unit: no test programs in $BUILD_DIR/tests"
	echo "unit: 0 passed, 1 failed"
	exit 1
fi

total_pass=0
total_fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for prog in "${progs[@]}"; do
	name=$(basename "$prog")
	echo "=== $name"
	timeout -k 10 "$TIMEOUT" "$prog" >"$out" 2>&1
	rc=$?
	cat "$out"
	pass=0
	fail=0
	summary=0
	while IFS= read -r line; do
		if [[ "$line" =~ ^\[\ \ PASSED\ \ \]\ ([0-9]+)\ test ]]; then
			pass=$((pass + BASH_REMATCH[1]))
			summary=1
		elif [[ "$line" =~ ^\[\ \ FAILED\ \ \]\ ([0-9]+)\ test ]]; then
			fail=$((fail + BASH_REMATCH[1]))
			summary=1
		fi
	done <"$out"
	if ((rc != 0 && fail == 0)); then
		if ((rc == 124 || rc == 137)); then
			echo "--- $name: timed out after ${TIMEOUT}s"
		elif ((rc > 128)); then
			echo "--- $name: killed by signal $((rc - 128))"
		else
			echo "--- $name: exited with status $rc"
		fi
		fail=$((fail + 1))
	elif ((rc == 0 && summary == 0)); then
		echo "--- $name: no cmocka summary in its output"
		fail=$((fail + 1))
	fi
	echo "--- $name: passed=$pass failed=$fail"
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
done

echo "unit: $total_pass passed, $total_fail failed"
((total_fail == 0))
