/*
 * Who may talk to a control plane: the shared control_token every message
 * carries in its envelope, and nng's TLS transport (tls+tcp://) with
 * certificates. Shared by helios-cp and heliosproxy (listening), the data
 * plane's link and helioctl (dialing). See docs/control-plane.md,
 * "Securing the control plane".
 */
#ifndef HELIOS_CPAUTH_H
#define HELIOS_CPAUTH_H

#include "common/cfg.h"

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

/* What one side presents and checks. Empty strings = not given. */
struct cpauth {
	char token[CFG_SECRET_MAX];
	char ca[CFG_PATH_MAX];          /* PEM CA file: verifies the other side */
	char cert[CFG_PATH_MAX];        /* PEM certificate of this side */
	char key[CFG_PATH_MAX];         /* its private key */
	char server_name[CFG_HOST_MAX]; /* dialing: the name the server's certificate must
	                                 * carry; "" = the URL's host */
	bool verify_client;             /* listening on tls+tcp://: demand client certificates */
};

/* The control_* keys of c. */
void cpauth_from_cfg(struct cpauth *a, const struct cfg *c);
/* Wipes the token. */
void cpauth_wipe(struct cpauth *a);

/* Whether got equals want, in time that depends on got's length only (an
 * attacker learns nothing of want by timing). want "" matches nothing: the
 * caller decides what an unset token means. */
bool cpauth_token_equal(const char *want, const char *got);

/* Whether url uses nng's TLS transport (tls+tcp://). */
bool cpauth_is_tls(const char *url);
/* Whether url is a tcp:// or tls+tcp:// address whose host is not a
 * loopback address (127.0.0.0/8, ::1, localhost): an empty host, 0.0.0.0,
 * ::, * and every other name or address count as remote. false for
 * ipc://, inproc:// and anything else. */
bool cpauth_url_remote(const char *url);
/* Whether c lets strangers in at url: remote (cpauth_url_remote), with
 * neither control_token nor verified client certificates (tls+tcp:// with
 * control_tls_verify_client and control_tls_ca), and control_allow_insecure
 * not set. */
bool cpauth_url_unprotected(const struct cfg *c, const char *url);

/*
 * nng_dialer_create for url on s; for tls+tcp:// with a TLS configuration
 * from a (CA required: the server is always verified; own certificate and
 * key when given; server name a->server_name or the URL's host). Returns 0,
 * a positive nng error from nng_dialer_create (err untouched: the caller
 * knows how to describe a bad URL), or -EINVAL with err naming the file or
 * option that is wrong (nothing is left created).
 */
__attribute__((warn_unused_result)) int cpauth_dialer(nng_socket s, const char *url,
                                                      const struct cpauth *a, nng_dialer *d,
                                                      char *err, size_t errlen);
/* The listener side of cpauth_dialer: certificate and key required for
 * tls+tcp://, client certificates demanded (signed by a->ca) when
 * a->verify_client. Same returns. */
__attribute__((warn_unused_result)) int cpauth_listener(nng_socket s, const char *url,
                                                        const struct cpauth *a, nng_listener *l,
                                                        char *err, size_t errlen);

/* One line for a failed dial over TLS (nng's codes say little): NULL when
 * rv is not a TLS failure or url is not tls+tcp://. */
const char *cpauth_tls_dial_error(const char *url, int rv);

/*
 * After a dial to tls+tcp:// url failed with a TLS error: which side said
 * no. mbedTLS reports a server certificate this side refused and a client
 * certificate the server refused with the same code, so this dials again
 * (blocking, within the caller's time limit) without checking the server's
 * certificate and closes at once, sending nothing: if that handshake works
 * the server's certificate was the problem, else the server refused ours.
 * Writes one line into out; 0, or -EINVAL when url is not tls+tcp://.
 */
int cpauth_tls_diagnose(const char *url, const struct cpauth *a, char *out, size_t cap);

#endif
