#!/usr/bin/env bash
# make man: a page from its hand-written roff source (docs/man/*.in) with
# @VERSION@ and @HELP@ filled in. @HELP@ is the program's --help text, set
# inside .EX/.EE: backslashes escaped, and a line that starts with '.' or
# '\'' kept from being read as a request.
#   scripts/gen-man.sh SOURCE.in PROGRAM VERSION > PAGE
set -euo pipefail
src=$1 prog=$2 version=$3
help=$("$prog" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/")
while IFS= read -r line || [[ -n "$line" ]]; do
	if [[ "$line" == "@HELP@" ]]; then
		printf '%s\n' "$help"
	else
		printf '%s\n' "${line//@VERSION@/$version}"
	fi
done <"$src"
