/*
 * helioctl's one round trip: an nng REQ socket dials the control plane,
 * sends Envelope{MSG_CTL_REQUEST, CtlRequest} and waits for
 * Envelope{MSG_CTL_RESPONSE, CtlResponse}, all within one deadline.
 */
#include "cli/helioctl.h"
#include "common/cpwire.h"
#include "common/rundir.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * A blocking nng_dial has no time limit of its own: a TCP connect to a host
 * that drops SYNs takes the kernel's ~2 minutes, and a listener that is not
 * nng can hold the handshake forever. The dial runs under an interval timer
 * whose handler reports and exits with the same message and code as any
 * other "no control plane" failure. Only async-signal-safe calls inside.
 */
static char dial_timeout_msg[1200];
static size_t dial_timeout_len;

static void on_dial_timeout(int sig)
{
	if (write(STDERR_FILENO, dial_timeout_msg, dial_timeout_len) < 0) {
		/* nothing left to tell */
	}
	_exit(HCTL_UNREACHABLE);
}

static void dial_timer(uint64_t ms)
{
	struct itimerval it = {0};
	it.it_value.tv_sec = (time_t)(ms / 1000);
	it.it_value.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	setitimer(ITIMER_REAL, &it, NULL); /* ms == 0 disarms */
}

static uint64_t remaining_ms(uint64_t deadline)
{
	uint64_t now = cpwire_mono_ms();
	/* At least 1 ms: a zero timeout means "do not wait" to nng. */
	return now < deadline ? deadline - now : 1;
}

/* The reason a dial failed, in the words people know from connect(2). */
static const char *dial_error(int rv)
{
	switch (rv) {
	case NNG_ECONNREFUSED:
	case NNG_ENOENT: /* ipc: no socket file at that path */
		return "Connection refused";
	case NNG_EPROTO:
		return "something listens there, but not an nng REP socket (not a control plane?)";
	default:
		return nng_strerror(rv);
	}
}

/* A well-formed host:port URL whose host is a name, not an IP address. */
static bool resolvable_form(const char *url)
{
	unsigned char addr[sizeof(struct in6_addr)];
	nng_url *u;
	bool r = false;

	if (nng_url_parse(&u, url) == 0) {
		const char *h = u->u_hostname;
		r = h && *h && u->u_port && *u->u_port && inet_pton(AF_INET, h, addr) != 1 &&
		    inet_pton(AF_INET6, h, addr) != 1;
		nng_url_free(u);
	}
	return r;
}

static int dial(nng_socket s, const char *url, const struct cpauth *auth, uint32_t timeout_ms,
                uint64_t deadline, char *err, size_t errlen)
{
	struct sigaction sa = {0};
	char why[600];
	nng_dialer d;
	int rv;

	/* A request carries commands and the answer is trusted: never to a
	 * socket another user may have put there (root's own are fine). */
	if (!strncmp(url, "ipc://", 6) &&
	    rundir_check_socket(url + 6, geteuid(), true, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "no control plane at %s: %s", url, why);
		return HCTL_UNREACHABLE;
	}
	snprintf(dial_timeout_msg, sizeof(dial_timeout_msg),
	         "helioctl: no control plane at %s: no connection within %u ms\n", url, timeout_ms);
	dial_timeout_len = strlen(dial_timeout_msg);
	sa.sa_handler = on_dial_timeout;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);

	rv = cpauth_dialer(s, url, auth, &d, why, sizeof(why));
	if (rv < 0) {
		snprintf(err, errlen, "%s", why);
		return HCTL_USAGE;
	}
	if (rv == 0) {
		dial_timer(remaining_ms(deadline));
		rv = nng_dialer_start(d, 0); /* blocking: reports refusals */
		dial_timer(0);
	}
	if (rv == 0)
		return 0;
	if (rv == NNG_EADDRINVAL && resolvable_form(url)) {
		/* nng says "address invalid" for a host name that does not
		 * resolve too: a DNS or network problem, so exit 3, not 2. */
		snprintf(err, errlen, "no control plane at %s: cannot resolve the host name", url);
		return HCTL_UNREACHABLE;
	}
	if (rv == NNG_EINVAL || rv == NNG_ENOTSUP || rv == NNG_EADDRINVAL) {
		snprintf(err, errlen,
		         "'%s' is not a control plane address (%s): expected ipc:///path, "
		         "tcp://host:port or tls+tcp://host:port",
		         url, nng_strerror(rv));
		return HCTL_USAGE;
	}
	if (cpauth_tls_dial_error(url, rv)) {
		/* which side refused: one more handshake, under the same timer */
		dial_timer(remaining_ms(deadline));
		cpauth_tls_diagnose(url, auth, why, sizeof(why));
		dial_timer(0);
		snprintf(err, errlen, "no control plane at %s: %s", url, why);
		return HCTL_UNREACHABLE;
	}
	snprintf(err, errlen, "no control plane at %s: %s", url, dial_error(rv));
	return HCTL_UNREACHABLE;
}

int rpc_call(const char *url, const struct cpauth *auth, uint32_t timeout_ms,
             const Helios__CtlRequest *req, Helios__CtlResponse **resp, char *err, size_t errlen)
{
	uint64_t deadline = cpwire_mono_ms() + timeout_ms;
	Helios__Envelope *env = NULL;
	nng_socket s;
	uint8_t *buf;
	void *reply = NULL;
	size_t len, rlen = 0;
	char why[256];
	int rv, rc = HCTL_UNREACHABLE;

	*resp = NULL;
	buf =
	    cpwire_pack_token(HELIOS__MSG_TYPE__MSG_CTL_REQUEST, 0, &req->base, auth->token, &len);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return HCTL_REFUSED;
	}
	rv = nng_req0_open(&s);
	if (rv) {
		snprintf(err, errlen, "cannot open an nng REQ socket: %s", nng_strerror(rv));
		free(buf);
		return HCTL_REFUSED;
	}
	/* REQ resends an unanswered request after a minute by default: a
	 * `config set` or `reload` must never run twice because the control
	 * plane was slow, so no resends; the deadline decides instead. */
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	rundir_guard_peer(s); /* the file check in dial() is the one that reports */

	rc = dial(s, url, auth, timeout_ms, deadline, err, errlen);
	if (rc)
		goto out;
	rc = HCTL_UNREACHABLE;

	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, (nng_duration)remaining_ms(deadline));
	rv = nng_send(s, buf, len, 0);
	if (rv) {
		snprintf(err, errlen, "no control plane at %s: sending the request: %s", url,
		         nng_strerror(rv));
		goto out;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)remaining_ms(deadline));
	rv = nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC);
	if (rv == NNG_ETIMEDOUT) {
		snprintf(err, errlen,
		         "no answer from the control plane at %s within %u ms (see --timeout)", url,
		         timeout_ms);
		goto out;
	}
	if (rv) {
		snprintf(err, errlen, "no answer from the control plane at %s: %s", url,
		         nng_strerror(rv));
		goto out;
	}

	env = cpwire_unpack(reply, rlen, why, sizeof(why));
	if (!env) {
		snprintf(err, errlen, "unusable answer from %s: %s", url, why);
		goto out;
	}
	if (env->type != HELIOS__MSG_TYPE__MSG_CTL_RESPONSE) {
		snprintf(err, errlen,
		         "unexpected answer from %s (message type %d, not a CtlResponse): is it a "
		         "control plane address?",
		         url, (int)env->type);
		goto out;
	}
	*resp = helios__ctl_response__unpack(NULL, env->payload.len, env->payload.data);
	if (!*resp) {
		snprintf(err, errlen, "unusable answer from %s: malformed CtlResponse (%zu bytes)",
		         url, env->payload.len);
		goto out;
	}
	rc = 0;
out:
	if (env)
		helios__envelope__free_unpacked(env, NULL);
	if (reply)
		nng_free(reply, rlen);
	explicit_bzero(buf, len); /* it holds the token */
	free(buf);
	nng_close(s);
	return rc;
}
