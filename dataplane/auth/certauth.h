/*
 * Client certificate names against the login user: for tls.client_mode =
 * verify-full and for the `cert` auth method. The certificate was verified
 * by the TLS handshake (chain, CRL); this checks that one of its names (the
 * CN first, then DNS and email SANs) maps to the login user.
 */
#ifndef HELIOS_AUTH_CERTAUTH_H
#define HELIOS_AUTH_CERTAUTH_H

#include <stddef.h>

struct tls_conn;
struct identmap;

/*
 * 0 if the verified peer certificate of t has a name that identmap_match(m,
 * map, name, login_user) accepts (no map: the name equals login_user).
 * -ENOENT: no TLS or no client certificate; -EACCES: the certificate did not
 * verify; -EPERM: no name matches. why gets a reason for the log that names
 * the certificate's CN (never secret; empty on success).
 */
__attribute__((warn_unused_result)) int certauth_check(struct tls_conn *t, const struct identmap *m,
                                                       const char *map, const char *login_user,
                                                       char *why, size_t whylen);

#endif
