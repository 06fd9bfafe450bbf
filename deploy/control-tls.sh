#!/usr/bin/env bash
# Makes the Secret "helios-control-tls" that helios-cp's tls+tcp:// listener
# and the data planes use: a private CA (ca.crt) and a server certificate for
# helios-cp (tls.crt, tls.key) signed by it, valid for the Service's names.
# Prints the Secret as YAML on stdout; nothing is kept but what you redirect.
#
#   deploy/control-tls.sh [-n NAMESPACE] [-d DAYS] [EXTRA_SAN ...] > helios-control-tls.yaml
#   kubectl apply -f helios-control-tls.yaml
#
# EXTRA_SAN is "DNS:name" or "IP:address" (e.g. IP:127.0.0.1 for a test on one
# host). cert-manager can make the same Secret (keys tls.crt, tls.key, ca.crt).
set -euo pipefail

ns=heliosproxy
days=825
while getopts "n:d:h" o; do
	case "$o" in
	n) ns="$OPTARG" ;;
	d) days="$OPTARG" ;;
	*)
		sed -n '2,12p' "$0" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
san="DNS:helios-cp,DNS:helios-cp.$ns,DNS:helios-cp.$ns.svc,DNS:helios-cp.$ns.svc.cluster.local"
for extra in "$@"; do
	case "$extra" in
	DNS:* | IP:*) san="$san,$extra" ;;
	*)
		echo "control-tls.sh: '$extra' is neither DNS:name nor IP:address" >&2
		exit 2
		;;
	esac
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
	-subj "/CN=heliosproxy control CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=helios-cp.$ns.svc" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$dir/ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
	-days "$days" -extfile "$dir/ext" -out "$dir/tls.crt" 2>/dev/null

b64() { base64 -w0 <"$1"; }
cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: helios-control-tls
  namespace: $ns
  labels:
    app.kubernetes.io/part-of: heliosproxy
type: Opaque
data:
  ca.crt: $(b64 "$dir/ca.crt")
  tls.crt: $(b64 "$dir/tls.crt")
  tls.key: $(b64 "$dir/tls.key")
YAML
