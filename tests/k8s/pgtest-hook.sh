#!/bin/sh
# Run by scripts/build-image.sh pgtest on the root file system ($1) of
# localhost/helios-pgtest:15, the PostgreSQL server tests/k8s plays in a pod. The package's
# main cluster goes: pgtest-entry makes its own data directory at start.
set -eu
r=$1
rm -rf "$r/var/lib/postgresql/15/main" "$r/etc/postgresql/15/main" \
	"$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/locale" \
	"$r/var/cache/apt/archives"/*.deb "$r/var/lib/apt/lists"/*_Packages
chmod 1777 "$r/tmp"
find "$r/dev" -mindepth 1 -delete
# LLVM (and z3, which only it uses) serve JIT compilation alone: the server
# runs with jit=off (pgtest-entry); locale sources and perl's C headers no
# program here reads. About 140 MB of a test fixture.
rm -f "$r"/usr/lib/x86_64-linux-gnu/libLLVM-*.so* "$r"/usr/lib/x86_64-linux-gnu/libz3.so*
rm -rf "$r"/usr/lib/postgresql/15/lib/llvmjit* "$r"/usr/lib/postgresql/15/lib/bitcode \
	"$r/usr/share/i18n" "$r"/usr/lib/x86_64-linux-gnu/perl/5.*/CORE
