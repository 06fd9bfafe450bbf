/*
 * The stages a pipeline is built from (built-in, in this order, then the
 * registered ones), and the pipelines of the live config snapshots: one
 * per snapshot, shared by its clients, found under a lock at login and
 * freed when its last client leaves (never touched per message).
 */
#include "dataplane/pipeline/pipeline.h"

#include "dataplane/policy/snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static const struct pipe_stage *stages[PIPE_MAX_STAGES * PIPE_POINTS] = {
    &stage_rewrite,   &stage_rate,   &stage_route,      &stage_cache,
    &stage_analytics, &stage_plugin, &stage_plugin_req,
};
static size_t n_stages = 7;

int pipe_register(const struct pipe_stage *st)
{
	if (n_stages >= sizeof(stages) / sizeof(stages[0]))
		return -ENOSPC;
	stages[n_stages++] = st;
	return 0;
}

/* pipelines of live snapshots */
#define PIPE_LIVE_MAX 64
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pipeline *live[PIPE_LIVE_MAX];

struct pipeline *pipe_get(struct snap *s)
{
	if (!s)
		return NULL;
	struct pipeline *p = NULL;
	pthread_mutex_lock(&reg_mu);
	int free_at = -1;
	for (int i = 0; i < PIPE_LIVE_MAX; i++) {
		if (live[i] && live[i]->snap == s) {
			p = live[i];
			p->refs++;
			break;
		}
		if (!live[i] && free_at < 0)
			free_at = i;
	}
	if (!p && (p = pipe_build(s->cfg, stages, n_stages))) {
		snap_ref(s); /* keeps s (and the key) alive while p is */
		p->snap = s;
		if (free_at >= 0)
			live[free_at] = p;
		/* registry full: p is private to this client (freed at its put) */
	}
	pthread_mutex_unlock(&reg_mu);
	return p;
}

static void (*forget_hook)(void); /* set once at start-up */

void pipe_on_forget(void (*fn)(void))
{
	forget_hook = fn;
}

void pipe_forget_all(void)
{
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < PIPE_LIVE_MAX; i++)
		live[i] = NULL; /* each is freed by its last client's pipe_put */
	pthread_mutex_unlock(&reg_mu);
	if (forget_hook)
		forget_hook(); /* the clients already in: conn/ moves them over */
}

void pipe_put(struct pipeline *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&reg_mu);
	bool last = --p->refs == 0;
	if (last)
		for (int i = 0; i < PIPE_LIVE_MAX; i++)
			if (live[i] == p)
				live[i] = NULL;
	pthread_mutex_unlock(&reg_mu);
	if (last) {
		snap_unref((struct snap *)p->snap);
		pipe_free(p);
	}
}
