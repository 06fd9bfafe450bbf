#!/bin/sh
# Run by scripts/build-image.sh on the heliosproxy image's root file system
# ($1), which mmdebstrap --variant=extract filled with the unpacked library
# packages only. Adds what a non-root program needs and removes what no
# program reads: no package manager runs in the image.
set -eu
r=$1
mkdir -p "$r/etc" "$r/tmp" "$r/etc/heliosproxy" "$r/var/lib/heliosproxy" "$r/usr/bin"
chmod 1777 "$r/tmp"
cat >"$r/etc/passwd" <<'P'
root:x:0:0:root:/root:/usr/sbin/nologin
helios:x:10001:10001:HeliosProxy:/var/lib/heliosproxy:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
P
cat >"$r/etc/group" <<'G'
root:x:0:
helios:x:10001:
nogroup:x:65534:
G
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
# state_dir of the pods (an emptyDir mounts over it; `podman run` without a
# volume writes here)
chown 10001:10001 "$r/var/lib/heliosproxy"
chmod 0750 "$r/var/lib/heliosproxy"
# documentation, translations, character set converters (no program calls
# iconv), the package manager's state and mmdebstrap's files; /dev, hosts and
# resolv.conf come from the container runtime
rm -rf "$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/locale" \
	"$r/usr/share/lintian" "$r/usr/share/bug" "$r/usr/lib/x86_64-linux-gnu/gconv" \
	"$r/usr/lib/aarch64-linux-gnu/gconv" "$r/etc/apt" "$r/etc/dpkg" "$r/var/lib/dpkg" \
	"$r/var/lib/apt" "$r/var/cache" "$r/var/log" "$r/etc/fstab" "$r/etc/hostname" \
	"$r/etc/resolv.conf"
find "$r/dev" -mindepth 1 -delete
# the loader's cache, so programs start without scanning directories
echo 'include /etc/ld.so.conf.d/*.conf' >"$r/etc/ld.so.conf"
ldconfig -r "$r" 2>/dev/null || true
