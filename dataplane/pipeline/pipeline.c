/*
 * The pipeline runner; see pipeline.h. Builds a stage list from a config,
 * runs the stages of one point, publishes events, keeps the per-client
 * facts every stage shares (request boundaries). Names no stage: the
 * built-in ones are listed in registry.c, so a test links the runner
 * with fake stages only.
 */
#include "dataplane/pipeline/pipeline.h"

#include "dataplane/pg/pgw.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(const struct pipe_stage **v, uint8_t *n, const struct pipe_stage *st)
{
	/* insertion by order; equal orders keep the given sequence */
	uint8_t i = *n;
	while (i > 0 && v[i - 1]->order > st->order) {
		v[i] = v[i - 1];
		i--;
	}
	v[i] = st;
	(*n)++;
}

struct pipeline *pipe_build(const struct cfg *c, const struct pipe_stage *const *stages, size_t n)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->refs = 1;
	for (size_t i = 0; i < n; i++) {
		const struct pipe_stage *st = stages[i];
		if (!st || (st->enabled && !st->enabled(c)))
			continue; /* a disabled feature has no stage: it costs nothing */
		if (st->point < 0 || st->point >= PIPE_POINTS || st->slot < 0 ||
		    st->slot >= PIPE_SLOTS || p->n_all >= PIPE_MAX_STAGES * PIPE_POINTS)
			continue;
		if (st->run) {
			if (p->n[st->point] >= PIPE_MAX_STAGES)
				continue;
			add(p->at[st->point], &p->n[st->point], st);
		}
		for (int e = 0; e < PEV_COUNT; e++)
			if ((st->events & (1u << e)) && st->on_event &&
			    p->n_sub[e] < PIPE_MAX_STAGES)
				add(p->sub[e], &p->n_sub[e], st);
		p->all[p->n_all++] = st;
		if (st->replaces)
			p->replaces = true;
	}
	return p;
}

void pipe_free(struct pipeline *p)
{
	free(p);
}

enum pipe_verdict pipe_run(const struct pipeline *p, enum pipe_point at, struct req *r)
{
	r->decided_by = NULL;
	if (!p)
		return PIPE_CONTINUE;
	for (uint8_t i = 0; i < p->n[at]; i++) {
		const struct pipe_stage *st = p->at[at][i];
		if (r->pc->skip & (1u << st->slot))
			continue;
		enum pipe_verdict v = st->run(r, &r->pc->slot[st->slot]);
		if (v != PIPE_CONTINUE) {
			r->decided_by = st->name;
			return v;
		}
	}
	return PIPE_CONTINUE;
}

void pipe_emit(const struct pipeline *p, struct pipe_client *pc, const struct pipe_event *ev)
{
	if (!p || ev->kind >= PEV_COUNT)
		return;
	for (uint8_t i = 0; i < p->n_sub[ev->kind]; i++) {
		const struct pipe_stage *st = p->sub[ev->kind][i];
		if (pc->skip & (1u << st->slot))
			continue;
		st->on_event(ev, &pc->slot[st->slot]);
	}
}

void pipe_client_init(struct pipe_client *pc)
{
	memset(pc, 0, sizeof(*pc));
}

void pipe_client_start(const struct pipeline *p, struct pipe_client *pc, const struct req *r)
{
	pc->skip = 0;
	pc->buffered = false;
	memset(pc->active, 0, sizeof(pc->active));
	for (uint8_t i = 0; p && i < p->n_all; i++) {
		const struct pipe_stage *st = p->all[i];
		if (st->applies && !st->applies(r)) {
			pc->skip |= 1u << st->slot;
			continue;
		}
		if (st->replaces)
			pc->buffered = true;
		if (st->run)
			pc->active[st->point] = true;
	}
}

void pipe_client_free(const struct pipeline *p, struct pipe_client *pc)
{
	for (uint8_t i = 0; p && i < p->n_all; i++)
		if (p->all[i]->client_free)
			p->all[i]->client_free(&pc->slot[p->all[i]->slot]);
	memset(pc->slot, 0, sizeof(pc->slot));
}

static bool has_slot(const struct pipeline *p, int slot)
{
	for (uint8_t i = 0; p && i < p->n_all; i++)
		if (p->all[i]->slot == slot)
			return true;
	return false;
}

void pipe_client_swap(const struct pipeline *old, const struct pipeline *p, struct pipe_client *pc,
                      const struct req *r)
{
	for (uint8_t i = 0; old && i < old->n_all; i++) {
		const struct pipe_stage *st = old->all[i];
		if (has_slot(p, st->slot))
			continue;
		if (st->client_free)
			st->client_free(&pc->slot[st->slot]);
		memset(&pc->slot[st->slot], 0, sizeof(pc->slot[st->slot]));
	}
	pipe_client_start(p, pc, r);
}

void pipe_msg_passed(struct pipe_client *pc, uint8_t t)
{
	if (t == 'Q' || t == 'F' || t == 'S') {
		pc->req_seq++;
		pc->in_batch = false;
		pc->rflags = 0;
	} else if (t == 'P' || t == 'B' || t == 'D' || t == 'E') {
		pc->in_batch = true;
	}
}

void pipe_request_done(struct pipe_client *pc)
{
	pc->req_seq++;
	pc->in_batch = false;
	pc->rflags = 0;
}

enum pipe_verdict req_error(struct req *r, const char *sqlstate, const char *hint, const char *fmt,
                            ...)
{
	snprintf(r->err.sqlstate, sizeof(r->err.sqlstate), "%s", sqlstate);
	r->err.hint = hint;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
	va_end(ap);
	return PIPE_ERROR;
}

uint8_t *req_with_sql(const struct req *r, uint32_t name_len, const char *old_sql,
                      const char *old_end, const char *sql, size_t sl, uint32_t *len)
{
	const uint8_t *body = r->msg + 5;
	uint32_t blen = r->msg_len - 5;
	uint32_t rest = blen - name_len - (uint32_t)(old_end - old_sql);
	size_t nb = (size_t)name_len + sl + rest;
	uint8_t *m;

	if (memchr(sql, '\0', sl) || nb + 5 > PGW_MAX_MESSAGE || !(m = malloc(nb + 5)))
		return NULL;
	uint32_t ml = (uint32_t)nb + 4;
	m[0] = r->type;
	m[1] = (uint8_t)(ml >> 24);
	m[2] = (uint8_t)(ml >> 16);
	m[3] = (uint8_t)(ml >> 8);
	m[4] = (uint8_t)ml;
	memcpy(m + 5, body, name_len);
	memcpy(m + 5 + name_len, sql, sl);
	memcpy(m + 5 + name_len + sl, old_end, rest);
	*len = (uint32_t)nb + 5;
	return m;
}

enum pipe_verdict req_park_until(struct req *r, uint64_t wake_ns)
{
	r->park.kind = PIPE_WAKE_AT;
	r->park.wake_ns = wake_ns;
	r->park.token = NULL;
	return PIPE_PARK;
}
