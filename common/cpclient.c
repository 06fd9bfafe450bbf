/*
 * A synchronous nng REQ round trip carrying one CtlRequest.
 */
#include "common/cpclient.h"

#include "common/cpwire.h"
#include "common/rundir.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cpclient_call(const char *url, const struct cpauth *auth, const char *verb, char *const *args,
                  size_t nargs, int timeout_ms, Helios__CtlResponse **resp, char *err,
                  size_t errlen)
{
	static const struct cpauth none;
	if (!auth)
		auth = &none;
	*resp = NULL;
	Helios__CtlRequest req = HELIOS__CTL_REQUEST__INIT;
	req.verb = (char *)verb;
	req.args = (char **)args;
	req.n_args = nargs;
	req.timeout_ms = (uint32_t)timeout_ms;
	size_t len;
	uint8_t *buf =
	    cpwire_pack_token(HELIOS__MSG_TYPE__MSG_CTL_REQUEST, 0, &req.base, auth->token, &len);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nng_socket s;
	int rv = nng_req0_open(&s);
	if (rv == 0) {
		nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms + 1000);
		nng_dialer d;
		char why[600];
		rv = rundir_guard_peer(s);
		if (rv == 0 && (rv = cpauth_dialer(s, url, auth, &d, why, sizeof(why))) < 0)
			snprintf(err, errlen, "control plane at %s: %s", url, why);
		else if (rv == 0)
			rv = nng_dialer_start(d, 0);
		if (rv > 0) {
			const char *tls = cpauth_tls_dial_error(url, rv);
			snprintf(err, errlen, "no control plane at %s: %s", url,
			         tls ? tls : nng_strerror(rv));
		}
	} else {
		snprintf(err, errlen, "nng: %s", nng_strerror(rv));
	}
	if (rv == 0 && (rv = nng_send(s, buf, len, 0)) != 0)
		snprintf(err, errlen, "control plane at %s: send: %s", url, nng_strerror(rv));
	explicit_bzero(buf, len); /* it holds the token */
	free(buf);
	void *in = NULL;
	size_t in_len = 0;
	if (rv == 0 && (rv = nng_recv(s, &in, &in_len, NNG_FLAG_ALLOC)) != 0)
		snprintf(err, errlen, "control plane at %s did not answer: %s", url,
		         nng_strerror(rv));
	nng_close(s);
	if (rv)
		return -1;
	Helios__Envelope *e = cpwire_unpack(in, in_len, err, errlen);
	nng_free(in, in_len);
	if (!e)
		return -1;
	if (e->type != HELIOS__MSG_TYPE__MSG_CTL_RESPONSE) {
		snprintf(err, errlen, "control plane at %s answered with message type %d", url,
		         (int)e->type);
		helios__envelope__free_unpacked(e, NULL);
		return -1;
	}
	*resp = helios__ctl_response__unpack(NULL, e->payload.len, e->payload.data);
	helios__envelope__free_unpacked(e, NULL);
	if (!*resp) {
		snprintf(err, errlen, "control plane at %s sent a malformed response", url);
		return -1;
	}
	return 0;
}
