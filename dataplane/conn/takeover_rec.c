/*
 * Online restart: the CLIENT and SERVER records (takeover.h has the
 * protocol). Pure: bytes in, bytes or a parsed view out; the reader
 * refuses anything truncated, lengthened or of another version.
 * May call: conn/.
 */
#include "dataplane/conn/takeover_rec.h"

#include "common/cfg.h"
#include "dataplane/policy/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void tko_w_put(struct tko_wbuf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void tko_w_u32(struct tko_wbuf *b, uint32_t v)
{
	tko_w_put(b, &v, sizeof(v));
}

void tko_w_blob(struct tko_wbuf *b, const void *p, uint32_t n)
{
	tko_w_u32(b, n);
	tko_w_put(b, p, n);
}

/* A string with its NUL (the reader hands out pointers into the record). */
void tko_w_str(struct tko_wbuf *b, const char *s)
{
	tko_w_blob(b, s ? s : "", (uint32_t)strlen(s ? s : "") + 1);
}

uint32_t tko_r_u32(struct tko_rbuf *b)
{
	uint32_t v = 0;
	if (b->bad || b->len - b->pos < sizeof(v)) {
		b->bad = true;
		return 0;
	}
	memcpy(&v, b->p + b->pos, sizeof(v));
	b->pos += sizeof(v);
	return v;
}

const uint8_t *tko_r_blob(struct tko_rbuf *b, uint32_t *n)
{
	*n = tko_r_u32(b);
	if (b->bad || b->len - b->pos < *n) {
		b->bad = true;
		*n = 0;
		return NULL;
	}
	const uint8_t *p = b->p + b->pos;
	b->pos += *n;
	return p;
}

const char *tko_r_str(struct tko_rbuf *b)
{
	uint32_t n;
	const uint8_t *p = tko_r_blob(b, &n);
	if (!p || n == 0 || p[n - 1] != 0) {
		b->bad = true;
		return "";
	}
	return (const char *)p;
}

/* n name/value pairs (at most max) into a calloc'd array, names first
 * then values: 0, -EPROTO or -ENOMEM. */
static int tko_r_pairs(struct tko_rbuf *b, uint32_t max, uint32_t *n, const char ***names,
                       const char ***values)
{
	*n = tko_r_u32(b);
	if (b->bad || *n > max)
		return -EPROTO;
	*names = calloc(2 * (size_t)*n + 1, sizeof(char *));
	if (!*names)
		return -ENOMEM;
	*values = *names + *n;
	for (uint32_t i = 0; i < *n; i++) {
		(*names)[i] = tko_r_str(b);
		(*values)[i] = tko_r_str(b);
	}
	return b->bad ? -EPROTO : 0;
}

/* A list of settings, as tko_r_pairs. */
static int tko_r_gucs(struct tko_rbuf *b, uint32_t *n, struct tko_guc **g)
{
	*n = tko_r_u32(b);
	if (b->bad || *n > GUC_MAX)
		return -EPROTO;
	*g = calloc(*n + 1, sizeof(**g));
	if (!*g)
		return -ENOMEM;
	for (uint32_t i = 0; i < *n; i++) {
		(*g)[i].name = tko_r_str(b);
		(*g)[i].value = tko_r_str(b);
		(*g)[i].is_stmt = tko_r_u32(b) != 0;
	}
	return b->bad ? -EPROTO : 0;
}

/* The client's state as the new process needs it to go on (cl_can_move
 * said it can move: idle, no server, nothing half-way). */
int tko_pack_client_into(const struct client *cl, struct tko_wbuf *b)
{
	uint8_t type = TKO_CLIENT;
	tko_w_put(b, &type, 1);
	tko_w_u32(b, TKO_VERSION);
	tko_w_str(b, cl->user);
	tko_w_str(b, cl->database);
	tko_w_str(b, cl->peer);
	const struct server *sv = cl->txn ? NULL : cl->server;
	tko_w_u32(b, (cl->is_unix ? 1u : 0u) | (cl->stmt_mode ? 2u : 0u) |
	                 (cl->have_client_key ? 4u : 0u) | (cl->password ? 8u : 0u) |
	                 (cl->server_password ? 16u : 0u) | (sv ? 32u : 0u));
	tko_w_u32(b, (uint32_t)cl->signature);
	tko_w_u32(b, (uint32_t)(cl->signature >> 32));
	tko_w_u32(b, cl->cancel_pid);
	tko_w_u32(b, cl->cancel_key);
	tko_w_u32(b, (uint32_t)cl->auth_method);
	tko_w_blob(b, cl->client_key, sizeof(cl->client_key));
	tko_w_str(b, cl->password);
	tko_w_str(b, cl->server_password);
	tko_w_str(b, cl->jwt_tenant);
	tko_w_u32(b, (uint32_t)cl->n_params);
	for (int i = 0; i < cl->n_params; i++) {
		tko_w_str(b, cl->params[i].name);
		tko_w_str(b, cl->params[i].value);
	}
	tko_w_u32(b, (uint32_t)cl->want.n);
	for (int i = 0; i < cl->want.n; i++) {
		tko_w_str(b, cl->want.e[i].name);
		tko_w_str(b, cl->want.e[i].value);
		tko_w_u32(b, cl->want.e[i].is_stmt);
	}
	tko_w_u32(b, cl->prep.count);
	for (uint32_t i = 0; i < cl->prep.nbuckets; i++)
		for (const struct prep_stmt *s = cl->prep.buckets[i]; s; s = s->next) {
			tko_w_str(b, s->name);
			tko_w_blob(b, s->body, s->body_len);
		}
	if (sv) {
		const struct cfg *c = cl->snap->cfg;
		if (sv->node_idx < 0 || (size_t)sv->node_idx >= c->n_nodes)
			return -EINVAL;
		tko_w_str(b, c->nodes[sv->node_idx].name);
		tko_w_str(b, sv->node_host);
		tko_w_u32(b, (uint32_t)sv->node_port);
		tko_w_u32(b, sv->backend_pid);
		tko_w_u32(b, sv->backend_key);
		struct timespec now;
		conn_now(&now);
		tko_w_u32(b, (uint32_t)(now.tv_sec - sv->created.tv_sec));
		tko_w_u32(b, (uint32_t)sv->n_params);
		for (int i = 0; i < sv->n_params; i++) {
			tko_w_str(b, sv->param_name[i]);
			tko_w_str(b, sv->param_value[i]);
		}
	}
	return b->oom ? -ENOMEM : 0;
}

void cl_moved_free(struct cl_moved *m)
{
	free(m->pnames);
	free(m->sv.pnames);
	free(m->want);
	free(m->prep);
	memset(m, 0, sizeof(*m));
}

/* An idle transaction-pooling server: who it is logged in as, what the
 * proxy knows of its session (applied settings, prepared statement keys). */
int tko_pack_server_into(const struct server *sv, const char *node, struct tko_wbuf *b)
{
	uint8_t type = TKO_SERVER;
	tko_w_put(b, &type, 1);
	tko_w_u32(b, TKO_VERSION);
	tko_w_str(b, node);
	tko_w_str(b, sv->node_host);
	tko_w_u32(b, (uint32_t)sv->node_port);
	tko_w_str(b, sv->user);
	tko_w_str(b, sv->database);
	tko_w_u32(b, sv->backend_pid);
	tko_w_u32(b, sv->backend_key);
	tko_w_u32(b, (uint32_t)sv->signature);
	tko_w_u32(b, (uint32_t)(sv->signature >> 32));
	struct timespec now;
	conn_now(&now);
	tko_w_u32(b, (uint32_t)(now.tv_sec - sv->created.tv_sec));
	tko_w_u32(b, (sv->last_client != 0 ? 1u : 0u) | (sv->txn ? 2u : 0u));
	tko_w_u32(b, (uint32_t)sv->n_params);
	for (int i = 0; i < sv->n_params; i++) {
		tko_w_str(b, sv->param_name[i]);
		tko_w_str(b, sv->param_value[i]);
	}
	tko_w_u32(b, (uint32_t)sv->applied.n);
	for (int i = 0; i < sv->applied.n; i++) {
		tko_w_str(b, sv->applied.e[i].name);
		tko_w_str(b, sv->applied.e[i].value);
		tko_w_u32(b, sv->applied.e[i].is_stmt);
	}
	tko_w_u32(b, sv->prep.n);
	for (uint32_t i = 0; i < sv->prep.n; i++) {
		tko_w_u32(b, (uint32_t)sv->prep.keys[i]);
		tko_w_u32(b, (uint32_t)(sv->prep.keys[i] >> 32));
	}
	return b->oom ? -ENOMEM : 0;
}

void sv_moved_free(struct sv_moved *m)
{
	free(m->pnames);
	free(m->applied);
	free(m->keys);
	memset(m, 0, sizeof(*m));
}

int tko_parse_server(const uint8_t *rec, size_t len, struct sv_moved *m)
{
	struct tko_rbuf b = {.p = rec, .len = len, .pos = 1};
	memset(m, 0, sizeof(*m));
	if (len < 1 || rec[0] != TKO_SERVER || tko_r_u32(&b) != TKO_VERSION)
		return -EPROTO;
	m->node = tko_r_str(&b);
	m->host = tko_r_str(&b);
	m->port = tko_r_u32(&b);
	m->user = tko_r_str(&b);
	m->database = tko_r_str(&b);
	m->backend_pid = tko_r_u32(&b);
	m->backend_key = tko_r_u32(&b);
	uint32_t lo = tko_r_u32(&b);
	m->signature = (uint64_t)tko_r_u32(&b) << 32 | lo;
	m->age_secs = tko_r_u32(&b);
	uint32_t flags = tko_r_u32(&b);
	m->served = flags & 1u;
	m->txn = flags & 2u;
	int rc = tko_r_pairs(&b, SV_MAX_PARAMS, &m->n_params, &m->pnames, &m->pvalues);
	if (rc == 0)
		rc = tko_r_gucs(&b, &m->n_applied, &m->applied);
	if (rc < 0) {
		sv_moved_free(m);
		return rc;
	}
	m->n_keys = tko_r_u32(&b);
	if (b.bad || m->n_keys > len)
		goto bad;
	m->keys = calloc(m->n_keys + 1, sizeof(*m->keys));
	if (!m->keys)
		goto oom;
	for (uint32_t i = 0; i < m->n_keys; i++) {
		uint32_t klo = tko_r_u32(&b);
		m->keys[i] = (uint64_t)tko_r_u32(&b) << 32 | klo;
	}
	if (b.bad || b.pos != len)
		goto bad;
	return 0;
bad:
	sv_moved_free(m);
	return -EPROTO;
oom:
	sv_moved_free(m);
	return -ENOMEM;
}

int tko_pack_client(const struct client *cl, uint8_t **out, size_t *len)
{
	struct tko_wbuf b = {0};
	int r = tko_pack_client_into(cl, &b);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* A CLIENT record into m (pointers into rec, which must outlive m). */
int tko_parse_client(const uint8_t *rec, size_t len, struct cl_moved *m)
{
	struct tko_rbuf b = {.p = rec, .len = len, .pos = 1};
	memset(m, 0, sizeof(*m));
	if (len < 1 || rec[0] != TKO_CLIENT || tko_r_u32(&b) != TKO_VERSION)
		return -EPROTO;
	m->user = tko_r_str(&b);
	m->database = tko_r_str(&b);
	m->peer = tko_r_str(&b);
	uint32_t flags = tko_r_u32(&b);
	m->is_unix = flags & 1u;
	m->stmt_mode = flags & 2u;
	m->have_client_key = flags & 4u;
	m->session = flags & 32u;
	uint32_t lo = tko_r_u32(&b);
	m->signature = (uint64_t)tko_r_u32(&b) << 32 | lo;
	m->cancel_pid = tko_r_u32(&b);
	m->cancel_key = tko_r_u32(&b);
	m->auth_method = (int)tko_r_u32(&b);
	uint32_t kn;
	const uint8_t *key = tko_r_blob(&b, &kn);
	if (key && kn == sizeof(m->client_key))
		memcpy(m->client_key, key, kn);
	else
		b.bad = true;
	m->password = tko_r_str(&b);
	m->server_password = tko_r_str(&b);
	if (!(flags & 8u))
		m->password = NULL;
	if (!(flags & 16u))
		m->server_password = NULL;
	m->jwt_tenant = tko_r_str(&b);
	int rc = tko_r_pairs(&b, PGW_MAX_PARAMS, &m->n_params, &m->pnames, &m->pvalues);
	if (rc == 0)
		rc = tko_r_gucs(&b, &m->n_want, &m->want);
	if (rc < 0) {
		cl_moved_free(m);
		return rc;
	}
	m->n_prep = tko_r_u32(&b);
	if (b.bad || m->n_prep > len)
		goto bad;
	m->prep = calloc(m->n_prep + 1, sizeof(*m->prep));
	if (!m->prep)
		goto oom;
	for (uint32_t i = 0; i < m->n_prep; i++) {
		m->prep[i].name = tko_r_str(&b);
		m->prep[i].body = tko_r_blob(&b, &m->prep[i].len);
	}
	if (m->session) {
		m->sv.node = tko_r_str(&b);
		m->sv.host = tko_r_str(&b);
		m->sv.port = tko_r_u32(&b);
		m->sv.backend_pid = tko_r_u32(&b);
		m->sv.backend_key = tko_r_u32(&b);
		m->sv.age_secs = tko_r_u32(&b);
		rc = tko_r_pairs(&b, SV_MAX_PARAMS, &m->sv.n_params, &m->sv.pnames, &m->sv.pvalues);
		if (rc < 0) {
			cl_moved_free(m);
			return rc;
		}
	}
	if (b.bad || b.pos != len)
		goto bad;
	return 0;
bad:
	cl_moved_free(m);
	return -EPROTO;
oom:
	cl_moved_free(m);
	return -ENOMEM;
}
