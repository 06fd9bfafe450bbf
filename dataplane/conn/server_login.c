/*
 * Server login: the authentication exchange (cleartext, md5, SCRAM with a
 * password or with the client's recovered key), the parameters the server
 * reports, handing the logged-in server to its client or the pool, and the
 * auth_query lookups run on a server connection of their own.
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/server_internal.h"
#include "dataplane/conn/splice.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/auth/md5auth.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/tls/tls.h"
#include "dataplane/rt/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Sends auth_query with the user name as a bound parameter (never
 * spliced into the text). */
static void send_auth_query(struct server *sv)
{
	struct client *cl = sv->authq_client;
	struct snap *sn = snap_current();
	uint8_t buf[CFG_QUERY_MAX + 256];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	size_t m = pgw_begin_msg(&o, 'P');
	pgw_put_str(&o, "");
	pgw_put_str(&o, sn->cfg->auth.auth_query);
	pgw_put_u8(&o, 0);
	pgw_put_u8(&o, 0);
	pgw_end_msg(&o, m);
	snap_unref(sn);
	m = pgw_begin_msg(&o, 'B');
	pgw_put_str(&o, "");
	pgw_put_str(&o, "");
	pgw_put_u8(&o, 0); /* parameter formats: all text */
	pgw_put_u8(&o, 0);
	pgw_put_u8(&o, 0);
	pgw_put_u8(&o, 1); /* one parameter */
	pgw_put_u32(&o, (uint32_t)strlen(cl->user));
	pgw_put_bytes(&o, cl->user, strlen(cl->user));
	pgw_put_u8(&o, 0); /* result formats: all text */
	pgw_put_u8(&o, 0);
	pgw_end_msg(&o, m);
	pgw_execute_sync(&o);
	if (o.overflow) {
		sv_fail(sv, NULL, 0, "08006", "auth_query is too long");
		return;
	}
	sv_set_state(sv, SV_AUTH_QUERY);
	ep_send_bytes(&sv->ep, buf, o.len);
}

/* Reads the answer: one DataRow (usename, passwd), then ReadyForQuery. */
void sv_process_auth_query(struct server *sv)
{
	while (sv->state == SV_AUTH_QUERY) {
		struct pgw_msg m;
		enum pgw_status st = pgw_next_msg(sv->ep.in, sv->ep.in_len, CONN_INBUF_MAX - 5, &m);
		if (st == PGW_NEED_MORE)
			return;
		struct client *cl = sv->authq_client;
		if (st == PGW_BAD) {
			sv_fail(sv, NULL, 0, "08P01", "invalid message from server in auth_query");
			return;
		}
		if (m.type == 'D' && cl && !sv->authq_found && m.len >= 2) {
			/* second column: passwd; NULL (-1) means no password */
			uint32_t off = 2;
			char secret[CFG_SECRET_MAX] = "";
			bool have = false;
			for (int col = 0; col < 2 && off + 4 <= m.len; col++) {
				int32_t l = (int32_t)pgw_get_u32(m.body + off);
				off += 4;
				if (l < 0)
					continue;
				if ((uint32_t)l > m.len - off)
					break;
				if (col == 1 && (size_t)l < sizeof(secret)) {
					memcpy(secret, m.body + off, (size_t)l);
					secret[l] = 0;
					have = true;
				}
				off += (uint32_t)l;
			}
			sv->authq_found = true;
			if (have)
				snprintf(sv->password, sizeof(sv->password), "%s", secret);
			else
				sv->password[0] = 0;
		} else if (m.type == PGW_MSG_ERROR && cl) {
			const char *msg = pgw_error_field(m.body, m.len, 'M');
			char line[300];
			snprintf(line, sizeof(line), "auth_query failed: %s", msg ? msg : "?");
			log_warn("server %s:%d db=%s user=%s: %s", sv->node_host, sv->node_port,
			         sv->database, sv->user, line);
			sv->authq_client = NULL;
			cl->authq = NULL;
			cl_auth_query_done(cl, NULL, line);
		} else if (m.type == PGW_MSG_READY) {
			ep_in_consume(&sv->ep, m.total);
			sv->authq_client = NULL;
			if (cl) {
				cl->authq = NULL;
				cl_auth_query_done(
				    cl, sv->authq_found && sv->password[0] ? sv->password : NULL,
				    NULL);
			}
			sv_close(sv);
			return;
		}
		ep_in_consume(&sv->ep, m.total);
	}
}

/* ------------------------------------------------------------- login */

static bool is_plain(const char *pw)
{
	return pw[0] && !md5auth_is_hash(pw) && strncmp(pw, "SCRAM-SHA-256$", 14) != 0;
}

static const char *plain_password(const struct server *sv)
{
	if (sv->server_password[0])
		return sv->server_password;
	if (is_plain(sv->password))
		return sv->password;
	return NULL;
}

static void send_password_msg(struct server *sv, const void *p, size_t n)
{
	uint8_t hdr[5] = {'p', (uint8_t)((n + 4) >> 24), (uint8_t)((n + 4) >> 16),
	                  (uint8_t)((n + 4) >> 8), (uint8_t)(n + 4)};
	ep_send_bytes(&sv->ep, hdr, 5);
	ep_send_bytes(&sv->ep, p, n);
}

static int handle_auth(struct server *sv, const struct pgw_msg *m)
{
	if (m->len < 4)
		return -EPROTO;
	uint32_t code = pgw_get_u32(m->body);
	const char *pw = plain_password(sv);
	char out[600];
	size_t out_len;
	int r;
	switch (code) {
	case PGW_AUTH_OK:
		return 0;
	case PGW_AUTH_CLEARTEXT:
		if (!pw)
			return -ENOKEY;
		send_password_msg(sv, pw, strlen(pw) + 1);
		return 0;
	case PGW_AUTH_MD5: {
		if (m->len < 8)
			return -EPROTO;
		char hash[40], resp[40];
		const char *stored;
		if (pw) {
			md5auth_password_hash(sv->user, pw, hash);
			stored = hash;
		} else if (md5auth_is_hash(sv->password)) {
			stored = sv->password;
		} else {
			return -ENOKEY;
		}
		if (md5auth_response_from_hash(stored, m->body + 4, resp) < 0)
			return -EPROTO;
		send_password_msg(sv, resp, strlen(resp) + 1);
		return 0;
	}
	case PGW_AUTH_SASL: {
		/* the list of mechanisms must include SCRAM-SHA-256 */
		bool found = false;
		uint32_t off = 4;
		const char *mech;
		while ((mech = pgw_get_str(m->body, m->len, &off)) && mech[0])
			if (!strcmp(mech, SCRAM_SHA_256_NAME))
				found = true;
		if (!found)
			return -EPROTONOSUPPORT;
		sv->scram = calloc(1, sizeof(*sv->scram));
		if (!sv->scram)
			return -ENOMEM;
		struct scram_secret sec;
		if (pw) {
			r = scram_client_init_password(sv->scram, pw);
		} else if (sv->have_client_key && scram_parse_secret(sv->password, &sec) == 0) {
			/* passthrough: the client's proven key, no plaintext */
			r = scram_client_init_keys(sv->scram, sv->client_key, sec.server_key);
		} else {
			return -ENOKEY;
		}
		if (r < 0)
			return r;
		r = scram_client_first(sv->scram, out, sizeof(out), &out_len);
		if (r < 0)
			return r;
		uint8_t buf[700];
		struct pgw_out o;
		pgw_out_init(&o, buf, sizeof(buf));
		pgw_put_str(&o, SCRAM_SHA_256_NAME);
		pgw_put_u32(&o, (uint32_t)out_len);
		pgw_put_bytes(&o, out, out_len);
		send_password_msg(sv, buf, o.len);
		return 0;
	}
	case PGW_AUTH_SASL_CONTINUE:
		if (!sv->scram)
			return -EPROTO;
		r = scram_client_handle_server_first(sv->scram, (const char *)m->body + 4,
		                                     m->len - 4, out, sizeof(out), &out_len);
		if (r < 0)
			return r;
		send_password_msg(sv, out, out_len);
		return 0;
	case PGW_AUTH_SASL_FINAL:
		if (!sv->scram)
			return -EPROTO;
		r = scram_client_verify_server_final(sv->scram, (const char *)m->body + 4,
		                                     m->len - 4);
		return r < 0 ? -EBADMSG : 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

static void login_done(struct server *sv)
{
	sv_node_success(sv); /* its next state takes it off the login list */
	free(sv->scram);
	sv->scram = NULL;
	sv->tx_status = 'I';
	sv->clean = true;
	if (sv->authq_client) {
		send_auth_query(sv);
		return;
	}
	if (sv->is_listener) {
		sv_set_state(sv, SV_LISTENER);
		listen_listener_ready(sv);
		return;
	}
	if (sv->pool) {
		pool_remember_startup(sv->pool, sv->startup_pkt, sv->startup_len, sv->signature);
		size_t blen = 0;
		for (int i = 0; i < sv->n_params; i++)
			blen += strlen(sv->param_name[i]) + strlen(sv->param_value[i]) + 2;
		char *blob = malloc(blen ? blen : 1), *q = blob;
		if (blob) {
			for (int i = 0; i < sv->n_params; i++) {
				q = stpcpy(q, sv->param_name[i]) + 1;
				q = stpcpy(q, sv->param_value[i]) + 1;
			}
			pool_remember_params(sv->pool, blob, (uint32_t)blen);
			free(blob);
		}
	}
	log_debug("server %llu %s:%d db=%s user=%s: logged in, backend pid %u",
	          (unsigned long long)sv->id, sv->node_host, sv->node_port, sv->database, sv->user,
	          sv->backend_pid);
	struct client *cl = sv->client;
	if (cl && cl->connecting == sv) {
		cl->connecting = NULL;
		sv_set_state(sv, SV_ACTIVE);
		cl_server_ready(cl, sv);
		return;
	}
	/* warm-up, or the client left during login */
	sv->client = NULL;
	sv_set_state(sv, SV_ACTIVE);
	sv_release(sv);
}

void sv_process_login(struct server *sv)
{
	while (sv->state == SV_LOGIN) {
		struct pgw_msg m;
		enum pgw_status st = pgw_next_msg(sv->ep.in, sv->ep.in_len, CONN_INBUF_MAX - 5, &m);
		if (st == PGW_NEED_MORE)
			return;
		if (st == PGW_BAD) {
			sv_fail(sv, NULL, 0, "08P01", "invalid message from server during login");
			return;
		}
		int r = 0;
		switch (m.type) {
		case PGW_MSG_AUTH:
			r = handle_auth(sv, &m);
			if (r == -ENOKEY) {
				char msg[300];
				snprintf(msg, sizeof(msg),
				         "the server asks for a password for user \"%s\" and the "
				         "proxy has none it can use (set password or "
				         "server_password for this user)",
				         sv->user);
				sv_fail(sv, NULL, 0, "28P01", msg);
				return;
			}
			if (r == -EBADMSG) {
				sv_fail(sv, NULL, 0, "28000",
				        "the server's SCRAM signature did not verify");
				return;
			}
			if (r < 0) {
				char msg[200];
				snprintf(msg, sizeof(msg),
				         "authentication with the server failed: %s", strerror(-r));
				sv_fail(sv, NULL, 0, "28000", msg);
				return;
			}
			break;
		case PGW_MSG_PARAM_STATUS:
			sv_param_status(sv, m.body, m.len);
			break;
		case PGW_MSG_KEY_DATA:
			if (m.len >= 8) {
				sv->backend_pid = pgw_get_u32(m.body);
				sv->backend_key = pgw_get_u32(m.body + 4);
			}
			break;
		case PGW_MSG_ERROR: {
			const char *msg = pgw_error_field(m.body, m.len, 'M');
			char line[300];
			snprintf(line, sizeof(line), "login refused: %s", msg ? msg : "?");
			/* the client gets the server's own error, unchanged */
			log_info("server %s:%d db=%s user=%s: %s", sv->node_host, sv->node_port,
			         sv->database, sv->user, line);
			const char *code = pgw_error_field(m.body, m.len, 'C');
			if (code && code[0] && breaker_fatal_is_node_failure(code))
				sv_node_failure(sv, line); /* starting up, shutting down, crashed */
			struct client *cl = sv->client;
			sv->client = NULL;
			if (cl && cl->connecting == sv)
				cl_server_failed(cl, m.body, m.len, NULL, NULL);
			struct client *aq = sv->authq_client;
			sv->authq_client = NULL;
			if (aq && aq->authq == sv) {
				aq->authq = NULL;
				cl_auth_query_done(aq, NULL, line);
			}
			sv_close(sv);
			return;
		}
		case PGW_MSG_READY:
			ep_in_consume(&sv->ep, m.total);
			login_done(sv);
			return;
		default:
			break; /* NoticeResponse and the like */
		}
		ep_in_consume(&sv->ep, m.total);
	}
}
