/*
 * Control-plane authentication (see cpauth.h): the token compare, the
 * loopback test behind control_allow_insecure, and nng TLS configurations
 * for tls+tcp:// dialers and listeners. The PEM files are read here rather
 * than by nng so that a missing or unreadable file is reported with its key
 * and path, not as nng's "Cryptographic error".
 */
#include "common/cpauth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

/* A PEM bundle larger than this is not a certificate file. */
#define PEM_MAX (1024 * 1024)

void cpauth_from_cfg(struct cpauth *a, const struct cfg *c)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->token, sizeof(a->token), "%s", c->control_token);
	snprintf(a->ca, sizeof(a->ca), "%s", c->control_tls_ca);
	snprintf(a->cert, sizeof(a->cert), "%s", c->control_tls_cert);
	snprintf(a->key, sizeof(a->key), "%s", c->control_tls_key);
	snprintf(a->server_name, sizeof(a->server_name), "%s", c->control_tls_server_name);
	a->verify_client = c->control_tls_verify_client;
}

void cpauth_wipe(struct cpauth *a)
{
	explicit_bzero(a->token, sizeof(a->token));
}

bool cpauth_token_equal(const char *want, const char *got)
{
	size_t n = strlen(want), m = strlen(got);
	/* Every byte of got is compared with some byte of want, so the time
	 * depends on m alone; a length mismatch fails through d as well. */
	size_t d = n ^ m;
	if (!n)
		return false;
	for (size_t i = 0; i < m; i++)
		d |= (unsigned char)got[i] ^ (unsigned char)want[i % n];
	return d == 0;
}

bool cpauth_is_tls(const char *url)
{
	return !strncmp(url, "tls+tcp://", 10);
}

/* The host part of a tcp:// or tls+tcp:// URL into host; false if url is
 * neither. "tcp://[::1]:7000" gives "::1", "tcp://:7000" gives "" and a
 * star for the host gives "*". */
static bool url_host(const char *url, char *host, size_t cap)
{
	const char *p, *end;

	if (!strncmp(url, "tcp://", 6))
		p = url + 6;
	else if (cpauth_is_tls(url))
		p = url + 10;
	else
		return false;
	if (*p == '[') {
		p++;
		end = strchr(p, ']');
		if (!end)
			end = p + strlen(p);
	} else {
		end = strrchr(p, ':');
		if (!end)
			end = p + strlen(p);
	}
	size_t len = (size_t)(end - p);
	if (len >= cap)
		len = cap - 1;
	memcpy(host, p, len);
	host[len] = '\0';
	return true;
}

bool cpauth_url_remote(const char *url)
{
	char host[CFG_HOST_MAX];
	unsigned char a[sizeof(struct in6_addr)];

	if (!url_host(url, host, sizeof(host)))
		return false;
	if (!strcasecmp(host, "localhost"))
		return false;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] != 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char lo[16] = {[15] = 1};
		static const unsigned char v4mapped[12] = {[10] = 0xff, [11] = 0xff};
		if (!memcmp(a, lo, 16))
			return false;
		return !(memcmp(a, v4mapped, 12) == 0 && a[12] == 127);
	}
	return true; /* "", "*", any name: other hosts can reach it */
}

bool cpauth_url_unprotected(const struct cfg *c, const char *url)
{
	if (c->control_allow_insecure || !cpauth_url_remote(url) || c->control_token[0])
		return false;
	return !(cpauth_is_tls(url) && c->control_tls_verify_client && c->control_tls_ca[0]);
}

/* The whole file as a NUL-terminated string; NULL with err set. */
static char *read_pem(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;

	if (!f) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX + 1);
	if (buf)
		len = fread(buf, 1, PEM_MAX + 1, f);
	if (!buf || ferror(f) || len > PEM_MAX) {
		snprintf(err, errlen, "%s %s: %s", what, path,
		         !buf            ? "out of memory"
		         : len > PEM_MAX ? "larger than 1 MiB"
		                         : "read error");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		snprintf(err, errlen, "%s %s: not a PEM file", what, path);
		explicit_bzero(buf, len);
		free(buf);
		return NULL;
	}
	return buf;
}

static void free_pem(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

/* A TLS configuration for mode from a; NULL with err set. */
static nng_tls_config *tls_config(nng_tls_mode mode, const char *url, const struct cpauth *a,
                                  char *err, size_t errlen)
{
	bool server = mode == NNG_TLS_MODE_SERVER;
	nng_tls_config *cfg = NULL;
	char *ca = NULL, *cert = NULL, *key = NULL;
	int rv;

	if (server && (!a->cert[0] || !a->key[0])) {
		snprintf(err, errlen,
		         "listening on %s needs control_tls_cert and control_tls_key (the "
		         "control plane's certificate and key)",
		         url);
		return NULL;
	}
	if (!server && !a->ca[0]) {
		snprintf(err, errlen,
		         "%s needs the CA that signed the control plane's certificate: "
		         "control_tls_ca (helioctl: --tls-ca)",
		         url);
		return NULL;
	}
	if (server && a->verify_client && !a->ca[0]) {
		snprintf(err, errlen,
		         "control_tls_verify_client needs control_tls_ca, the CA that signs the "
		         "clients' certificates");
		return NULL;
	}
	if (!a->cert[0] != !a->key[0]) {
		snprintf(err, errlen,
		         "%s is set without %s: give both (helioctl: --tls-cert and "
		         "--tls-key)",
		         a->cert[0] ? "control_tls_cert" : "control_tls_key",
		         a->cert[0] ? "control_tls_key" : "control_tls_cert");
		return NULL;
	}
	if (a->ca[0] && !(ca = read_pem("control_tls_ca", a->ca, err, errlen)))
		goto fail;
	if (a->cert[0] && (!(cert = read_pem("control_tls_cert", a->cert, err, errlen)) ||
	                   !(key = read_pem("control_tls_key", a->key, err, errlen))))
		goto fail;
	if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		goto fail;
	}
	if (ca && (rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0) {
		snprintf(err, errlen, "control_tls_ca %s: no usable CA certificate in it (%s)",
		         a->ca, nng_strerror(rv));
		goto fail;
	}
	if (cert && (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		snprintf(err, errlen,
		         "control_tls_cert %s with control_tls_key %s: not a certificate and its "
		         "unencrypted key (%s)",
		         a->cert, a->key, nng_strerror(rv));
		goto fail;
	}
	if (server) {
		rv = nng_tls_config_auth_mode(cfg, a->verify_client ? NNG_TLS_AUTH_MODE_REQUIRED
		                                                    : NNG_TLS_AUTH_MODE_NONE);
	} else {
		char host[CFG_HOST_MAX];
		if (a->server_name[0])
			snprintf(host, sizeof(host), "%s", a->server_name);
		else
			url_host(url, host, sizeof(host));
		rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
		if (rv == 0 && host[0])
			rv = nng_tls_config_server_name(cfg, host);
	}
	if (rv) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		goto fail;
	}
	free_pem(ca);
	free_pem(cert);
	free_pem(key);
	return cfg;
fail:
	if (cfg)
		nng_tls_config_free(cfg);
	free_pem(ca);
	free_pem(cert);
	free_pem(key);
	return NULL;
}

int cpauth_dialer(nng_socket s, const char *url, const struct cpauth *a, nng_dialer *d, char *err,
                  size_t errlen)
{
	int rv = nng_dialer_create(d, s, url);
	if (rv || !cpauth_is_tls(url))
		return rv;
	nng_tls_config *cfg = tls_config(NNG_TLS_MODE_CLIENT, url, a, err, errlen);
	if (!cfg) {
		nng_dialer_close(*d);
		return -EINVAL;
	}
	/* the dialer holds its own reference */
	rv = nng_dialer_set_ptr(*d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	if (rv) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		nng_dialer_close(*d);
		return -EINVAL;
	}
	return 0;
}

int cpauth_listener(nng_socket s, const char *url, const struct cpauth *a, nng_listener *l,
                    char *err, size_t errlen)
{
	int rv = nng_listener_create(l, s, url);
	if (rv || !cpauth_is_tls(url))
		return rv;
	nng_tls_config *cfg = tls_config(NNG_TLS_MODE_SERVER, url, a, err, errlen);
	if (!cfg) {
		nng_listener_close(*l);
		return -EINVAL;
	}
	rv = nng_listener_set_ptr(*l, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	if (rv) {
		snprintf(err, errlen, "TLS: %s", nng_strerror(rv));
		nng_listener_close(*l);
		return -EINVAL;
	}
	return 0;
}

const char *cpauth_tls_dial_error(const char *url, int rv)
{
	if (!cpauth_is_tls(url))
		return NULL;
	switch (rv) {
	case NNG_EPEERAUTH:
		return "TLS: the control plane's certificate is not signed by the CA given "
		       "(control_tls_ca, --tls-ca) or does not carry the name dialed "
		       "(control_tls_server_name, --tls-server-name)";
	case NNG_ECRYPTO:
	case NNG_ECLOSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
		return "TLS handshake failed: the control plane refused this client's "
		       "certificate (none given, or not signed by its control_tls_ca), or it "
		       "does not speak TLS";
	default:
		return NULL;
	}
}

int cpauth_tls_diagnose(const char *url, const struct cpauth *a, char *out, size_t cap)
{
	char why[600], host[CFG_HOST_MAX];
	nng_tls_config *cfg;
	nng_socket s;
	nng_dialer d;
	int rv;

	if (!cpauth_is_tls(url))
		return -EINVAL;
	if (a->server_name[0])
		snprintf(host, sizeof(host), "%s", a->server_name);
	else
		url_host(url, host, sizeof(host));
	cfg = tls_config(NNG_TLS_MODE_CLIENT, url, a, why, sizeof(why));
	if (!cfg) {
		snprintf(out, cap, "TLS handshake failed (%s)", why);
		return 0;
	}
	rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
	if (rv == 0 && (rv = nng_req0_open(&s)) == 0) {
		if ((rv = nng_dialer_create(&d, s, url)) == 0 &&
		    (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg)) == 0)
			rv = nng_dialer_start(d, 0);
		nng_close(s);
	}
	nng_tls_config_free(cfg);
	if (rv == 0)
		snprintf(out, cap,
		         "TLS: the control plane's certificate is not signed by a CA in %s "
		         "(control_tls_ca, --tls-ca) or does not carry the name \"%s\" "
		         "(control_tls_server_name, --tls-server-name)",
		         a->ca, host);
	else if (!a->cert[0])
		snprintf(out, cap,
		         "TLS handshake failed: the control plane demands a client certificate "
		         "and none was given (control_tls_cert and control_tls_key; helioctl: "
		         "--tls-cert and --tls-key)");
	else
		snprintf(
		    out, cap,
		    "TLS handshake failed: the control plane refused this client's certificate "
		    "%s (is it signed by the control plane's control_tls_ca, and for clients: "
		    "extendedKeyUsage clientAuth or none?)",
		    a->cert);
	return 0;
}
