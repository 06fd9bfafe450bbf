#!/usr/bin/env bash
# Builds the libFuzzer targets tests/fuzz/fuzz_*.c with clang into build/fuzz/
# (sources compiled directly, no Makefile involvement) and runs each for
# SECONDS (default 30) with -max_len=4096. Corpora persist in
# build/fuzz/corpus/<target>/ (seeded with a few valid inputs); crashing inputs
# go to build/fuzz/artifacts/<target>/. Prints one line per target, "ok" or
# "CRASH", with the number of executions; exits non-zero if any target crashed
# or failed to build.
#   FUZZ_TARGETS="startup scan"  run a subset
set -uo pipefail

if (($# > 1)) || [[ $# == 1 && ! "$1" =~ ^[0-9]+$ ]]; then
	echo "usage: $0 [SECONDS]" >&2
	exit 2
fi
SECONDS_PER_TARGET=${1:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
OUT=build/fuzz
CC=${FUZZ_CC:-clang}
# shellcheck disable=SC2054 # the commas are inside one -fsanitize= flag
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wshadow -Wno-unused-parameter)

# target -> sources besides tests/fuzz/fuzz_<target>.c, and extra link flags
declare -A SRCS=(
	[startup]="dataplane/pg/pgw.c"
	[scan]="dataplane/pg/pgw.c"
	[toml]="common/toml.c common/toml_tree.c common/toml_datetime.c"
	[scram]="dataplane/auth/scram.c"
	[hints]="dataplane/pipeline/hints.c"
)
declare -A LIBS=(
	[startup]=""
	[scan]=""
	[toml]="-lm"
	[scram]="-lssl -lcrypto"
	[hints]=""
)
read -ra TARGETS <<<"${FUZZ_TARGETS:-startup scan toml scram hints}"

# A few valid inputs per target so the fuzzer starts past the first checks.
# shellcheck disable=SC2016 # the '$' in the SCRAM nonces is literal
seed() {
	local dir=$OUT/corpus/$1
	[[ -n "$(ls -A "$dir" 2>/dev/null)" ]] && return
	mkdir -p "$dir"
	case $1 in
	startup)
		printf '\0\0\0\x2d\0\3\0\0user\0alice\0database\0shop\0options\0-c\0\0' >"$dir/v3"
		printf '\0\0\0\x08\x04\xd2\x16\x2f' >"$dir/ssl"
		printf '\0\0\0\x10\x04\xd2\x16\x2e\0\0\x10\x92\xde\xad\xbe\xef' >"$dir/cancel"
		;;
	scan)
		printf '\x07\x01R\0\0\0\x08\0\0\0\0S\0\0\0\x10client\0UTF8\0Z\0\0\0\x05I' >"$dir/login"
		printf '\x01\x00E\0\0\0\x1bSERROR\0C42601\0Msyntax\0\0I\0\0\0\x04' >"$dir/error"
		;;
	toml)
		printf '[listen]\nport = 6432\nhosts = ["a", "b"]\n[[pool]]\nname = "x"\nsize = 1.5e3\nat = 1979-05-27T07:32:00Z\nt = { a = true, b.c = 07:32:00 }\ns = """\nmulti\\tline"""\n' >"$dir/basic"
		;;
	scram)
		printf '\0n,,n=,r=abcdefghijklmnop\0c=biws,r=abcdefghijklmnop%%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA' >"$dir/server"
		printf '\2c=biws,r=rOprNGfwEbeRWgbNEkqO%%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=' >"$dir/server-final"
		printf '\1r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096\0v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=' >"$dir/client"
		printf '\3e=invalid-proof' >"$dir/client-final"
		;;
	esac
}

fail=0
mkdir -p "$OUT"
for t in "${TARGETS[@]}"; do
	if [[ -z "${SRCS[$t]+x}" ]]; then
		echo "fuzz_$t: unknown target" >&2
		fail=1
		continue
	fi
	bin=$OUT/fuzz_$t
	# shellcheck disable=SC2086 # source and library lists split on purpose
	if ! "$CC" "${CFLAGS[@]}" "tests/fuzz/fuzz_$t.c" ${SRCS[$t]} -o "$bin" ${LIBS[$t]}; then
		echo "fuzz_$t: BUILD FAILED"
		fail=1
		continue
	fi
	seed "$t"
	mkdir -p "$OUT/artifacts/$t"
	log=$OUT/fuzz_$t.log
	"$bin" -max_len=4096 -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if ((rc == 0)); then
		echo "fuzz_$t: ok (${execs:-?} execs in ${SECONDS_PER_TARGET}s)"
	else
		echo "fuzz_$t: CRASH (exit $rc after ${execs:-?} execs; log $log)"
		grep -E '^(SUMMARY|==[0-9]+==ERROR)|runtime error|Test unit written' "$log" | head -5 | sed 's/^/    /'
		fail=1
	fi
done
exit "$fail"
