#!/usr/bin/env bash
# make k8s-check: deploy/ rendered and checked against the Kubernetes object
# models, then played with podman kube play (tests/k8s/test_kubernetes.py).
# Builds the two images first (make image; localhost/helios-pgtest:15, the
# PostgreSQL server of the played pods): cached, so seconds when nothing
# changed. Where podman cannot run containers (not root, not installed) the
# played tests are skipped with that reason; the render and schema tests run.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}
export PYTHONDONTWRITEBYTECODE=1
t0=$SECONDS

skip=""
if ! command -v podman >/dev/null 2>&1; then
	skip="podman is not installed (make deps installs it)"
elif ((EUID != 0)); then
	skip="podman kube play runs as root here (rootless podman is not set up)"
elif ! err=$(podman info 2>&1 >/dev/null); then
	skip="podman does not work here: $(tail -n 1 <<<"$err")"
fi
if [[ -z "$skip" ]]; then
	# make image, with the script's own exit status: 3 = built, but podman
	# cannot start containers here (skip, with the reason it printed)
	$(command -v make) --no-print-directory MODE=release all || exit 1
	rc=0
	bash scripts/build-image.sh heliosproxy || rc=$?
	if ((rc == 3)); then
		skip="podman cannot run containers here (the reason is printed above)"
	elif ((rc != 0)); then
		exit 1
	else
		bash scripts/build-image.sh pgtest || exit 1
	fi
fi
if [[ -n "$skip" ]]; then
	echo "k8s-check: the played tests are skipped: $skip"
	export HELIOS_K8S_SKIP="$skip"
fi
echo "k8s-check: images ready after $((SECONDS - t0)) s"
timeout -k 10 "${K8S_TIMEOUT:-600}" /usr/bin/python3 -m pytest tests/k8s -v -rs -p no:cacheprovider "$@"
rc=$?
echo "k8s-check: $((SECONDS - t0)) s in all"
exit $rc
