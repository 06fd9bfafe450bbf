/*
 * WASM plugins in the pipeline (issue 20, docs/plugins.md):
 *
 *   on_query_start     a PIPE_AT_MSG stage for Query and Parse, after the
 *                      rewrite rules: deny (PIPE_ERROR: conn/ answers and,
 *                      in an extended batch, drops up to its Sync), rewrite
 *                      (r->replace), route hints for the router
 *                      (pc->rflags), cache "skip";
 *   on_query_complete  PEV_QUERY_START/DONE subscriber: the statement's
 *                      fingerprint is remembered at the start, the hook
 *                      runs at the completion;
 *   on_error           PEV_ERROR subscriber: every ErrorResponse that
 *                      reached the client, the server's (at the failed
 *                      statement's ReadyForQuery) and the proxy's own
 *                      (refusals, timeouts, a plugin's denial, FATALs
 *                      that close the client), once each;
 *   on_connection      plugin_login (conn/login.c), at login.
 *
 * The live set is plugin/plugin_set.c's. The stage is in a pipeline when
 * the config has [[plugins]] or a set is live; with nothing live it costs
 * one atomic load per Query/Parse. The live set is the one the control
 * plane pushes (report/cplink.c); plugins_from_config applies a local
 * file's [[plugins]] only while a data plane attached to a helios-cp
 * serves that file before the control plane answers.
 */
#include "dataplane/pipeline/plugin_stage.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/pg/pgw.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/plugin/plugin_set.h"
#include "dataplane/policy/snap.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK(h) (1u << (h))

static const char *mode_name(enum pipe_mode m)
{
	return m == PIPE_MODE_SESSION ? "session"
	       : m == PIPE_MODE_STMT  ? "statement"
	                              : "transaction";
}

static void set_field(struct plugin_call *c, enum plugin_field f, const char *s, size_t len)
{
	c->field[f] = s;
	c->field_len[f] = s ? (uint32_t)len : 0;
}

static void set_str(struct plugin_call *c, enum plugin_field f, const char *s)
{
	set_field(c, f, s, s ? strlen(s) : 0);
}

/* who: user, database, address, application_name, tenant, mode */
static void fill_who(struct plugin_call *c, const struct req *r, const char *peer)
{
	set_str(c, PLUGIN_F_USER, r->user);
	set_str(c, PLUGIN_F_DATABASE, r->database);
	set_str(c, PLUGIN_F_ADDRESS, peer ? peer : r->peer);
	set_str(c, PLUGIN_F_APPLICATION_NAME,
	        r->setting ? r->setting(r->setting_arg, "application_name") : NULL);
	set_str(c, PLUGIN_F_TENANT, r->tenant_cfg ? r->tenant_cfg->id : NULL);
	set_str(c, PLUGIN_F_MODE, mode_name(r->mode));
}

/* ------------------------------------------------------------ on_connection */

bool plugin_login(const struct req *r, const char *peer, char *sqlstate, char *msg, size_t msglen)
{
	struct plugin_call c;
	struct plugin_outcome o;

	if (!(plugin_set_hooks() & HOOK(PLUGIN_ON_CONNECTION)) || r->replication)
		return false;
	memset(&c, 0, sizeof(c));
	c.hook = PLUGIN_ON_CONNECTION;
	fill_who(&c, r, peer);
	plugin_set_run(&c, &o);
	free(o.rewrite);
	if (o.decision != PLUGIN_DENY)
		return false;
	snprintf(sqlstate, 6, "%s", o.sqlstate[0] ? o.sqlstate : "28000");
	if (o.message[0])
		snprintf(msg, msglen, "%s", o.message);
	else
		snprintf(msg, msglen, "connection refused by plugin %s", o.by);
	log_info("client %llu %s user=%s db=%s: refused by plugin %s: %s",
	         (unsigned long long)r->client_id, peer ? peer : "?", r->user, r->database, o.by,
	         msg);
	return true;
}

/* ------------------------------------------------------------ on_query_start */

#define PL_SLOTS 4 /* as deep as conn/ follows statements */

/* Per client (slot->p, made at its first hook). */
struct pl_client {
	/* statements sent whose completion is to come: their fingerprints */
	uint64_t fp[PL_SLOTS];
	uint32_t head, n;
	uint64_t batch_fp;
	bool batch_set;
	/* on_query_start already run at PIPE_AT_REQUEST (before the cache) for
	 * the request pc->req_seq: its outcome, applied at PIPE_AT_MSG */
	bool memo;
	uint64_t memo_seq;
	struct plugin_outcome out;
};

static struct pl_client *pl_of(union pipe_slot *slot)
{
	if (!slot->p)
		slot->p = calloc(1, sizeof(struct pl_client));
	return slot->p;
}

static void memo_drop(struct pl_client *q)
{
	if (q && q->memo) {
		free(q->out.rewrite);
		q->out.rewrite = NULL;
		q->memo = false;
	}
}

/* A whole Query or Parse: its text (Parse: after the name). */
static const char *msg_sql(const struct req *r, uint32_t *name_len, const char **end)
{
	const uint8_t *body = r->msg + 5;
	uint32_t blen = r->msg_len - 5;
	const uint8_t *z = r->type == 'P' ? memchr(body, '\0', blen) : NULL;

	*name_len = 0;
	if (r->type == 'P') {
		if (!z)
			return NULL;
		*name_len = (uint32_t)(z - body) + 1;
	}
	const char *sql = (const char *)body + *name_len;
	*end = memchr(sql, '\0', blen - *name_len);
	return *end ? sql : NULL;
}

/* A Bind that starts a batch: the text of the prepared statement it names
 * (the client's Parse kept by conn/), NULL when not known. */
static const char *bind_sql(const struct req *r, size_t *len)
{
	const uint8_t *body = r->msg + 5, *z, *txt, *tz;
	uint32_t blen = r->msg_len - 5, n;

	if (!r->stmt_body || !(z = memchr(body, '\0', blen)))
		return NULL; /* the portal name */
	const char *name = (const char *)z + 1;
	if (!memchr(name, '\0', blen - (uint32_t)(z + 1 - body)))
		return NULL;
	if (!name[0] || !(txt = r->stmt_body(r->setting_arg, name, &n)) ||
	    !(tz = memchr(txt, '\0', n)))
		return NULL; /* the unnamed statement was judged at its Parse */
	*len = (size_t)(tz - txt);
	return (const char *)txt;
}

static enum pipe_verdict deny(struct req *r, const struct plugin_outcome *o, bool again)
{
	if (!again)
		log_info("client %llu user=%s db=%s: statement refused by plugin %s%s: %s",
		         (unsigned long long)r->client_id, r->user, r->database, o->by,
		         o->failed ? " (failure, on_failure = deny)" : "",
		         o->message[0] ? o->message : "(no message)");
	if (o->message[0])
		return req_error(r, o->sqlstate[0] ? o->sqlstate : "42501", NULL, "%s", o->message);
	return req_error(r, o->sqlstate[0] ? o->sqlstate : "42501", NULL,
	                 "statement refused by plugin %s", o->by);
}

/* The router's and the cache's hints for this request. */
static void set_hints(struct req *r, const struct plugin_outcome *o)
{
	const struct cfg *cf = r->snap->cfg;
	int i;

	if (o->route[0]) {
		r->pc->rflags &=
		    (uint8_t) ~(PIPE_RF_HINT_PRIMARY | PIPE_RF_HINT_REPLICA | PIPE_RF_HINT_NODE);
		if (!strcmp(o->route, "primary"))
			r->pc->rflags |= PIPE_RF_HINT_PRIMARY;
		else if (!strcmp(o->route, "replica") || !strcmp(o->route, "standby"))
			r->pc->rflags |= PIPE_RF_HINT_REPLICA;
		else if ((i = cfg_node_index(cf, o->route)) >= 0) {
			r->pc->rflags |= PIPE_RF_HINT_NODE;
			r->pc->hint_node = (int16_t)i;
		} else
			log_debug("client %llu: plugin route hint \"%s\" names no node: ignored",
			          (unsigned long long)r->client_id, o->route);
	}
	if (o->cache_skip || o->decision == PLUGIN_DENY)
		r->pc->rflags |= PIPE_RF_NO_CACHE;
}

/* PIPE_AT_REQUEST, ahead of the result cache: on_query_start for the
 * request at the head, so that its cache hint (and a denial) is known
 * before the cache answers; PIPE_AT_MSG applies the rest. */
static enum pipe_verdict plugin_req_run(struct req *r, union pipe_slot *slot)
{
	uint8_t t = r->type;
	if ((t != 'Q' && t != 'P' && t != 'B') || !r->whole || r->msg_len < 5 ||
	    !(plugin_set_hooks() & HOOK(PLUGIN_ON_QUERY_START)))
		return PIPE_CONTINUE;
	struct pl_client *q = pl_of(slot);
	if (!q)
		return PIPE_CONTINUE;
	if (q->memo && q->memo_seq == r->pc->req_seq) {
		set_hints(r, &q->out); /* woken from a wait: the same request */
		return PIPE_CONTINUE;
	}
	memo_drop(q);
	uint32_t name_len;
	size_t bl = 0;
	const char *end = NULL, *sql = t == 'B' ? bind_sql(r, &bl) : msg_sql(r, &name_len, &end);
	if (!sql)
		return PIPE_CONTINUE;
	if (t == 'B')
		end = sql + bl;
	struct plugin_call c;
	memset(&c, 0, sizeof(c));
	c.hook = PLUGIN_ON_QUERY_START;
	fill_who(&c, r, NULL);
	set_field(&c, PLUGIN_F_SQL, sql, (size_t)(end - sql));
	plugin_set_run(&c, &q->out);
	q->memo = true;
	q->memo_seq = r->pc->req_seq;
	set_hints(r, &q->out);
	return PIPE_CONTINUE;
}

static enum pipe_verdict plugin_stage_run(struct req *r, union pipe_slot *slot)
{
	uint8_t t = r->type;
	if ((t != 'Q' && t != 'P' && (t != 'B' || !r->starts)) || r->again ||
	    !(plugin_set_hooks() & HOOK(PLUGIN_ON_QUERY_START)))
		return PIPE_CONTINUE;
	struct plugin_call c;
	struct plugin_outcome o;
	uint32_t name_len = 0;
	const char *end = NULL, *sql = NULL;
	size_t bl = 0;

	if (t == 'B') {
		/* an execution of a named prepared statement: judged again (its
		 * hints are for this execution); a rewrite cannot apply to it */
		if (!r->whole || !(sql = bind_sql(r, &bl)))
			return PIPE_CONTINUE;
		end = sql + bl;
	} else if (r->whole && r->msg_len >= 5) {
		sql = msg_sql(r, &name_len, &end);
	}
	if (!sql) {
		/* a statement too large to be held whole (streamed): the plugins
		 * cannot see it; as a failure, each plugin's on_failure decides */
		plugin_set_unseen(PLUGIN_ON_QUERY_START, &o);
		if (o.decision == PLUGIN_DENY)
			return deny(r, &o, false);
		return PIPE_CONTINUE;
	}
	struct pl_client *q = slot->p;
	bool again = false;
	if (q && q->memo && r->starts && q->memo_seq == r->pc->req_seq) {
		o = q->out; /* run before the cache for this request (or refused once) */
		again = r->mode == PIPE_MODE_SESSION && o.decision == PLUGIN_DENY;
		q->out.rewrite = NULL;
		q->memo = false;
	} else {
		memo_drop(q);
		memset(&c, 0, sizeof(c));
		c.hook = PLUGIN_ON_QUERY_START;
		fill_who(&c, r, NULL);
		set_field(&c, PLUGIN_F_SQL, sql, (size_t)(end - sql));
		plugin_set_run(&c, &o);
	}
	if (o.decision == PLUGIN_DENY) {
		free(o.rewrite);
		o.rewrite = NULL;
		/* session pooling judges a refused message again once its server
		 * owes the client nothing: the same outcome, not a second call */
		if (r->mode == PIPE_MODE_SESSION && r->starts && (q || (q = pl_of(slot)))) {
			q->out = o;
			q->memo = true;
			q->memo_seq = r->pc->req_seq;
		}
		return deny(r, &o, again);
	}
	if (o.rewrite && t == 'B') {
		log_debug("client %llu: plugin rewrite of an execution of a prepared statement "
		          "ignored (it applies at its Parse)",
		          (unsigned long long)r->client_id);
		free(o.rewrite);
	} else if (o.rewrite) {
		r->replace =
		    req_with_sql(r, name_len, sql, end, o.rewrite, o.rewrite_len, &r->replace_len);
		if (!r->replace)
			log_info("client %llu: plugin rewrite not applied (a NUL byte, too long, "
			         "or out of memory)",
			         (unsigned long long)r->client_id);
		free(o.rewrite);
	}
	set_hints(r, &o);
	return PIPE_CONTINUE;
}

/* ------------------------------------------------- on_query_complete, on_error */

/* An error that reached the client: every plugin's on_error sees it, a
 * plugin's own denial included (the denying plugin too: it is an error the
 * client got, as a server's is); on_error cannot deny, so nothing it does
 * makes a second error. */
static void plugin_on_error(const struct pipe_event *ev, uint32_t hooks)
{
	struct plugin_call c;
	struct plugin_outcome o;

	if (!(hooks & HOOK(PLUGIN_ON_ERROR)))
		return;
	memset(&c, 0, sizeof(c));
	fill_who(&c, ev->r, NULL);
	c.hook = PLUGIN_ON_ERROR;
	set_str(&c, PLUGIN_F_SQLSTATE, ev->sqlstate ? ev->sqlstate : "XX000");
	set_str(&c, PLUGIN_F_MESSAGE, ev->message ? ev->message : "");
	plugin_set_run(&c, &o);
	free(o.rewrite);
}

static void push_fp(struct pl_client *q, uint64_t fp)
{
	if (q->n == PL_SLOTS) {
		q->head = (q->head + 1) % PL_SLOTS;
		q->n--;
	}
	q->fp[(q->head + q->n) % PL_SLOTS] = fp;
	q->n++;
}

static void plugin_event(const struct pipe_event *ev, union pipe_slot *slot)
{
	uint32_t hooks = plugin_set_hooks();
	struct pl_client *q = slot->p;
	const struct req *r = ev->r;

	if (ev->kind == PEV_ERROR) {
		plugin_on_error(ev, hooks);
		return;
	}
	if (!(hooks & HOOK(PLUGIN_ON_QUERY_COMPLETE)))
		return;
	if (!q && !(q = pl_of(slot)))
		return;
	if (ev->kind == PEV_QUERY_START) {
		uint64_t fp = r->sql ? sql_shape(r->sql, r->sql_len) : 0;
		if (r->type == 'Q') {
			push_fp(q, fp);
		} else if (r->type == 'P' || r->type == 'B') {
			if (!q->batch_set && r->sql) {
				q->batch_fp = fp;
				q->batch_set = true;
			}
		} else if (r->type == 'S') {
			push_fp(q, q->batch_set ? q->batch_fp : 0);
			q->batch_set = false;
		}
		return;
	}
	if (ev->kind != PEV_QUERY_DONE)
		return;
	uint64_t fp = 0;
	if (q->n) {
		fp = q->fp[q->head];
		q->head = (q->head + 1) % PL_SLOTS;
		q->n--;
	}
	struct plugin_call c;
	struct plugin_outcome o;
	char fps[17], dur[24], rows[24];
	memset(&c, 0, sizeof(c));
	fill_who(&c, r, NULL);
	c.hook = PLUGIN_ON_QUERY_COMPLETE;
	snprintf(fps, sizeof(fps), "%016" PRIx64, fp);
	snprintf(dur, sizeof(dur), "%" PRIu64, ev->duration_ns / 1000);
	snprintf(rows, sizeof(rows), "%" PRIu64, ev->rows);
	set_str(&c, PLUGIN_F_FINGERPRINT, fps);
	set_str(&c, PLUGIN_F_DURATION_US, dur);
	set_str(&c, PLUGIN_F_ROWS, rows);
	set_str(&c, PLUGIN_F_STATUS, ev->ok ? "ok" : "error");
	set_str(&c, PLUGIN_F_SQLSTATE, ev->ok ? NULL : ev->sqlstate);
	plugin_set_run(&c, &o);
	free(o.rewrite);
}

static void plugin_client_free(union pipe_slot *slot)
{
	memo_drop(slot->p);
	free(slot->p);
	slot->p = NULL;
}

/* ------------------------------------------------------------ the stage */

static bool plugin_enabled(const struct cfg *c)
{
	return c->n_plugins > 0 || plugin_set_count() > 0;
}

/* only where the cache could answer before PIPE_AT_MSG runs */
static bool plugin_req_enabled(const struct cfg *c)
{
	return c->cache.enabled && plugin_enabled(c);
}

static bool plugin_applies(const struct req *r)
{
	return !r->replication && r->mode != PIPE_MODE_INTERNAL;
}

const struct pipe_stage stage_plugin = {
    .name = "plugin",
    .point = PIPE_AT_MSG,
    .slot = PIPE_SLOT_PLUGIN,
    .order = 30, /* after the rewrite rules and the rate limit */
    .enabled = plugin_enabled,
    .applies = plugin_applies,
    .run = plugin_stage_run,
    .events = (1u << PEV_QUERY_START) | (1u << PEV_QUERY_DONE) | (1u << PEV_ERROR),
    .on_event = plugin_event,
    .client_free = plugin_client_free,
    .replaces = true,
};

/* the same slot: only stage_plugin frees it */
const struct pipe_stage stage_plugin_req = {
    .name = "plugin",
    .point = PIPE_AT_REQUEST,
    .slot = PIPE_SLOT_PLUGIN,
    .order = -10, /* before the cache (0) */
    .enabled = plugin_req_enabled,
    .applies = plugin_applies,
    .run = plugin_req_run,
};

/* ------------------------------------------- [[plugins]] of the data plane's config */

/* What was applied last: a digest over the entries and their files' bytes,
 * so a reload that changes neither does not touch the live set. */
static uint8_t applied_digest[32];
static bool applied_any;

static int read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	long n = 0;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    n > PLUGIN_FILE_MAX) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		         n > PLUGIN_FILE_MAX ? "larger than 64 MiB" : strerror(errno));
		fclose(f);
		return -1;
	}
	*out = malloc(n ? (size_t)n : 1);
	if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errlen, "cannot read %s", path);
		free(*out);
		*out = NULL;
		fclose(f);
		return -1;
	}
	fclose(f);
	*len = (size_t)n;
	return 0;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int ol = 32;

	EVP_Digest(p, n, out, &ol, EVP_sha256(), NULL);
}

int plugins_load_defs(const struct cfg *c, struct plugin_def **defs_out, uint8_t **bufs_out,
                      char *err, size_t errlen)
{
	struct plugin_def *defs = calloc(c->n_plugins ? c->n_plugins : 1, sizeof(*defs));
	uint8_t **bufs = (uint8_t **)bufs_out;

	*defs_out = defs;
	if (!defs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->n_plugins; i++) {
		const struct cfg_plugin *p = &c->plugins[i];
		struct plugin_def *d = &defs[i];
		char why[300];
		if (read_file(p->path, &bufs[i], &d->len, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "plugin %s: %s", p->name, why);
			return -1;
		}
		d->name = p->name;
		d->wasm = bufs[i];
		sha256(d->wasm, d->len, d->sha256);
		d->config_json = p->config_json;
		d->on_failure = p->deny_on_failure ? PLUGIN_FAIL_DENY : PLUGIN_FAIL_CONTINUE;
		d->lim.fuel = p->fuel;
		d->lim.timeout_ms = p->timeout_ms;
		d->lim.memory_mb = p->memory_mb;
		d->max_failures = p->max_failures;
	}
	return 0;
}

int plugins_from_config(const struct cfg *c, char *err, size_t errlen)
{
	uint8_t *bufs[CFG_PLUGINS_MAX] = {0};
	struct plugin_def *defs = NULL;
	uint8_t digest[32];
	EVP_MD_CTX *md;
	int rc = -1;

	if (c->n_plugins > CFG_PLUGINS_MAX) {
		snprintf(err, errlen, "more than %d [[plugins]]", CFG_PLUGINS_MAX);
		return -1;
	}
	if (!c->n_plugins && !applied_any)
		return 0; /* nothing ever loaded: nothing to do */
	if (plugins_load_defs(c, &defs, (uint8_t **)bufs, err, errlen) < 0)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (size_t i = 0; i < c->n_plugins; i++) {
		const struct plugin_def *d = &defs[i];
		char line[512];
		int n = snprintf(line, sizeof(line), "%s\n%d %u %" PRIu64 " %u %u\n", d->name,
		                 (int)d->on_failure, d->lim.timeout_ms, d->lim.fuel,
		                 d->lim.memory_mb, d->max_failures);
		EVP_DigestUpdate(md, line, (size_t)n);
		EVP_DigestUpdate(md, d->sha256, 32);
		EVP_DigestUpdate(md, d->config_json, strlen(d->config_json) + 1);
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
	if (applied_any && !memcmp(digest, applied_digest, 32)) {
		rc = 0;
		goto out;
	}
	if (plugin_set_apply(defs, c->n_plugins, plugin_set_generation() + 1, err, errlen) < 0)
		goto out;
	memcpy(applied_digest, digest, 32);
	applied_any = true;
	for (size_t i = 0; i < c->n_plugins; i++)
		log_info("plugin %s loaded from %s (%zu bytes, on_failure = %s)",
		         c->plugins[i].name, c->plugins[i].path, defs[i].len,
		         c->plugins[i].deny_on_failure ? "deny" : "continue");
	if (!c->n_plugins)
		log_info("plugins: none loaded any more");
	rc = 0;
out:
	for (size_t i = 0; i < c->n_plugins && i < CFG_PLUGINS_MAX; i++)
		free(bufs[i]);
	free(defs);
	return rc;
}

void plugin_stage_install(void)
{
	/* the stage's enabled() answer changes with the set's emptiness */
	plugin_set_notify(pipe_forget_all);
}

int plugins_check_config(const struct cfg *c, FILE *out)
{
	int bad = 0;

	for (size_t i = 0; i < c->n_plugins; i++) {
		const struct cfg_plugin *p = &c->plugins[i];
		uint8_t *buf = NULL;
		size_t len = 0;
		char why[300];
		struct plugin_module *m = NULL;
		struct plugin_instance *in = NULL;
		struct plugin_limits lim = {p->fuel, p->timeout_ms, p->memory_mb};

		if (read_file(p->path, &buf, &len, why, sizeof(why)) == 0 &&
		    (m = plugin_module_new(buf, len, why, sizeof(why))) &&
		    (in = plugin_instance_new(m, p->config_json, &lim, why, sizeof(why)))) {
			fprintf(
			    out, "%s: plugin %s: %s loads (%zu bytes; hooks:%s%s%s%s)\n",
			    c->path[0] ? c->path : "config", p->name, p->path, len,
			    plugin_module_has(m, PLUGIN_ON_CONNECTION) ? " on_connection" : "",
			    plugin_module_has(m, PLUGIN_ON_QUERY_START) ? " on_query_start" : "",
			    plugin_module_has(m, PLUGIN_ON_QUERY_COMPLETE) ? " on_query_complete"
			                                                   : "",
			    plugin_module_has(m, PLUGIN_ON_ERROR) ? " on_error" : "");
		} else {
			fprintf(out, "%s: plugin %s (%s) does not load: %s\n",
			        c->path[0] ? c->path : "config", p->name, p->path, why);
			bad++;
		}
		plugin_instance_free(in);
		plugin_module_free(m);
		free(buf);
	}
	return bad;
}
