/*
 * Certificate name checks shared by verify-full and the cert method. Kept
 * apart from login so both callers give the same answer and the same reason.
 */
#include "dataplane/auth/certauth.h"

#include "dataplane/auth/identmap.h"
#include "dataplane/tls/tls.h"

#include <errno.h>
#include <stdio.h>

int certauth_check(struct tls_conn *t, const struct identmap *m, const char *map,
                   const char *login_user, char *why, size_t whylen)
{
	struct tls_peer_names pn;
	int rc;

	why[0] = '\0';
	if (!t) {
		snprintf(why, whylen, "no TLS connection, so no client certificate");
		return -ENOENT;
	}
	rc = tls_peer_names(t, &pn);
	if (rc == -ENOENT) {
		snprintf(why, whylen, "the client presented no certificate");
		return rc;
	}
	if (rc < 0) {
		const char *ve = tls_verify_error(t);
		snprintf(why, whylen, "the client certificate did not verify: %s",
		         ve ? ve : "unknown reason");
		return -EACCES;
	}
	if (pn.cn[0] && identmap_match(m, map, pn.cn, login_user))
		return 0;
	for (size_t i = 0; i < pn.n_san; i++)
		if (identmap_match(m, map, pn.san[i], login_user))
			return 0;
	if (map && map[0])
		snprintf(why, whylen,
		         "certificate CN \"%s\" (and %zu SANs) not mapped to user \"%s\" by map "
		         "\"%s\"",
		         pn.cn, pn.n_san, login_user, map);
	else
		snprintf(why, whylen,
		         "certificate CN \"%s\" (and %zu SANs) does not match user \"%s\"", pn.cn,
		         pn.n_san, login_user);
	return -EPERM;
}
