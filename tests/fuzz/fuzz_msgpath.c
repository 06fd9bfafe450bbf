/*
 * libFuzzer target: the post-login message path of transaction pooling, in
 * its pure pieces. The state machine in dataplane/conn/txn.c needs a worker,
 * sockets and a pool, so it is not driven here; what it is built on is, in
 * the order the relay uses it:
 *  - an optional leading startup packet (first input byte, bit 0x80):
 *    pgw_parse_startup, then guc_from_startup for the client's settings;
 *  - the client's bytes cut into chunks (seeded by the first byte) through
 *    pgw_scan, as client.c receives them: the headers must be those
 *    pgw_next_msg finds walking the whole stream;
 *  - each Query as txn_track.c treats it: sqlc_maybe_interesting, then
 *    sqlc_classify, with the settings effects applied to the client's wanted
 *    set and the server's applied one (SET kept as its text range, RESET back
 *    to the startup value, RESET ALL and DISCARD ALL), and hints_scan;
 *  - Parse / Bind / Describe / Close: client statement names through
 *    prep_client_*, server statement keys through prep_server_* with room
 *    for 4 (so eviction runs);
 *  - at each Query and Sync the client is "bound" to the server as txn.c
 *    does: the SQL from guc_diff_sql(want, applied) must hold settings
 *    statements only, one per difference, with nothing else smuggled in by a
 *    SET's text range or a startup value, and afterwards nothing differs.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/conn/guc.h"
#include "dataplane/conn/prep.h"
#include "dataplane/pg/pgw.h"
#include "dataplane/pipeline/engine/hints.h"
#include "dataplane/sql/sqlc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVS  1024
#define MAX_BODY (1u << 20)

struct state {
	struct guc_set startup, want, applied;
	struct prep_client pc;
	struct prep_server ps;
	struct sqlc_result res, diff;
};

static size_t next_chunk(uint32_t *x, size_t max)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return 1 + *x % max;
}

/* Every byte of s is plain printable ASCII (then the server's parser, and
 * libpg_query here, read the diff SQL as written). */
static bool plain(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool set_plain(const struct guc_set *g)
{
	for (int i = 0; i < g->n; i++)
		if (!plain(g->e[i].name) || !plain(g->e[i].value))
			return false;
	return true;
}

/* How many statements guc_diff_sql(want, have) writes. */
static int diff_count(const struct guc_set *want, const struct guc_set *have)
{
	int n = 0;
	for (int i = 0; i < want->n; i++) {
		const struct guc_ent *h = guc_get(have, want->e[i].name);
		if (!h || h->is_stmt != want->e[i].is_stmt || strcmp(h->value, want->e[i].value))
			n++;
	}
	for (int i = 0; i < have->n; i++)
		if (!guc_get(want, have->e[i].name))
			n++;
	return n;
}

/* What txn.c does when the client gets the server: the catch-up SQL, then
 * the server has what the client wants. */
static void bind(struct state *s)
{
	if (guc_equal(&s->want, &s->applied)) {
		char *none = guc_diff_sql(&s->want, &s->applied);
		if (!none || none[0])
			abort();
		free(none);
		return;
	}
	char *sql = guc_diff_sql(&s->want, &s->applied);
	if (!sql)
		abort();
	int want_n = diff_count(&s->want, &s->applied);
	if (!sql[0] || !want_n)
		abort(); /* not equal, yet nothing to send */
	int rc = sqlc_classify(sql, &s->diff);
	if (rc == 0 && !s->diff.parse_error && !s->diff.more_stmts) {
		if (s->diff.n != want_n)
			abort(); /* a SET's text hid or added a statement */
		for (int i = 0; i < s->diff.n; i++) {
			enum sqlc_kind k = s->diff.stmts[i].kind;
			if (k != SQLC_SET && k != SQLC_SET_DEFAULT && k != SQLC_RESET &&
			    !(k == SQLC_OTHER && s->diff.stmts[i].flags == SQLC_F_SET_CONFIG))
				abort(); /* something other than a setting */
		}
	} else if (rc == 0 && s->diff.parse_error && set_plain(&s->want) &&
	           set_plain(&s->applied)) {
		abort(); /* plain text that does not parse: the server would refuse it too */
	} else if (rc != 0 && rc != -E2BIG) {
		abort();
	}
	free(sql);
	if (guc_copy(&s->applied, &s->want) == 0 && !guc_equal(&s->want, &s->applied))
		abort();
}

/* txn_track.c's settings effects of one Query. */
static void query(struct state *s, const uint8_t *body, uint32_t len)
{
	const char *sql = (const char *)body;
	const char *nul = memchr(sql, 0, len);
	if (!nul)
		return; /* the relay does not track it; the server refuses it */
	struct hints h;
	hints_scan(sql, (size_t)(nul - sql), &h);
	if (!sqlc_maybe_interesting(sql, len))
		return;
	int rc = sqlc_classify(sql, &s->res);
	if (rc != 0 || s->res.parse_error)
		return;
	for (int i = 0; i < s->res.n; i++) {
		const struct sqlc_stmt *st = &s->res.stmts[i];
		if (st->loc + (size_t)st->len > (size_t)(nul - sql))
			abort();
		switch (st->kind) {
		case SQLC_SET: {
			if (st->name_incomplete || !strcmp(st->name, "standard_conforming_strings"))
				break; /* pinned, not tracked */
			char *text = strndup(sql + st->loc, st->len);
			if (!text)
				abort();
			guc_put(&s->want, st->name, text, true);
			guc_put(&s->applied, st->name, text, true);
			free(text);
			break;
		}
		case SQLC_SET_DEFAULT:
		case SQLC_RESET: {
			const struct guc_ent *s0 = guc_get(&s->startup, st->name);
			if (s0)
				guc_put(&s->want, st->name, s0->value, false);
			else
				guc_del(&s->want, st->name);
			guc_del(&s->applied, st->name);
			break;
		}
		case SQLC_DISCARD_ALL:
			prep_client_clear(&s->pc);
			prep_server_clear(&s->ps);
			/* fall through */
		case SQLC_RESET_ALL:
			guc_copy(&s->want, &s->startup);
			guc_free(&s->applied);
			break;
		default:
			break;
		}
	}
}

static void parse_msg(struct state *s, const uint8_t *body, uint32_t len)
{
	uint32_t off = 0;
	const char *name = pgw_get_str(body, len, &off);
	uint32_t rest = off;
	const char *text = name ? pgw_get_str(body, len, &off) : NULL;
	if (!text)
		return; /* malformed: the server says so */
	uint64_t key = prep_key(body + rest, len - rest);
	if (name[0]) {
		struct prep_stmt *st = prep_client_put(&s->pc, name, body + rest, len - rest);
		if (!st)
			return;
		if (st->key != key || prep_client_get(&s->pc, name) != st ||
		    st->body_len != len - rest || memcmp(st->body, body + rest, st->body_len))
			abort();
		char sname[PREP_SERVER_NAME_LEN];
		prep_server_name(key, sname);
		if (strcmp(sname, st->sname))
			abort();
	}
	if (!prep_server_has(&s->ps, key)) {
		uint64_t evicted = 0;
		bool ev = prep_server_add(&s->ps, key, &evicted);
		if (!prep_server_has(&s->ps, key) ||
		    (ev && evicted != key && prep_server_has(&s->ps, evicted)))
			abort();
	}
}

/* Bind, Describe and Close name a statement (Bind: after the portal). */
static void stmt_ref(struct state *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	uint32_t off = 0;
	const char *name;
	if (type == 'B') {
		if (!pgw_get_str(body, len, &off))
			return;
		name = pgw_get_str(body, len, &off);
	} else {
		if (len < 2 || body[0] != 'S')
			return; /* a portal */
		off = 1;
		name = pgw_get_str(body, len, &off);
	}
	if (!name || !name[0])
		return;
	struct prep_stmt *st = prep_client_get(&s->pc, name);
	if (type == 'C') {
		prep_client_del(&s->pc, name);
		if (prep_client_get(&s->pc, name))
			abort();
	} else if (st) {
		if (strcmp(st->name, name) || st->key != prep_key(st->body, st->body_len))
			abort();
		prep_server_has(&s->ps, st->key);
	}
}

/* Headers of stream[0..n) in chunks; must equal the whole-stream walk. */
static int scan_headers(const uint8_t *stream, size_t n, uint32_t seed, struct pgw_msg *msgs)
{
	struct pgw_scan sc;
	size_t start = 0;
	int k = 0;
	uint8_t *block = malloc(n ? n : 1);
	if (!block)
		abort();
	memset(&sc, 0, sizeof(sc));
	size_t walk = 0; /* pgw_next_msg's position */
	while (start < n && k < MAX_EVS) {
		size_t clen = next_chunk(&seed, 64);
		if (clen > n - start)
			clen = n - start;
		uint8_t *chunk = block + n - clen; /* ends where the block does */
		memcpy(chunk, stream + start, clen);
		size_t pos = 0;
		for (;;) {
			enum pgw_scan_ev ev = pgw_scan(&sc, chunk, clen, &pos);
			if (ev == PGW_SCAN_END)
				break;
			struct pgw_msg m;
			enum pgw_status st =
			    pgw_next_msg(stream + walk, n - walk, PGW_MAX_MESSAGE, &m);
			if (ev == PGW_SCAN_BAD) {
				if (st != PGW_BAD)
					abort();
				free(block);
				return k;
			}
			/* the header is complete, so the walk is at it too (maybe
			 * without all of its body yet) */
			if (st == PGW_BAD || start + pos != walk + 5 || stream[walk] != sc.type ||
			    pgw_get_u32(stream + walk + 1) - 4 != sc.len)
				abort();
			if (st != PGW_OK || k == MAX_EVS) {
				free(block);
				return k; /* the rest of the body is not in the input */
			}
			if (m.type != sc.type || m.len != sc.len)
				abort();
			msgs[k++] = m;
			walk += m.total;
		}
		start += clen;
	}
	free(block);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pgw_msg msgs[MAX_EVS];
	struct state *s = calloc(1, sizeof(*s));
	if (!s || size < 1)
		goto out;
	uint8_t flags = data[0];
	data++, size--;
	guc_init(&s->startup);
	guc_init(&s->want);
	guc_init(&s->applied);
	prep_server_init(&s->ps, 4);

	if ((flags & 0x80) && size >= 8) {
		struct pgw_startup su;
		const char *why = NULL;
		if (pgw_parse_startup(data, size, &su, &why) == PGW_OK) {
			if (su.code == PGW_PROTO_V3) {
				const char *names[PGW_MAX_PARAMS], *values[PGW_MAX_PARAMS];
				for (int i = 0; i < su.n_params; i++) {
					names[i] = su.params[i].name;
					values[i] = su.params[i].value;
				}
				guc_from_startup(&s->startup, names, values, su.n_params);
				if (guc_copy(&s->want, &s->startup) == 0 &&
				    !guc_equal(&s->want, &s->startup))
					abort();
			}
			data += su.total;
			size -= su.total;
		}
	}

	int n = scan_headers(data, size, 0x9e3779b9u ^ flags, msgs);
	for (int i = 0; i < n; i++) {
		const struct pgw_msg *m = &msgs[i];
		if (m->len > MAX_BODY)
			continue;
		switch (m->type) {
		case 'Q':
			query(s, m->body, m->len);
			bind(s);
			break;
		case 'P':
			parse_msg(s, m->body, m->len);
			break;
		case 'B':
		case 'D':
		case 'C':
			stmt_ref(s, m->type, m->body, m->len);
			break;
		case 'S':
			bind(s);
			break;
		default:
			break;
		}
	}
	/* a fresh server gets the whole difference */
	guc_free(&s->applied);
	bind(s);
out:
	if (s) {
		guc_free(&s->startup);
		guc_free(&s->want);
		guc_free(&s->applied);
		prep_client_free(&s->pc);
		prep_server_free(&s->ps);
		free(s);
	}
	return 0;
}
