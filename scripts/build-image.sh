#!/usr/bin/env bash
# make image: the OCI image localhost/heliosproxy:<version> (and :latest) built
# on this machine with no registry. The root file system is unpacked from the
# Debian packages that own the shared libraries the three programs link (found
# with ldd + dpkg -S, so the list follows the build), with mmdebstrap from the
# Debian archive of the host's apt sources; buildah puts it and
# build/release/bin/{heliosproxy,helios-cp,helioctl} into an image from scratch.
#
#   scripts/build-image.sh [heliosproxy]   the product image (make image)
#   scripts/build-image.sh pgtest          localhost/helios-pgtest:15, PostgreSQL 15
#                                          from Debian for tests/k8s (never shipped)
#
# Idempotent: the root file system tarball is cached in build/image/ under the
# hash of its package list (and of this script's recipe); an image whose input
# hash label matches is not rebuilt. Needs root (mmdebstrap --mode=root,
# buildah's storage in /var/lib/containers); re-runs itself with sudo if not.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
what=${1:-heliosproxy}

if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo --preserve-env=HELIOS_BIN,IMAGE_SUITE,CONTAINERS_CONF bash "$0" "$@"
	fi
	echo "image: needs root (mmdebstrap --mode=root and buildah); no sudo here" >&2
	exit 1
fi
for t in mmdebstrap buildah podman; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "image: $t is missing (make deps installs it)" >&2
		exit 1
	fi
done

export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}
BIN=${HELIOS_BIN:-$ROOT/build/release/bin}
OUT=$ROOT/build/image
mkdir -p "$OUT"
# shellcheck disable=SC1091
SUITE=${IMAGE_SUITE:-$(. /etc/os-release && echo "$VERSION_CODENAME")}
ARCH=$(dpkg --print-architecture)

# The host's Debian sources (deb.debian.org and its security suite): the
# packages in the image are the ones the programs were linked against.
mirrors=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[[ -f "$f" ]] && grep -qE '^[^#]*debian\.org' "$f" && mirrors+=("$f")
done
if ((${#mirrors[@]} == 0)); then
	echo "image: no Debian archive in /etc/apt/sources.list*; mmdebstrap uses its default mirror"
fi

# owner PATH: the package that ships a file, trying the names a merged-/usr
# system gives the same file (/lib/x -> /usr/lib/x) and the symlink's target.
owner() {
	local p=$1 real c out
	real=$(realpath "$p")
	for c in "$p" "/usr$p" "${p#/usr}" "$real" "/usr$real" "${real#/usr}"; do
		[[ "$c" == /* ]] || continue
		if out=$(dpkg-query -S "$c" 2>/dev/null); then
			out=${out%%: *}  # "libc6:amd64: /path" -> "libc6:amd64"
			out=${out%%,*}   # "a:amd64, a:i386" -> the first
			echo "${out%%:*}"
			return 0
		fi
	done
	echo "image: no Debian package owns $p (a library not from Debian cannot go into the image)" >&2
	return 1
}

# lib_packages PROGRAM...: the packages of every shared library they load
# (ldd lists the transitive ones too), with their host versions.
lib_packages() {
	local libs lib pkg
	if ldd "$@" | grep -q 'not found'; then
		ldd "$@" | grep 'not found' >&2
		echo "image: unresolved libraries" >&2
		return 1
	fi
	# "libx.so.1 => /lib/.../libx.so.1 (0x...)" and the loader "/lib64/ld-... (0x...)"
	libs=$(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(0x/ {print $1}' | sort -u)
	for lib in $libs; do
		owner "$lib"
	done | sort -u | while read -r pkg; do
		dpkg-query -W -f='${Package}=${Version}\n' "$pkg:$ARCH" 2>/dev/null ||
			dpkg-query -W -f='${Package}=${Version}\n' "$pkg"
	done
}

# rootfs NAME VARIANT PACKAGES_FILE HOOK...: build/image/NAME-<hash>.tar, made
# once per package list; prints its path.
rootfs() {
	local name=$1 variant=$2 pkgfile=$3
	shift 3
	local key tar include h
	key=$({
		echo "$SUITE $ARCH $variant"
		cat "$pkgfile"
		for h in "$@"; do cat "$h"; done
	} | sha256sum | cut -c1-16)
	tar=$OUT/$name-$key.tar
	if [[ -s "$tar" ]]; then
		echo "image: root file system $tar (cached)" >&2
		echo "$tar"
		return 0
	fi
	include=$(cut -d= -f1 "$pkgfile" | paste -sd,)
	echo "image: mmdebstrap --variant=$variant $SUITE: $(wc -l <"$pkgfile") packages -> $tar" >&2
	local t0=$SECONDS dir=$OUT/.partial-$name
	rm -rf "$dir" "$dir.tar"
	# into a folder, then the hooks (mmdebstrap runs no customize hook for
	# the extract variant), then the tarball
	mmdebstrap --quiet --mode=root --variant="$variant" --architectures="$ARCH" \
		--include="$include" "$SUITE" "$dir" "${mirrors[@]}" >&2
	for h in "$@"; do
		"$h" "$dir" >&2
	done
	tar --numeric-owner --sort=name -C "$dir" -cf "$dir.tar" .
	rm -rf "$dir"
	mv "$dir.tar" "$tar"
	# older root file systems of this name are stale
	find "$OUT" -maxdepth 1 -name "$name-*.tar" ! -path "$tar" -delete
	echo "image: root file system made in $((SECONDS - t0)) s" >&2
	echo "$tar"
}

# Commits container $1 as image $2, then removes the image it replaces once
# no tag names it (a running container keeps it).
commit_replacing() {
	local ctr=$1 image=$2 old
	old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
	buildah commit --quiet --rm "$ctr" "$image" >/dev/null
	trap - EXIT
	echo "image: built $image"
	if [[ -n "$old" ]]; then
		podman image rm "$old" >/dev/null 2>&1 || true
	fi
}

image_hash() { # the label an unchanged image already carries
	podman image inspect --format '{{index .Labels "io.heliosproxy.inputs"}}' "$1" 2>/dev/null || true
}

build_heliosproxy() {
	local progs=("$BIN/heliosproxy" "$BIN/helios-cp" "$BIN/helioctl") p
	for p in "${progs[@]}"; do
		if [[ ! -x "$p" ]]; then
			echo "image: $p is missing (make MODE=release all)" >&2
			exit 1
		fi
	done
	local version revision features bpf
	version=$(sed -n 's/^#define HELIOS_VERSION "\(.*\)"/\1/p' common/cpwire.h)
	revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
		revision="$revision-dirty"
	fi
	features=$("$BIN/heliosproxy" --version | sed -n 's/^features: //p')
	case " $features " in
	*" bpf-fastpath=yes "*) bpf=present ;;
	*) bpf=absent ;;
	esac

	# + libgcc-s1: glibc loads libgcc_s.so.1 at run time (unwinding for
	# pthread_cancel, backtraces), which ldd cannot see; libc6 depends on it
	{
		lib_packages "${progs[@]}"
		dpkg-query -W -f='${Package}=${Version}\n' "libgcc-s1:$ARCH"
	} | sort -u >"$OUT/heliosproxy.packages"
	local tar
	tar=$(rootfs heliosproxy extract "$OUT/heliosproxy.packages" "$ROOT/deploy/image/rootfs-hook.sh")

	local inputs
	inputs=$({
		basename "$tar"
		sha256sum "${progs[@]}" | cut -d' ' -f1
		echo "$version $revision $bpf"
		sed -n '/^build_heliosproxy()/,/^}/p' "$0"
	} | sha256sum | cut -c1-16)
	local image=localhost/heliosproxy:$version
	if [[ "$(image_hash "$image")" == "$inputs" ]]; then
		echo "image: $image is up to date"
	else
		local ctr
		ctr=$(buildah from --quiet scratch)
		# shellcheck disable=SC2064
		trap "buildah rm $ctr >/dev/null 2>&1 || true" EXIT
		buildah add --quiet "$ctr" "$tar" / >/dev/null
		# without their DWARF (about a third of their size; symbols stay for
		# backtraces): build/release/bin keeps it for gdb
		local p stripped=$OUT/bin
		rm -rf "$stripped" && mkdir -p "$stripped"
		for p in "${progs[@]}"; do
			strip --strip-debug -o "$stripped/$(basename "$p")" "$p"
		done
		buildah copy --quiet --chmod 0755 "$ctr" "$stripped"/* /usr/bin/ >/dev/null
		buildah config \
			--user 10001:10001 --workingdir /var/lib/heliosproxy \
			--entrypoint '["/usr/bin/heliosproxy", "-c"]' \
			--cmd '["/etc/heliosproxy/heliosproxy.toml"]' \
			--port 5433/tcp --port 8432/tcp \
			--stop-signal SIGTERM \
			--label org.opencontainers.image.title=heliosproxy \
			--label "org.opencontainers.image.description=HeliosProxy: PostgreSQL proxy and pooler (heliosproxy, helios-cp, helioctl)" \
			--label "org.opencontainers.image.version=$version" \
			--label "org.opencontainers.image.revision=$revision" \
			--label "org.opencontainers.image.source=https://github.com/heliosproxy/heliosproxy" \
			--label "io.heliosproxy.bpf=$bpf" \
			--label "io.heliosproxy.features=$features" \
			--label "io.heliosproxy.inputs=$inputs" \
			"$ctr"
		commit_replacing "$ctr" "$image"
	fi
	buildah tag "$image" localhost/heliosproxy:latest
	podman image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' localhost/heliosproxy
	echo "image: io.heliosproxy.bpf=$bpf; heliosproxy --version in the image:"
	# runs the image's own loader and libraries: a library left out fails here
	# (exit 127 from the program); 125/126 are podman or the runtime failing
	# to start any container: exit 3, so make k8s-check can skip with the reason
	local p out rc
	for p in heliosproxy helioctl helios-cp; do
		rc=0
		out=$(podman run --rm --network host --entrypoint "/usr/bin/$p" "$image" --version 2>&1) || rc=$?
		if ((rc == 125 || rc == 126)); then
			echo "image: built, but podman cannot run containers here: $(tail -n 1 <<<"$out")" >&2
			exit 3
		elif ((rc != 0)); then
			echo "image: /usr/bin/$p --version in the image failed (exit $rc):" >&2
			echo "$out" >&2
			exit 1
		fi
		if [[ $p == heliosproxy ]]; then
			echo "$out"
		fi
	done
}

build_pgtest() {
	# PostgreSQL 15 from Debian, run as the postgres user; no main cluster:
	# the entry script makes one (primary) or copies the primary (replica).
	printf 'postgresql-15\n' >"$OUT/pgtest.packages"
	local tar
	tar=$(rootfs pgtest minbase "$OUT/pgtest.packages" "$ROOT/tests/k8s/pgtest-hook.sh")
	local inputs image=localhost/helios-pgtest:15
	inputs=$({
		basename "$tar"
		cat tests/k8s/pgtest-entry.sh
		sed -n '/^build_pgtest()/,/^}/p' "$0"
	} | sha256sum | cut -c1-16)
	if [[ "$(image_hash "$image")" == "$inputs" ]]; then
		echo "image: $image is up to date"
		return 0
	fi
	local ctr
	ctr=$(buildah from --quiet scratch)
	# shellcheck disable=SC2064
	trap "buildah rm $ctr >/dev/null 2>&1 || true" EXIT
	buildah add --quiet "$ctr" "$tar" / >/dev/null
	buildah copy --quiet --chmod 0755 "$ctr" tests/k8s/pgtest-entry.sh /usr/local/bin/pgtest-entry >/dev/null
	buildah config --user postgres --workingdir /var/lib/postgresql \
		--entrypoint '["/usr/local/bin/pgtest-entry"]' --cmd '[]' \
		--env PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin \
		--label "io.heliosproxy.inputs=$inputs" \
		--label "org.opencontainers.image.title=helios-pgtest" "$ctr"
	commit_replacing "$ctr" "$image"
	podman image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$image"
}

t0=$SECONDS
case $what in
heliosproxy) build_heliosproxy ;;
pgtest) build_pgtest ;;
*)
	echo "usage: scripts/build-image.sh [heliosproxy|pgtest]" >&2
	exit 2
	;;
esac
echo "image: $what done in $((SECONDS - t0)) s"
