/*
 * Client login: the startup packet (or SSLRequest / CancelRequest), TLS,
 * authentication by the proxy (trust, md5, SCRAM, auth_query lookups,
 * SCRAM passthrough keys) and the admin console's login; once a client is
 * authenticated the pool is asked for a server (client.c).
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/client_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/splice.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/auth/authwork.h"
#include "dataplane/auth/hba.h"
#include "dataplane/auth/jwtauth.h"
#include "dataplane/auth/ldapauth.h"
#include "dataplane/auth/certauth.h"
#include "dataplane/auth/md5auth.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/pipeline/plugin_stage.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/tls/tls.h"
#include "dataplane/rt/worker.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- login */

static uint64_t fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* ------------------------------------------------------- login phase slots */

/* A client logging in holds a login slot from accept to the end of its
 * authentication; max_login_clients bounds them so that sockets that never
 * finish cannot take every max_client_conn slot, and client_login_timeout_secs
 * bounds how long one is held. */
static int g_login_count; /* atomic: clients logging in, all workers */

/* A connection may take the slot of one that has been logging in this long. */
#define LOGIN_RECLAIM_SECS 1.0

static int login_cap(const struct cfg *c)
{
	if (c->max_login_clients > 0)
		return c->max_login_clients;
	int q = c->max_client_conn / 4;
	if (q < 16)
		q = 16;
	return q < c->max_client_conn ? q : c->max_client_conn;
}

/* Ends a login that took too long (or whose slot is taken). During the TLS
 * handshake nothing can be said; otherwise a FATAL says why. */
static void login_expire(struct client *cl, const char *why)
{
	if (cl->state == CL_TLS) {
		log_info("client %llu %s: closing during the TLS handshake: %s",
		         (unsigned long long)cl->id, cl->peer, why);
		cl_close(cl, NULL, NULL);
		return;
	}
	cl_close(cl, "08P01", why);
}

bool cl_login_admit(struct worker *w, int fd, const struct cfg *c)
{
	int cap = login_cap(c);
	if (__atomic_load_n(&g_login_count, __ATOMIC_RELAXED) < cap)
		return true;
	struct client *old = cw_of(w)->q[CLQ_LOGIN].head;
	struct timespec now;
	conn_now(&now);
	if (old && conn_elapsed(&old->login_start, &now) >= LOGIN_RECLAIM_SECS) {
		char why[200];
		snprintf(why, sizeof(why),
		         "login timeout: too many connections are logging in (max_login_clients "
		         "%d) and this one took %.0f s",
		         cap, conn_elapsed(&old->login_start, &now));
		login_expire(old, why);
		return true;
	}
	uint8_t buf[256];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_error(&o, "FATAL", "53300", "sorry, too many clients are logging in",
	          "max_login_clients is reached");
	ssize_t r = send(fd, buf, o.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
	/* one line a second at most: a flood must not flood the log */
	static __thread time_t last_log;
	static __thread unsigned refused;
	refused++;
	if (now.tv_sec != last_log) {
		log_warn("worker %d: refused %u client(s): max_login_clients (%d) are logging in",
		         w->idx, refused, cap);
		last_log = now.tv_sec;
		refused = 0;
	}
	return false;
}

static void authq_release(struct client *cl);

/* A password derivation's result, from w's mailbox. */
static void auth_work_arrived(struct worker *w, struct worker_msg *m)
{
	(void)w;
	cl_auth_work_done((struct aw_job *)((char *)m - offsetof(struct aw_job, done)));
}

void cl_login_begin(struct client *cl)
{
	conn_now(&cl->login_start);
	cl_set_queue(cl, CLQ_LOGIN);
	__atomic_add_fetch(&g_login_count, 1, __ATOMIC_RELAXED);
}

void cl_login_end(struct client *cl)
{
	if (cl->queue != CLQ_LOGIN)
		return;
	cl_set_queue(cl, CLQ_NONE);
	__atomic_sub_fetch(&g_login_count, 1, __ATOMIC_RELAXED);
	cl->authq_waiting = false;
	authq_release(cl);
	if (cl->ldap_req) {
		/* its answer would find a closed client */
		ldapauth_cancel(cl->ldap_req);
		cl->ldap_req = NULL;
	}
	if (cl->auth_job) {
		/* the derivation finishes anyway; its answer finds nobody */
		cl->auth_job->owner = NULL;
		cl->auth_job = NULL;
	}
}

void cl_login_timeout_check(struct worker *w, const struct timespec *now)
{
	for (struct client *cl = cw_of(w)->q[CLQ_LOGIN].head, *next; cl; cl = next) {
		next = cl->q_next;
		int t = cl->snap->cfg->client_login_timeout_secs;
		if (t > 0 && conn_elapsed(&cl->login_start, now) >= t) {
			char why[200];
			snprintf(why, sizeof(why),
			         "login timeout: the startup and authentication were not finished "
			         "within %d s (client_login_timeout_secs)",
			         t);
			login_expire(cl, why);
		}
	}
}

/* Copies the startup parameters and computes the signature servers are
 * matched on. The sum makes it independent of parameter order. */
static int copy_params(struct client *cl, const struct pgw_startup *st)
{
	size_t need = 0;
	for (int i = 0; i < st->n_params; i++)
		need += strlen(st->params[i].name) + strlen(st->params[i].value) + 2;
	cl->params_buf = malloc(need ? need : 1);
	cl->params = calloc((size_t)(st->n_params ? st->n_params : 1), sizeof(*cl->params));
	if (!cl->params_buf || !cl->params)
		return -ENOMEM;
	char *p = cl->params_buf;
	uint64_t sig = 0;
	for (int i = 0; i < st->n_params; i++) {
		size_t nl = strlen(st->params[i].name) + 1, vl = strlen(st->params[i].value) + 1;
		memcpy(p, st->params[i].name, nl);
		cl->params[i].name = p;
		p += nl;
		memcpy(p, st->params[i].value, vl);
		cl->params[i].value = p;
		p += vl;
		uint64_t h = fnv1a(cl->params[i].name, 1469598103934665603ull);
		h = fnv1a("=", h);
		sig += fnv1a(cl->params[i].value, h);
	}
	cl->n_params = st->n_params;
	cl->signature = sig;
	return 0;
}

/* --------------------------------------------- failed logins per address */

/* Failed logins per source address over the last minute, shared by the
 * workers (a client's connections land on any of them) without a lock: a
 * small open-addressed table of (address hash, window start << 32 | count)
 * updated with compare-and-swap. A full table or a collision under a race
 * at worst forgets a failure; it never blocks a login that should pass for
 * longer than the window. */
#define FAIL_SLOTS  4096 /* power of two */
#define FAIL_PROBES 8
#define FAIL_WINDOW 60 /* seconds */

struct fail_slot {
	uint64_t key; /* hash of the address, never 0; 0 = free */
	uint64_t wc;  /* window start (monotonic seconds) << 32 | failures in it */
};
static struct fail_slot g_fail[FAIL_SLOTS];

static uint32_t mono_secs(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint32_t)t.tv_sec + 1; /* never 0 */
}

/* The client's address (IPv4 as IPv4-mapped IPv6) from its peer text
 * "a.b.c.d:port" / "v6addr:port"; host gets the address text. */
static bool peer_addr(const struct client *cl, uint8_t a[16], char *host, size_t hostlen)
{
	memset(a, 0, 16);
	snprintf(host, hostlen, "%s", cl->peer);
	char *colon = strrchr(host, ':');
	if (cl->is_unix || !colon)
		return false;
	*colon = '\0';
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &a4, 4);
		return true;
	}
	return inet_pton(AF_INET6, host, a) == 1;
}

static uint64_t addr_key(const uint8_t a[16])
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 16; i++) {
		h ^= a[i];
		h *= 1099511628211ull;
	}
	return h | 1;
}

static struct fail_slot *fail_find(uint64_t key, uint32_t now, bool create)
{
	/* the address's own slot first, wherever it is among the probes, so
	 * its count is never split over two slots */
	for (int i = 0; i < FAIL_PROBES; i++) {
		struct fail_slot *f = &g_fail[(key + (uint64_t)i) & (FAIL_SLOTS - 1)];
		if (__atomic_load_n(&f->key, __ATOMIC_ACQUIRE) == key)
			return f;
	}
	for (int i = 0; create && i < FAIL_PROBES; i++) {
		struct fail_slot *f = &g_fail[(key + (uint64_t)i) & (FAIL_SLOTS - 1)];
		uint64_t k = __atomic_load_n(&f->key, __ATOMIC_ACQUIRE);
		uint64_t wc = __atomic_load_n(&f->wc, __ATOMIC_RELAXED);
		/* free, or its window is over: take it */
		if ((k == 0 || now - (uint32_t)(wc >> 32) >= FAIL_WINDOW) &&
		    __atomic_compare_exchange_n(&f->key, &k, key, false, __ATOMIC_ACQ_REL,
		                                __ATOMIC_RELAXED)) {
			__atomic_store_n(&f->wc, (uint64_t)now << 32, __ATOMIC_RELEASE);
			return f;
		}
	}
	return NULL;
}

static void fail_count(const struct client *cl)
{
	if (cl->snap->cfg->auth.max_failures_per_minute <= 0)
		return;
	uint8_t a[16];
	char host[64];
	if (!peer_addr(cl, a, host, sizeof(host)))
		return;
	uint32_t now = mono_secs();
	struct fail_slot *f = fail_find(addr_key(a), now, true);
	if (!f)
		return;
	uint64_t wc = __atomic_load_n(&f->wc, __ATOMIC_RELAXED), nw;
	do {
		uint32_t start = (uint32_t)(wc >> 32);
		if (now - start >= FAIL_WINDOW)
			nw = ((uint64_t)now << 32) | 1;
		else
			nw = wc + 1;
	} while (!__atomic_compare_exchange_n(&f->wc, &wc, nw, true, __ATOMIC_ACQ_REL,
	                                      __ATOMIC_RELAXED));
}

/* True when the client's address has used up its failures this minute. */
static bool fail_limited(const struct client *cl, char *host, size_t hostlen)
{
	int max = cl->snap->cfg->auth.max_failures_per_minute;
	uint8_t a[16];
	if (max <= 0 || !peer_addr(cl, a, host, hostlen))
		return false;
	uint32_t now = mono_secs();
	struct fail_slot *f = fail_find(addr_key(a), now, false);
	if (!f)
		return false;
	uint64_t wc = __atomic_load_n(&f->wc, __ATOMIC_ACQUIRE);
	return now - (uint32_t)(wc >> 32) < FAIL_WINDOW && (uint32_t)wc >= (uint32_t)max;
}

/* A failed login: one log line naming the rule (never the secret), the
 * address's failure counted, the client closed with code and msg. */
static void login_refuse(struct client *cl, const char *code, const char *msg, const char *detail,
                         bool count)
{
	__atomic_add_fetch(&g_login_failures, 1, __ATOMIC_RELAXED);
	if (count)
		fail_count(cl);
	struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
	char rule[340] = "";
	if (cl->hba_rule)
		snprintf(rule, sizeof(rule), " (pg_hba rule %s, method %s)", cl->hba_rule->where,
		         hba_method_str(cl->hba_rule->method));
	log_ev(LOG_WARN, "login_failed", &lc, "client %llu %s user=%s db=%s: %s%s%s%s",
	       (unsigned long long)cl->id, cl->peer, cl->user, cl->database, msg, rule,
	       detail ? ": " : "", detail ? detail : "");
	cl->close_logged = true;
	cl_close(cl, code, msg);
}

static void auth_fail(struct client *cl)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", cl->user);
	login_refuse(cl, "28P01", msg, NULL, true);
}

static void admin_login(struct client *cl);

static void auth_ok(struct client *cl)
{
	uint8_t buf[16];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_auth_request(&o, PGW_AUTH_OK, NULL, 0);
	cl_send_msg(cl, &o);
	if (cl->scram) {
		cl->have_client_key = scram_server_client_key(cl->scram, cl->client_key);
		scram_server_wipe(cl->scram);
		free(cl->scram);
		cl->scram = NULL;
	}
	log_debug("client %llu %s: authenticated user=%s db=%s", (unsigned long long)cl->id,
	          cl->peer, cl->user, cl->database);
	cl->logged_in = true;
	if (__atomic_load_n(&log_connections_on, __ATOMIC_RELAXED)) {
		struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
		log_ev(LOG_INFO, "client_connect", &lc, "client %llu %s user=%s db=%s: connected%s",
		       (unsigned long long)cl->id, cl->peer, cl->user, cl->database,
		       cl->is_tls    ? " over TLS"
		       : cl->is_unix ? " over the Unix socket"
		                     : " without TLS");
	}
	__atomic_add_fetch(&g_logins_total, 1, __ATOMIC_RELAXED);
	cl_login_end(cl);
	cl_set_state(cl, CL_WAIT_SERVER);
	if (!strcmp(cl->database, CONN_CONSOLE_DB) || !strcmp(cl->database, CONN_CONSOLE_DB_PGB)) {
		admin_login(cl);
		return;
	}
	if (conn_database_disabled(cl->database)) {
		char msg[160];
		/* PgBouncer's words; SQLSTATE as PostgreSQL's datallowconn refusal */
		snprintf(msg, sizeof(msg), "database does not allow connections: %s", cl->database);
		log_info("client %llu %s user=%s db=%s: refused: DISABLEd on the admin console",
		         (unsigned long long)cl->id, cl->peer, cl->user, cl->database);
		cl_close(cl, "55000", msg);
		return;
	}
	const char *code = NULL;
	char why[300];
	const struct guc_ent *tg = guc_get(&cl->startup, "helios.tenant");
	/* a tenant named by a verified token wins over the startup parameter */
	const char *tname = cl->jwt_tenant[0] ? cl->jwt_tenant : tg ? tg->value : NULL;
	if (tenant_login(cl->snap->cfg, cl->user, cl->database, tname, &cl->tenant, &cl->tenant_cfg,
	                 &code, why, sizeof(why)) < 0) {
		log_info("client %llu %s user=%s db=%s: refused: %s", (unsigned long long)cl->id,
		         cl->peer, cl->user, cl->database, why);
		cl_close(cl, code, why);
		return;
	}
	/* which of its pipeline's stages apply to it; subscribers hear of it */
	struct req r;
	tx_req_init(cl, NULL, &r);
	pipe_client_start(cl->pipe, &cl->pc, &r);
	cl->pc_started = true; /* from here its errors are PEV_ERROR events */
	char pl_code[6], pl_msg[300];
	if (plugin_login(&r, cl->peer, pl_code, pl_msg, sizeof(pl_msg))) {
		cl_close(cl, pl_code, pl_msg);
		return;
	}
	if (pipe_wants(cl->pipe, PEV_CONNECT)) {
		struct pipe_event ev = {
		    .kind = PEV_CONNECT, .r = &r, .at_ns = conn_now_ns(), .ok = true};
		pipe_emit(cl->pipe, &cl->pc, &ev);
	}
	cl_get_server(cl);
}

/* ------------------------------------------------------------ admin console */

/* The special database: no server, statements go to the console thread. */
static void admin_login(struct client *cl)
{
	/* PgBouncer: admin_users may do everything, stats_users SHOW only */
	bool admin = cfg_is_admin_user(cl->snap->cfg, cl->user);
	if (!admin && !cfg_is_stats_user(cl->snap->cfg, cl->user)) {
		char msg[200];
		snprintf(msg, sizeof(msg),
		         "user \"%s\" may not use the admin console (not in admin_users or "
		         "stats_users)",
		         cl->user);
		cl_close(cl, "42501", msg);
		return;
	}
	cl->admin_read_only = !admin;
	uint8_t buf[512];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_param_status(&o, "server_version", "15.0 (HeliosProxy " HELIOS_VERSION ")");
	pgw_param_status(&o, "client_encoding", "UTF8");
	pgw_param_status(&o, "server_encoding", "UTF8");
	pgw_param_status(&o, "DateStyle", "ISO, MDY");
	pgw_param_status(&o, "integer_datetimes", "on");
	pgw_param_status(&o, "standard_conforming_strings", "on");
	pgw_param_status(&o, "application_name", "");
	pgw_key_data(&o, 0, 0);
	pgw_ready(&o, 'I');
	cl_send_msg(cl, &o);
	cl->admin = true;
	__atomic_add_fetch(&g_admin_sessions, 1, __ATOMIC_RELAXED);
	cl_set_state(cl, CL_ACTIVE);
	log_info("client %llu %s: admin console session for user %s%s", (unsigned long long)cl->id,
	         cl->peer, cl->user, admin ? "" : " (stats_users: SHOW only)");
}

/* Takes whole messages from the admin client's buffer, one statement at a
 * time: the next waits for the previous answer. */
void cl_admin_input(struct client *cl)
{
	while (cl->state == CL_ACTIVE && !cl->admin_busy) {
		struct pgw_msg m;
		enum pgw_status st = pgw_next_msg(cl->ep.in, cl->ep.in_len, CONN_INBUF_MAX - 5, &m);
		if (st == PGW_NEED_MORE)
			return;
		if (st == PGW_BAD) {
			cl_close(cl, "08P01", "invalid message on the admin console");
			return;
		}
		if (m.type == PGW_MSG_TERMINATE) {
			cl_close(cl, NULL, NULL);
			return;
		}
		if (m.type != PGW_MSG_QUERY || m.len == 0 || m.body[m.len - 1] != '\0') {
			cl_close(cl, "08P01",
			         "the admin console accepts simple Query messages only");
			return;
		}
		if (conn_console_submit(cl->w->idx, cl->id, (const char *)m.body,
		                        cl->admin_read_only) < 0) {
			cl_close(cl, "53000", "the admin console is busy; try again");
			return;
		}
		cl->admin_busy = true;
		ep_in_consume(&cl->ep, m.total);
	}
}

void cl_admin_reply(struct client *cl, const uint8_t *msg, uint32_t len)
{
	if (!cl->admin || cl->state != CL_ACTIVE)
		return;
	ep_send_bytes(&cl->ep, msg, len);
	cl->admin_busy = false;
	cl_admin_input(cl);
}

/* Replaces *dst with a copy of src (an empty string when out of memory). */
static void set_str(char **dst, const char *src)
{
	char *d = strdup(src ? src : "");
	if (!d)
		return;
	if (*dst) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = d;
}

static bool is_scram_secret(const char *s)
{
	return !strncmp(s, "SCRAM-SHA-256$", 14);
}

static void send_sasl(struct client *cl)
{
	static const char mech[] = SCRAM_SHA_256_NAME "\0";
	uint8_t buf[64];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_auth_request(&o, PGW_AUTH_SASL, mech, sizeof(mech));
	cl_send_msg(cl, &o);
	cl->auth_method = CFG_AUTH_SCRAM;
}

static int scram_ready(struct client *cl, const struct scram_secret *sec)
{
	cl->scram = calloc(1, sizeof(*cl->scram));
	if (!cl->scram)
		return -ENOMEM;
	return scram_server_init(cl->scram, sec);
}

/* SCRAM against the stored secret; for a plaintext password, with the salt
 * the proxy derives for the name (the same rule as unknown users get, so the
 * two look alike) and the derived keys cached, the PBKDF2 of a first login
 * running on the authentication threads; for an unknown user (fake_auth),
 * against a mock secret that costs what a stored one costs. */
static int start_scram(struct client *cl, const char *stored)
{
	struct scram_secret sec;
	const uint8_t *key;
	size_t klen;
	int r;
	aw_salt_key(cl->snap->cfg, &key, &klen);
	if (cl->fake_auth) {
		r = scram_mock_secret(key, klen, cl->user, 4096, &sec);
	} else if (is_scram_secret(stored)) {
		r = scram_parse_secret(stored, &sec);
	} else {
		uint8_t salt[SCRAM_USER_SALT_LEN];
		r = scram_user_salt(key, klen, cl->user, salt);
		if (r < 0)
			return r;
		if (!aw_secret_get(cl->user, stored, salt, &sec)) {
			if (strlen(stored) >= AW_PW_MAX ||
			    strlen(cl->user) >= sizeof(((struct aw_job *)0)->user))
				return -EINVAL;
			struct aw_job *j = calloc(1, sizeof(*j));
			if (!j)
				return -ENOMEM;
			j->w = cl->w;
			j->done.fn = auth_work_arrived;
			j->owner = cl;
			snprintf(j->user, sizeof(j->user), "%s", cl->user);
			snprintf(j->password, sizeof(j->password), "%s", stored);
			memcpy(j->salt, salt, sizeof(salt));
			j->iterations = 4096;
			r = aw_submit(j);
			if (r < 0) {
				aw_job_free(j);
				return r;
			}
			/* the challenge goes now; the client's answer waits in
			 * its buffer until the keys are there */
			cl->auth_job = j;
			send_sasl(cl);
			return 0;
		}
	}
	if (r < 0)
		return r;
	r = scram_ready(cl, &sec);
	OPENSSL_cleanse(&sec, sizeof(sec));
	if (r < 0)
		return r;
	send_sasl(cl);
	return 0;
}

void cl_auth_work_done(struct aw_job *j)
{
	struct client *cl = j->owner;
	if (cl) {
		cl->auth_job = NULL;
		int r = j->rc ? j->rc : scram_ready(cl, &j->out);
		if (r < 0) {
			log_error("client %llu: SCRAM setup failed for user \"%s\": %s",
			          (unsigned long long)cl->id, cl->user, strerror(-r));
			auth_fail(cl);
		} else if (cl->ep.in_len) {
			cl_login_input(cl); /* its answer arrived meanwhile */
		}
	}
	aw_job_free(j);
}

static void continue_auth(struct client *cl, bool known);
static void authq_start(struct client *cl);

static int primary_node(const struct cfg *c)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].role == CFG_ROLE_PRIMARY)
			return (int)i;
	return -1;
}

/* AuthenticationCleartextPassword: password, ldap and jwt take the
 * secret itself (over TLS) rather than a proof of it. */
#define AUTH_CLEARTEXT 100 /* cl->auth_method beside enum cfg_auth_method */

static void send_cleartext_request(struct client *cl)
{
	uint8_t buf[16];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_auth_request(&o, PGW_AUTH_CLEARTEXT, NULL, 0);
	cl_send_msg(cl, &o);
	cl->auth_method = AUTH_CLEARTEXT;
}

/* The method for this client: its pg_hba rule's, else auth.method. */
static enum hba_method eff_method(const struct client *cl)
{
	if (cl->hba_rule)
		return cl->hba_rule->method;
	switch (cl->snap->cfg->auth.method) {
	case CFG_AUTH_TRUST:
		return HBA_TRUST;
	case CFG_AUTH_MD5:
		return HBA_MD5;
	default:
		return HBA_SCRAM;
	}
}

/* Finds the client's pg_hba rule. Closes the client (and returns -1) when
 * no rule matches, the rule rejects it, or its method cannot run here. */
static int hba_select(struct client *cl)
{
	const struct hba *h = cl->snap->hba;
	uint8_t a[16];
	char host[64];
	bool inet = peer_addr(cl, a, host, sizeof(host));
	const struct hba_rule *r = hba_match(h, !inet, cl->is_tls, a, cl->user, cl->database);
	char msg[400];
	if (!r) {
		hba_no_entry_msg(msg, sizeof(msg), inet ? host : NULL, cl->user, cl->database,
		                 cl->is_tls);
		char detail[300];
		snprintf(detail, sizeof(detail), "no rule of %s matches", h->source);
		login_refuse(cl, "28000", msg, detail, false);
		return -1;
	}
	cl->hba_rule = r;
	switch (r->method) {
	case HBA_REJECT:
		/* PostgreSQL's words for an explicit reject line */
		snprintf(msg, sizeof(msg),
		         "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database "
		         "\"%s\", %s",
		         inet ? host : "[local]", cl->user, cl->database,
		         cl->is_tls ? "SSL encryption" : "no encryption");
		login_refuse(cl, "28000", msg, NULL, false);
		return -1;
	case HBA_PASSWORD:
	case HBA_JWT:
		/* the secret itself crosses the wire: not in clear over a network */
		if (!cl->is_tls && inet) {
			snprintf(msg, sizeof(msg),
			         "authentication method %s requires an SSL/TLS connection "
			         "(sslmode=require): it sends the %s in clear",
			         hba_method_str(r->method),
			         r->method == HBA_JWT ? "token" : "password");
			login_refuse(cl, "28000", msg, NULL, false);
			return -1;
		}
		break;
	default:
		break;
	}
	log_debug("client %llu %s user=%s db=%s: pg_hba rule %s, method %s",
	          (unsigned long long)cl->id, cl->peer, cl->user, cl->database, r->where,
	          hba_method_str(r->method));
	return 0;
}

/* Refuses a login from an address that failed too often this minute:
 * without a password check, so a guesser learns nothing and costs little. */
static bool refuse_limited(struct client *cl)
{
	char host[64];
	if (!fail_limited(cl, host, sizeof(host)))
		return false;
	char msg[160];
	snprintf(msg, sizeof(msg), "too many failed logins from %s; try again later", host);
	/* one line a second per worker at most: a guesser must not flood the log */
	static __thread time_t last_log;
	static __thread unsigned refused;
	refused++;
	time_t now = time(NULL);
	if (now != last_log) {
		struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
		log_ev(LOG_WARN, "login_failed", &lc,
		       "client %llu %s user=%s db=%s: %s (auth.max_failures_per_minute %d; %u "
		       "refused)",
		       (unsigned long long)cl->id, cl->peer, cl->user, cl->database, msg,
		       cl->snap->cfg->auth.max_failures_per_minute, refused);
		last_log = now;
		refused = 0;
	}
	__atomic_add_fetch(&g_login_failures, 1, __ATOMIC_RELAXED);
	cl->close_logged = true;
	cl_close(cl, "53300", msg);
	return true;
}

static void start_auth(struct client *cl)
{
	const struct cfg *c = cl->snap->cfg;
	if (refuse_limited(cl))
		return;
	if (cl->snap->hba && hba_select(cl) < 0)
		return;
	const struct cfg_user *u = cfg_find_user(c, cl->user);
	if (u) {
		set_str(&cl->password, u->password);
		set_str(&cl->server_password, u->server_password);
	}
	enum hba_method m = eff_method(cl);
	if (m == HBA_CERT) {
		/* the handshake verified the chain (and CRL); the name must map */
		char why[512], msg[160];
		int r = certauth_check(cl->ep.tls, cl->snap->identmap, hba_opt(cl->hba_rule, "map"),
		                       cl->user, why, sizeof(why));
		if (r < 0) {
			snprintf(msg, sizeof(msg),
			         "certificate authentication failed for user \"%s\"", cl->user);
			login_refuse(cl, "28000", msg, why, true);
			return;
		}
		m = HBA_TRUST;
	}
	if (m == HBA_TRUST) {
		cl->auth_method = CFG_AUTH_TRUST;
		auth_ok(cl);
		return;
	}
	if (!cl_set_state(cl, CL_AUTH))
		return;
	if (m == HBA_LDAP || m == HBA_JWT) {
		/* checked elsewhere: no stored secret needed */
		send_cleartext_request(cl);
		return;
	}
	if (!u && (c->auth.auth_user[0] || (cl->db && cl->db->auth_user[0]))) {
		authq_start(cl);
		return;
	}
	continue_auth(cl, u && u->password[0]);
}

/* The secret of a user not in the config: from the cache, or a lookup on
 * the server if fewer than auth_query_max_running of the worker's run,
 * else the client waits its turn (authq_release starts it). */
static void authq_start(struct client *cl)
{
	const struct cfg *c = cl->snap->cfg;
	bool found;
	char secret[CFG_SECRET_MAX];
	cl->authq_waiting = false;
	if (aw_aq_get(cl->database, cl->user, c->auth.auth_query_cache_secs, &found, secret,
	              sizeof(secret))) {
		/* asked lately: the same answer, without a server session */
		if (found)
			set_str(&cl->password, secret);
		explicit_bzero(secret, sizeof(secret));
		continue_auth(cl, found);
		return;
	}
	if (cw_of(cl->w)->authq_running >= c->auth.auth_query_max_running) {
		cl->authq_waiting = true;
		return;
	}
	/* ask the server for the secret, as PgBouncer's auth_query does */
	if (sv_auth_query(cl->w, cl, primary_node(c)) < 0) {
		cl_close(cl, "08006", "could not connect to the server to look up the user");
		return;
	}
	cl->authq_counted = true;
	cw_of(cl->w)->authq_running++;
}

/* cl's lookup ended (answered, failed, or cl left): the oldest client
 * waiting for one on this worker starts its own. */
static void authq_release(struct client *cl)
{
	if (!cl->authq_counted)
		return;
	cl->authq_counted = false;
	struct conn_worker *cw = cw_of(cl->w);
	cw->authq_running--;
	for (struct client *o = cw->q[CLQ_LOGIN].head, *next; o; o = next) {
		next = o->q_next;
		if (!o->authq_waiting)
			continue;
		if (cw->authq_running >= o->snap->cfg->auth.auth_query_max_running)
			break;
		authq_start(o); /* may close o: next was taken before */
	}
}

void cl_auth_query_done(struct client *cl, const char *secret, const char *error)
{
	authq_release(cl);
	if (cl->state != CL_AUTH)
		return;
	if (error) {
		char msg[400];
		snprintf(msg, sizeof(msg), "could not look up the password of user \"%s\": %s",
		         cl->user, error);
		cl_close(cl, "28000", msg);
		return;
	}
	if (cl->snap->cfg->auth.auth_query_cache_secs > 0)
		aw_aq_put(cl->database, cl->user, secret != NULL, secret);
	if (secret)
		set_str(&cl->password, secret);
	continue_auth(cl, secret != NULL);
}

/* Sends the challenge; known = we hold a secret for this user. */
static void continue_auth(struct client *cl, bool known)
{
	if (!known) {
		/* Same exchange as for a known user, so a client cannot probe
		 * which user names exist; it always fails. */
		cl->fake_auth = true;
		char fake[32];
		snprintf(fake, sizeof(fake), "%016llx",
		         (unsigned long long)cl->id * 0x9e3779b97f4a7c15ull);
		set_str(&cl->password, fake);
		log_info("client %llu %s: unknown user \"%s\" (or no password)",
		         (unsigned long long)cl->id, cl->peer, cl->user);
	}
	int r;
	if (!cl->password)
		set_str(&cl->password, "");
	bool md5_stored = md5auth_is_hash(cl->password);
	enum hba_method method = eff_method(cl);
	if (method == HBA_PASSWORD) {
		send_cleartext_request(cl);
		return;
	}
	if (method == HBA_MD5 && !is_scram_secret(cl->password)) {
		/* md5 with a SCRAM secret falls through to SCRAM, as in PostgreSQL */
		if (RAND_bytes(cl->md5_salt, 4) != 1) {
			cl_close(cl, "XX000", "could not generate random salt");
			return;
		}
		uint8_t buf[16];
		struct pgw_out o;
		pgw_out_init(&o, buf, sizeof(buf));
		pgw_auth_request(&o, PGW_AUTH_MD5, cl->md5_salt, 4);
		cl_send_msg(cl, &o);
		cl->auth_method = CFG_AUTH_MD5;
		return;
	}
	if (md5_stored) {
		log_warn("user \"%s\" has an md5 secret: scram-sha-256 needs a plaintext password "
		         "or a SCRAM secret",
		         cl->user);
		cl->fake_auth = true;
	}
	r = start_scram(cl, md5_stored ? "x" : cl->password);
	if (r == -EAGAIN) {
		cl_close(cl, "53300",
		         "too many logins are waiting for a password check; try again later");
		return;
	}
	if (r < 0) {
		log_error("client %llu: SCRAM setup failed for user \"%s\": %s",
		          (unsigned long long)cl->id, cl->user, strerror(-r));
		auth_fail(cl);
	}
}

/* An AuthenticationRequest with a SCRAM message as its data. */
static void send_auth(struct client *cl, uint32_t code, const char *data, size_t len)
{
	uint8_t buf[600];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_auth_request(&o, code, data, len);
	cl_send_msg(cl, &o);
}

/* The password method: the cleartext password against the stored secret
 * (plaintext, md5 or SCRAM), compared in constant time. */
static bool password_ok(const struct client *cl, const char *pw)
{
	const char *st = cl->password;
	if (cl->fake_auth || !st || !*st || !*pw)
		return false;
	if (md5auth_is_hash(st)) {
		char h[36];
		md5auth_password_hash(cl->user, pw, h);
		bool ok = strlen(st) == strlen(h) && CRYPTO_memcmp(h, st, strlen(h)) == 0;
		OPENSSL_cleanse(h, sizeof(h));
		return ok;
	}
	if (is_scram_secret(st)) {
		/* one PBKDF2 on the worker: the password method is for few
		 * logins over TLS; SCRAM clients take the scram-sha-256 path */
		struct scram_secret sec, d;
		bool ok = scram_parse_secret(st, &sec) == 0 &&
		          scram_secret_from_password(pw, sec.salt, sec.salt_len, sec.iterations,
		                                     &d) == 0 &&
		          CRYPTO_memcmp(d.stored_key, sec.stored_key, sizeof(d.stored_key)) == 0 &&
		          CRYPTO_memcmp(d.server_key, sec.server_key, sizeof(d.server_key)) == 0;
		OPENSSL_cleanse(&sec, sizeof(sec));
		OPENSSL_cleanse(&d, sizeof(d));
		return ok;
	}
	size_t a = strlen(st), b = strlen(pw);
	return a == b && CRYPTO_memcmp(st, pw, a) == 0;
}

/* The LDAP check's answer, on the client's worker. */
static void ldap_done(struct worker *w, void *arg, int result, const char *why)
{
	(void)w;
	struct client *cl = arg;
	cl->ldap_req = NULL;
	if (cl->state != CL_AUTH)
		return;
	char msg[200];
	if (result == 0) {
		auth_ok(cl);
	} else if (result == -EACCES) {
		snprintf(msg, sizeof(msg), "LDAP authentication failed for user \"%s\"", cl->user);
		login_refuse(cl, "28P01", msg, why, true);
	} else {
		/* the directory is down: not the client's fault, not counted */
		snprintf(msg, sizeof(msg),
		         "LDAP authentication for user \"%s\" could not be done: no LDAP server "
		         "answered; try again later",
		         cl->user);
		login_refuse(cl, "08006", msg, why, false);
	}
}

static void ldap_begin(struct client *cl, const char *pw)
{
	int r =
	    ldapauth_start(cl->hba_rule->ldap, cl->user, pw, cl->w, ldap_done, cl, &cl->ldap_req);
	if (r == -EAGAIN) {
		cl_close(cl, "53300", "too many LDAP checks are waiting; try again later");
		return;
	}
	if (r < 0) {
		log_error("client %llu: LDAP check for user \"%s\" could not start: %s",
		          (unsigned long long)cl->id, cl->user, strerror(-r));
		cl_close(cl, "XX000", "could not start the LDAP check");
	}
}

static void jwt_check(struct client *cl, const char *token)
{
	char why[JWTAUTH_WHY_MAX], tenant[sizeof(cl->jwt_tenant)];
	const struct jwt_conf *jc = cl->hba_rule->jwt;
	int r = jc ? jwtauth_verify(jc, token, cl->user, tenant, sizeof(tenant), why, sizeof(why))
	           : -EINVAL;
	if (r == 0) {
		snprintf(cl->jwt_tenant, sizeof(cl->jwt_tenant), "%s", tenant);
		auth_ok(cl);
		return;
	}
	if (!jc)
		snprintf(why, sizeof(why), "the rule's keys are not loaded");
	char msg[200];
	snprintf(msg, sizeof(msg), "JWT authentication failed for user \"%s\"", cl->user);
	login_refuse(cl, "28P01", msg, why, true);
}

/* A PasswordMessage answering AuthenticationCleartextPassword. */
static void handle_cleartext(struct client *cl, const struct pgw_msg *m)
{
	if (m->len == 0 || memchr(m->body, 0, m->len) != m->body + m->len - 1) {
		cl_close(cl, "08P01", "invalid password packet size");
		return;
	}
	char *pw = (char *)m->body; /* the caller's copy: wiped below */
	switch (eff_method(cl)) {
	case HBA_PASSWORD:
		if (password_ok(cl, pw))
			auth_ok(cl);
		else
			auth_fail(cl);
		break;
	case HBA_LDAP:
		ldap_begin(cl, pw);
		break;
	case HBA_JWT:
		jwt_check(cl, pw);
		break;
	default:
		cl_close(cl, "08P01", "unexpected password message");
		break;
	}
	OPENSSL_cleanse(pw, m->len);
}

static void handle_password_msg(struct client *cl, const struct pgw_msg *m)
{
	if (m->type != PGW_MSG_PASSWORD) {
		cl_close(cl, "08P01", "expected a password message during authentication");
		return;
	}
	if (cl->auth_method == AUTH_CLEARTEXT) {
		handle_cleartext(cl, m);
		return;
	}
	if (cl->auth_method == CFG_AUTH_MD5) {
		const uint8_t *nul = memchr(m->body, 0, m->len);
		size_t rlen = nul ? (size_t)(nul - m->body) : m->len;
		char stored[40];
		const char *hash = cl->password;
		if (!md5auth_is_hash(hash)) {
			md5auth_password_hash(cl->user, cl->password, stored);
			hash = stored;
		}
		if (!cl->fake_auth &&
		    md5auth_verify(hash, cl->md5_salt, (const char *)m->body, rlen))
			auth_ok(cl);
		else
			auth_fail(cl);
		return;
	}
	/* SCRAM: first SASLInitialResponse (mechanism, length, data), then
	 * SASLResponse (data only). */
	char out[512];
	size_t out_len;
	int r;
	if (cl->scram && !cl->scram_first_done) {
		cl->scram_first_done = true;
		uint32_t off = 0;
		const char *mech = pgw_get_str(m->body, m->len, &off);
		if (!mech || off + 4 > m->len) {
			cl_close(cl, "08P01", "malformed SASLInitialResponse");
			return;
		}
		if (strcmp(mech, SCRAM_SHA_256_NAME) != 0) {
			cl_close(cl, "28000",
			         "client selected an invalid SASL authentication mechanism");
			return;
		}
		int32_t dlen = (int32_t)pgw_get_u32(m->body + off);
		off += 4;
		if (dlen < 0 || (uint32_t)dlen > m->len - off) {
			cl_close(cl, "08P01", "malformed SASLInitialResponse");
			return;
		}
		r = scram_server_handle_first(cl->scram, (const char *)m->body + off, (size_t)dlen,
		                              out, sizeof(out), &out_len);
		if (r < 0) {
			cl_close(cl, "08P01", "malformed SCRAM message");
			return;
		}
		send_auth(cl, PGW_AUTH_SASL_CONTINUE, out, out_len);
		return;
	}
	if (!cl->scram) {
		cl_close(cl, "08P01", "unexpected password message");
		return;
	}
	r = scram_server_handle_final(cl->scram, (const char *)m->body, m->len, out, sizeof(out),
	                              &out_len);
	if (r == -EACCES || (r == 0 && cl->fake_auth)) {
		auth_fail(cl);
		return;
	}
	if (r < 0) {
		cl_close(cl, "08P01", "malformed SCRAM message");
		return;
	}
	send_auth(cl, PGW_AUTH_SASL_FINAL, out, out_len);
	auth_ok(cl);
}

/* Protocol 3.x with x > 0, or "_pq_." options: the proxy speaks 3.0 and
 * knows no protocol options, so it answers NegotiateProtocolVersion (3.0, the
 * options it did not recognise) as PostgreSQL 15 does, and the
 * options are dropped from the parameters servers get. Returns 0 or -1
 * (client closed). */
static int negotiate_protocol(struct client *cl, struct pgw_startup *st)
{
	int n_pq = 0, kept = 0;
	for (int i = 0; i < st->n_params; i++)
		if (!strncmp(st->params[i].name, "_pq_.", 5))
			n_pq++;
	if ((st->code & 0xffff) == 0 && n_pq == 0)
		return 0;
	uint8_t buf[PGW_MAX_STARTUP + 64];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	size_t m = pgw_begin_msg(&o, 'v');
	pgw_put_u32(&o, PGW_PROTO_V3); /* what PostgreSQL sends: the whole version, 3.0 */
	pgw_put_u32(&o, (uint32_t)n_pq);
	for (int i = 0; i < st->n_params; i++) {
		if (!strncmp(st->params[i].name, "_pq_.", 5))
			pgw_put_str(&o, st->params[i].name);
		else
			st->params[kept++] = st->params[i];
	}
	pgw_end_msg(&o, m);
	st->n_params = kept;
	if (o.overflow) {
		cl_close(cl, "08P01", "too many protocol options in the startup packet");
		return -1;
	}
	log_debug("client %llu %s: protocol 3.%u, %d _pq_ option(s): NegotiateProtocolVersion 3.0",
	          (unsigned long long)cl->id, cl->peer, st->code & 0xffff, n_pq);
	cl_send_msg(cl, &o);
	return 0;
}

/* Adds name = value to the startup parameters unless the client sent it
 * (a [[databases]] entry's client_encoding, datestyle, timezone: the
 * server's default for its clients, as PgBouncer's connect string). */
static void default_param(struct pgw_startup *st, const char *name, const char *value)
{
	if (!value[0] || st->n_params >= PGW_MAX_PARAMS)
		return;
	for (int i = 0; i < st->n_params; i++)
		if (!strcasecmp(st->params[i].name, name))
			return;
	st->params[st->n_params++] = (struct pgw_param){name, value};
}

/* issue 19: the client's [[databases]] entry: what its servers log in as,
 * the startup parameters the entry adds. An unknown database when there are
 * entries but no "*" gets PgBouncer's 3D000. Returns 0 or -1 (closed). */
static int resolve_database(struct client *cl, struct pgw_startup *st)
{
	const struct cfg *c = cl->snap->cfg;
	bool none;

	cl->db = NULL;
	snprintf(cl->sv_database, sizeof(cl->sv_database), "%s", cl->database);
	snprintf(cl->sv_user, sizeof(cl->sv_user), "%s", cl->user);
	if (!strcmp(cl->database, CONN_CONSOLE_DB) || !strcmp(cl->database, CONN_CONSOLE_DB_PGB))
		return 0; /* the admin console (report/console.c) is no database entry */
	cl->db = cfg_database_find(c, cl->database, &none);
	if (none) {
		char msg[128];
		snprintf(msg, sizeof(msg), "no such database: %s", cl->database);
		log_info("client %llu %s user=%s db=%s: refused: no [[databases]] entry",
		         (unsigned long long)cl->id, cl->peer, cl->user, cl->database);
		cl_close(cl, "3D000", msg);
		return -1;
	}
	if (!cl->db)
		return 0;
	if (cl->db->dbname[0])
		snprintf(cl->sv_database, sizeof(cl->sv_database), "%s", cl->db->dbname);
	if (cl->db->user[0])
		snprintf(cl->sv_user, sizeof(cl->sv_user), "%s", cl->db->user);
	default_param(st, "client_encoding", cl->db->client_encoding);
	default_param(st, "DateStyle", cl->db->datestyle);
	default_param(st, "TimeZone", cl->db->timezone);
	return 0;
}

static void handle_startup_packet(struct client *cl, struct pgw_startup *st)
{
	const struct cfg *c = cl->snap->cfg;
	uint8_t one;
	switch (st->code) {
	case PGW_SSL_REQUEST:
	case PGW_GSSENC_REQUEST:
		/* one of each before the startup packet, none after TLS is up,
		 * as PostgreSQL: a repeat reads as an unknown protocol version */
		if (st->code == PGW_SSL_REQUEST ? cl->ssl_asked : cl->gss_asked) {
			char msg[120];
			snprintf(msg, sizeof(msg),
			         "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			         st->code >> 16, st->code & 0xffff);
			cl_close(cl, "0A000", msg);
			return;
		}
		if (st->code == PGW_SSL_REQUEST)
			cl->ssl_asked = true;
		else
			cl->gss_asked = true;
		break;
	default:
		break;
	}
	switch (st->code) {
	case PGW_SSL_REQUEST:
		if (!cl->snap->client_tls) {
			one = 'N';
			ep_send_bytes(&cl->ep, &one, 1);
			return;
		}
		one = 'S';
		ep_send_bytes(&cl->ep, &one, 1);
		cl->ep.tls = tls_conn_new(cl->snap->client_tls, true, NULL);
		if (!cl->ep.tls) {
			cl_close(cl, NULL, NULL);
			return;
		}
		cl->is_tls = true;
		cl->gss_asked = true; /* no GSSENCRequest inside TLS */
		cl_set_state(cl, CL_TLS);
		return;
	case PGW_GSSENC_REQUEST:
		one = 'N';
		ep_send_bytes(&cl->ep, &one, 1);
		return;
	case PGW_CANCEL_REQUEST:
		cancel_forward(cl->w, st->cancel_pid, st->cancel_key);
		cl_close(cl, NULL, NULL);
		return;
	default:
		break;
	}
	if (c->tls.client_mode >= CFG_CTLS_REQUIRE && !cl->is_tls) {
		cl_close(cl, "28000",
		         "this proxy requires an SSL/TLS connection (sslmode=require)");
		return;
	}
	if (negotiate_protocol(cl, st) < 0)
		return;
	if (strlen(st->user) >= sizeof(cl->user) || strlen(st->database) >= sizeof(cl->database)) {
		cl_close(cl, "08P01", "user or database name is longer than 63 bytes");
		return;
	}
	snprintf(cl->user, sizeof(cl->user), "%s", st->user);
	snprintf(cl->database, sizeof(cl->database), "%s", st->database);
	cl->replication = st->replication;
	if (resolve_database(cl, st) < 0)
		return;
	if (copy_params(cl, st) < 0) {
		cl_close(cl, "53200", "out of memory");
		return;
	}
	enum cfg_pool_mode mode = cfg_pool_mode_for(c, cl->db, cl->user);
	if (!cl->replication && mode != CFG_POOL_SESSION) {
		/* servers are shared between clients: they start neutral and get
		 * each client's settings applied when it lands on them */
		cl->txn = true;
		cl->stmt_mode = mode == CFG_POOL_STATEMENT;
		cl->signature = 0;
		if (tx_client_init(cl) < 0) {
			cl_close(cl, "53200", "out of memory (startup parameters)");
			return;
		}
	}
	log_debug("client %llu %s: startup user=%s db=%s params=%d%s", (unsigned long long)cl->id,
	          cl->peer, cl->user, cl->database, cl->n_params,
	          cl->replication ? " replication" : "");
	if (c->tls.client_mode == CFG_CTLS_VERIFY_FULL) {
		/* PostgreSQL's clientcert=verify-full: the certificate's name
		 * must be the login user's (or map to it), whatever the method */
		char why[512], msg[160];
		if (certauth_check(cl->ep.tls, cl->snap->identmap, c->tls.client_map, cl->user, why,
		                   sizeof(why)) < 0) {
			struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
			log_ev(LOG_INFO, "client_close", &lc,
			       "client %llu %s user=%s db=%s: refused by tls.client_mode = "
			       "verify-full: %s",
			       (unsigned long long)cl->id, cl->peer, cl->user, cl->database, why);
			cl->close_logged = true;
			snprintf(msg, sizeof(msg),
			         "certificate validation (clientcert=verify-full) failed for user "
			         "\"%s\": CN mismatch",
			         cl->user);
			cl_close(cl, "28000", msg);
			return;
		}
	}
	start_auth(cl);
}

/* Consumes whole packets/messages from the login buffer. Each is copied
 * out and consumed before it is handled, because handling may bind a
 * server and forward whatever the buffer still holds. */
void cl_login_input(struct client *cl)
{
	uint8_t local[PGW_MAX_STARTUP];
	while (cl->ep.in_len > 0 &&
	       (cl->state == CL_STARTUP || cl->state == CL_TLS || cl->state == CL_AUTH)) {
		if (cl->state == CL_STARTUP || cl->state == CL_TLS) {
			struct pgw_startup st;
			const char *why;
			enum pgw_status s = pgw_parse_startup(cl->ep.in, cl->ep.in_len, &st, &why);
			if (s == PGW_NEED_MORE)
				return;
			if (s == PGW_BAD) {
				uint32_t len = pgw_get_u32(cl->ep.in);
				if (len < 8 || len > PGW_MAX_STARTUP) {
					/* not a startup packet at all (a Terminate, HTTP,
					 * a port scan): PostgreSQL logs it and closes
					 * without a word, so a client that gave up
					 * before connecting sees no error */
					log_info("client %llu %s: closing: %s",
					         (unsigned long long)cl->id, cl->peer, why);
					cl_close(cl, NULL, NULL);
					return;
				}
				cl_close(cl, "08P01", why);
				return;
			}
			bool ssl_alone = st.code == PGW_SSL_REQUEST && cl->ep.in_len == st.total;
			memcpy(local, cl->ep.in, st.total);
			ep_in_consume(&cl->ep, st.total);
			if (pgw_parse_startup(local, st.total, &st, &why) != PGW_OK)
				return;
			if (st.code == PGW_SSL_REQUEST && !ssl_alone) {
				/* data after SSLRequest would be read as plaintext */
				cl_close(cl, "08P01", "unexpected data after SSLRequest");
				return;
			}
			if (cl->state == CL_TLS)
				cl_set_state(cl, CL_STARTUP);
			handle_startup_packet(cl, &st);
			continue;
		}
		if (cl->auth_job || cl->ldap_req)
			return; /* cl_auth_work_done / ldap_done come back here */
		struct pgw_msg m;
		enum pgw_status s = pgw_next_msg(cl->ep.in, cl->ep.in_len, 8192, &m);
		if (s == PGW_NEED_MORE)
			return;
		if (s == PGW_BAD) {
			cl_close(cl, "08P01", "invalid message length during authentication");
			return;
		}
		memcpy(local, cl->ep.in, m.total);
		m.body = local + 5;
		ep_in_consume(&cl->ep, m.total);
		handle_password_msg(cl, &m);
	}
}
