#!/usr/bin/env bash
# Builds the libFuzzer targets tests/fuzz/fuzz_*.c with clang into build/fuzz/
# (sources compiled directly, no Makefile involvement; a target is rebuilt
# only when a file it was built from changed) and runs each for SECONDS
# (default 30) with -max_len=4096. Corpora persist in build/fuzz/corpus/<target>/
# (seeded with a few valid inputs written below); crashing inputs go to
# build/fuzz/artifacts/<target>/. Prints one line per target, "ok" or "CRASH",
# with the number of executions; exits non-zero if any target crashed or
# failed to build.
#   FUZZ_TARGETS="startup scan"  run a subset
#   make fuzz                    every target for FUZZ_SECS (default 60) seconds
#   make check                   every target for a few seconds (after unit)
# Targets:
#   startup  pgw_parse_startup (startup, SSL and cancel packets)
#   scan     the relay's header scanner pgw_scan against pgw_next_msg
#   toml     the TOML reader
#   scram    SCRAM-SHA-256 exchanges, both sides
#   hints    routing/caching hints in SQL comments, against a reference lexer
#   console  the admin console's command parser and its answers
#   sqlc     the SQL classifier and scanner behind session tracking
#            (sqlc.c, sqlscan.c): pre-check never misses, ranges replay
#   msgpath  the post-login path of transaction pooling, its pure pieces: the
#            relay's chunked header scan, Query tracking (settings, RESET,
#            DISCARD), Parse/Bind/Close statement maps, startup settings, and
#            the catch-up SQL a server gets on bind (txn.c's state machine
#            itself needs sockets and is covered by the integration tests)
#   jwt      JWT verification (jwtauth.c): raw tokens, and fuzzed JSON headers
#            and claims behind a valid HMAC signature
#   plugin   WASM plugin modules (plugin/wasm.cc on WABT): refused with a
#            reason, or loaded and every hook called under small limits;
#            seeded with the test modules and sample plugins (built by make)
set -uo pipefail

if (($# > 1)) || [[ $# == 1 && ! "$1" =~ ^[0-9]+$ ]]; then
	echo "usage: $0 [SECONDS]" >&2
	exit 2
fi
SECONDS_PER_TARGET=${1:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/fuzz.sh
cd "$ROOT" || exit 1
OUT=build/fuzz
CC=${FUZZ_CC:-clang}
# shellcheck disable=SC2054 # the commas are inside one -fsanitize= flag
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wshadow -Wno-unused-parameter)

CXX=${FUZZ_CXX:-clang++}
CXXFLAGS=(-std=c++17 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wno-unused-parameter)

# target -> sources besides tests/fuzz/fuzz_<target>.c, and extra link flags
declare -A SRCS=(
	[startup]="dataplane/pg/pgw.c"
	[scan]="dataplane/pg/pgw.c"
	[toml]="common/toml.c common/toml_tree.c common/toml_datetime.c"
	[scram]="dataplane/auth/scram.c"
	[hints]="dataplane/pipeline/engine/hints.c"
	[console]="dataplane/report/console.c dataplane/pg/pgw.c common/sbuf.c common/cfg_keys.c"
	[sqlc]="dataplane/sql/sqlc.c dataplane/sql/sqlscan.c"
	[jwt]="dataplane/auth/jwtauth.c"
	[plugin]="dataplane/plugin/wasm.cc"
	[msgpath]="dataplane/pg/pgw.c dataplane/conn/prep.c dataplane/conn/guc.c dataplane/sql/sqlc.c dataplane/sql/sqlscan.c dataplane/pipeline/engine/hints.c"
)
declare -A LIBS=(
	[startup]=""
	[scan]=""
	[toml]="-lm"
	[scram]="-lssl -lcrypto"
	[hints]=""
	[console]=""
	[sqlc]="-lpg_query -lprotobuf-c"
	[msgpath]="-lpg_query -lprotobuf-c"
	[jwt]="-ljwt -ljansson -lssl -lcrypto"
	[plugin]="-fsanitize-link-c++-runtime -lwabt -lstdc++ -lm"
)
# target -> libFuzzer dictionary (tests/fuzz/*.dict)
declare -A DICTS=(
	[sqlc]=tests/fuzz/sql.dict
	[msgpath]=tests/fuzz/sql.dict
	[jwt]=tests/fuzz/jwt.dict
)
read -ra TARGETS <<<"${FUZZ_TARGETS:-startup scan toml scram hints console sqlc msgpath jwt plugin}"
# protoc-c output for the headers that need it (console.h), as the Makefile
# makes it, but in build/fuzz/gen
CFLAGS+=(-I"$OUT/gen")

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
	console)
		printf '\x40SHOW POOLS;' >"$dir/show"
		printf '\x10pause "my""db" ' >"$dir/pause"
		printf '\xffRESUME appdb;\n' >"$dir/resume"
		printf '\x05RELOAD; SHOW HELP' >"$dir/multi"
		printf '\x80 ;' >"$dir/empty"
		;;
	sqlc)
		printf "SET search_path TO a, \"B\"; SET LOCAL x = 1; BEGIN; SELECT pg_advisory_lock(1)" >"$dir/set"
		printf "DECLARE c CURSOR WITH HOLD FOR SELECT 1; LISTEN x; PREPARE p(int) AS SELECT \$1; EXECUTE p(1)" >"$dir/session"
		printf "CREATE TEMP TABLE t(a int); RESET ALL; DISCARD ALL; SELECT set_config('a.b', 'c', false) -- end" >"$dir/reset"
		printf "/* c /* nested */ */ (SET TIME ZONE 'UTC'); SET SESSION AUTHORIZATION DEFAULT; COMMIT AND CHAIN" >"$dir/misc"
		;;
	msgpath)
		# startup (options -c), Query SET, Parse/Bind/Describe/Execute/Sync, Close, RESET
		{
			printf '\x80\0\0\0\x3b\0\x03\0\0user\0alice\0database\0shop\0options\0-c work_mem=64MB\0\0'
			printf 'Q\0\0\0\x20SET search_path = a, b -- x\0'
			printf 'P\0\0\0\x17s1\0SELECT $1\0\0\x01\0\0\0\x17'
			printf 'B\0\0\0\x0e\0s1\0\0\0\0\x01\0\0'
			printf 'D\0\0\0\x08Ss1\0E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04'
			printf 'C\0\0\0\x08Ss1\0Q\0\0\0\x13RESET work_mem\0'
		} >"$dir/session"
		printf "\x01Q\0\0\0\x23SET TIME ZONE 'UTC'; RESET ALL\0Q\0\0\0\x10DISCARD ALL\0" >"$dir/reset"
		;;
	jwt)
		# claims behind the fixed header (byte 3), and a header + claims pair (byte 1)
		printf '\x03{"exp":9999999999,"sub":"alice","iss":"iss","aud":["x","aud"],"t":"acme","iat":1,"nbf":1}' >"$dir/claims"
		printf '\x01{"alg":"HS256","kid":"k"}\0{"exp":1.5e9,"sub":"bob","aud":"aud"}' >"$dir/pair"
		printf '\x00eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.' >"$dir/none"
		;;
	plugin)
		# the knob byte, then a module: every .wasm make built for the tests and samples
		local f
		for f in build/*/tests/plugins/*.wasm build/*/plugins/*.wasm; do
			[[ -f $f ]] && { printf '\x05'; cat "$f"; } >"$dir/$(basename "$(dirname "$(dirname "$f")")")-${f##*/}"
		done
		# at least one, when make has built none yet
		printf '\x05\0asm\1\0\0\0' >"$dir/empty-module"
		;;
	scram)
		printf '\0n,,n=,r=abcdefghijklmnop\0c=biws,r=abcdefghijklmnop%%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA' >"$dir/server"
		printf '\2c=biws,r=rOprNGfwEbeRWgbNEkqO%%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=' >"$dir/server-final"
		printf '\1r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096\0v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=' >"$dir/client"
		printf '\3e=invalid-proof' >"$dir/client-final"
		;;
	esac
}

# Whether a file bin was built from (its .d, from clang -MM) is newer.
stale() {
	local bin=$1 dep=$1.d f
	[[ -x "$bin" && -f "$dep" && ! "$SELF" -nt "$bin" ]] || return 0
	# shellcheck disable=SC2013 # dependency file names are words
	for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
		[[ "$f" -nt "$bin" ]] && return 0
	done
	return 1
}

fail=0
mkdir -p "$OUT/gen"
if [[ ! "$OUT/gen/proto/helios.pb-c.h" -nt proto/helios.proto ]] &&
	! protoc-c --c_out="$OUT/gen" proto/helios.proto; then
	echo "fuzz: protoc-c failed" >&2
	exit 1
fi
for t in "${TARGETS[@]}"; do
	if [[ -z "${SRCS[$t]+x}" ]]; then
		echo "fuzz_$t: unknown target" >&2
		fail=1
		continue
	fi
	bin=$OUT/fuzz_$t
	# C++ sources (plugin/wasm.cc) are compiled apart by clang++, the rest
	# with the fuzz target itself
	csrcs=() objs=() cxx_ok=1
	for src in ${SRCS[$t]}; do
		if [[ $src == *.cc ]]; then
			obj=$OUT/obj/${src//\//_}.o
			mkdir -p "$OUT/obj"
			if stale "$bin" && ! "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$obj"; then
				cxx_ok=0
			fi
			objs+=("$obj")
		else
			csrcs+=("$src")
		fi
	done
	# shellcheck disable=SC2086 # library lists split on purpose
	if ((cxx_ok == 0)) || { stale "$bin" && ! { "$CC" "${CFLAGS[@]}" "tests/fuzz/fuzz_$t.c" "${csrcs[@]}" \
		"${objs[@]}" -o "$bin" ${LIBS[$t]} &&
		"$CC" -MM -I. -I"$OUT/gen" "tests/fuzz/fuzz_$t.c" ${SRCS[$t]} >"$bin.d"; }; }; then
		echo "fuzz_$t: BUILD FAILED"
		fail=1
		continue
	fi
	seed "$t"
	mkdir -p "$OUT/artifacts/$t"
	log=$OUT/fuzz_$t.log
	dict=()
	[[ -n "${DICTS[$t]:-}" ]] && dict=(-dict="${DICTS[$t]}")
	"$bin" -max_len=4096 -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 \
		"${dict[@]}" -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" >"$log" 2>&1
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
