#!/usr/bin/env bash
# Installs the Debian 12 packages HeliosProxy needs to build and test,
# only those that are missing. A no-op (well under a second) when all are
# present. Run as root, or as a user with sudo.
set -euo pipefail

PACKAGES=(
	# toolchain
	gcc make pkg-config clang clang-format
	# libraries
	liburing-dev libbpf-dev bpftool libelf-dev zlib1g-dev libssl-dev
	libpg-query-dev libprotobuf-c-dev protobuf-c-compiler libnng-dev
	libhiredis-dev libmicrohttpd-dev libjansson-dev libldap-dev libjwt-dev libpq-dev
	wabt libcmocka-dev
	lld # wasm-ld: links the sample WASM plugins (plugins/, clang --target=wasm32)
	libsystemd-dev # sd_notify readiness for the Type=notify units (deploy/systemd/)
	# tests
	python3-pytest python3-psycopg python3-prometheus-client
	python3-jwt # tests/unit/jwt_tokens.py: real tokens for test_jwtauth
	python3-kubernetes python3-seccomp # scripts/k8s-validate.py, test_k8s_manifests.py
	# the dashboard test drives headless Chromium over the DevTools protocol
	chromium python3-websocket
	# promtool (from prometheus) checks /metrics output and the alert rules
	# of deploy/monitoring (check rules, test rules)
	prometheus
	postgresql-15 postgresql-client-15 postgresql-contrib
	redis-server slapd ldap-utils pgbouncer
	# test_console_pgbouncer.py: the exporter PgBouncer users run, scraping the console
	prometheus-pgbouncer-exporter
	openssl procps iproute2
	systemd man-db # test_install.py: systemd-analyze verify, man --warnings
	# real drivers for tests/integration/test_drivers.py (node's pg comes from
	# npm at test time)
	python3-psycopg2 python3-asyncpg ruby-pg
	libpostgresql-jdbc-java default-jdk-headless
	golang-go golang-github-jackc-pgx-v4-dev
	nodejs
	# make image and tests/k8s: an OCI image from Debian packages (mmdebstrap,
	# buildah), played with podman kube play (runc: crun refuses the hybrid
	# cgroup layout, deploy/image/containers.conf; catatonit: the pods' pause
	# image is built locally from it, no registry)
	mmdebstrap buildah podman runc catatonit python3-yaml
)

# One dpkg-query call for all: prints "name status" for the known ones.
missing=()
declare -A ok=()
while read -r name status; do
	[[ "$status" == "ii" ]] && ok["${name%%:*}"]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for p in "${PACKAGES[@]}"; do
	[[ -n "${ok[$p]:-}" ]] || missing+=("$p")
done

# Debian's nodejs comes without npm (NodeSource's has it built in)
if ! command -v npm >/dev/null 2>&1; then
	missing+=(npm)
fi
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client) # renders deploy/; keep a kubectl already there

if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "deps: missing packages: ${missing[*]}"

SUDO=()
if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "deps: not root and no sudo; install them with:" >&2
		echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
fi

# Keep postgresql/redis/slapd from starting system services while installing.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
	if ((created_policy)); then
		"${SUDO[@]}" rm -f "$POLICY"
	fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY"
	created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${#missing[@]} package(s)"
