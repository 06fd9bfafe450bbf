/*
 * What the admin console does to connections (PgBouncer's KILL,
 * KILL_CLIENT, DISABLE/ENABLE, RECONNECT): called from the console thread,
 * carried out on the workers that own the sockets, through their
 * mailboxes. See conn.h.
 */
#include "dataplane/conn/conn.h"

#include "common/log.h"
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/pool/pool.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- closing clients ---- */

struct kill_post {
	struct worker_msg m;
	uint64_t cl_id;   /* one client, or 0: every client of db */
	char db[64];      /* "" with cl_id 0: every client */
	char reason[160]; /* what the client and the log read */
};

/* Admin console sessions are never closed by KILL (PgBouncer: "excluding
 * the admin database"), only by KILL_CLIENT naming one. */
static void kill_run(struct worker *w, struct worker_msg *m)
{
	struct kill_post *p = (struct kill_post *)m;

	if (p->cl_id) {
		struct client *cl = cw_find_client(w, p->cl_id);
		if (cl)
			cl_close(cl, "57P01", p->reason);
	} else {
		for (struct client *cl = cw_of(w)->clients, *next; cl; cl = next) {
			next = cl->all_next;
			if (!cl->admin && cl->logged_in &&
			    (!p->db[0] || strcmp(cl->database, p->db) == 0))
				cl_close(cl, "57P01", p->reason);
		}
	}
	free(p);
}

static int kill_post(int widx, uint64_t cl_id, const char *db, const char *reason)
{
	struct kill_post *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->cl_id = cl_id;
	snprintf(p->db, sizeof(p->db), "%s", db ? db : "");
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	p->m.fn = kill_run;
	if (worker_post(&g_workers[widx], &p->m) < 0) {
		free(p);
		return -ESHUTDOWN;
	}
	return 0;
}

int conn_kill_client(int widx, uint64_t cl_id, const char *reason)
{
	if (widx < 0 || widx >= workers_started() || !cl_id)
		return -EINVAL;
	return kill_post(widx, cl_id, NULL, reason);
}

int conn_kill_database(const char *db, const char *reason)
{
	int n = workers_started(), rc = 0;

	for (int i = 0; i < n; i++) {
		int r = kill_post(i, 0, db, reason);
		if (r < 0 && r != -ESHUTDOWN)
			rc = r;
	}
	return rc;
}

/* ---- DISABLE / ENABLE ---- */

#define DISABLED_MAX 64

static pthread_mutex_t disabled_mu = PTHREAD_MUTEX_INITIALIZER;
static char disabled[DISABLED_MAX][64];
static int n_disabled; /* atomic reads: logins skip the lock while it is 0 */

int conn_disable_database(const char *db, bool disable)
{
	int rc = 0, i;

	if (!db || !db[0] || strlen(db) >= sizeof(disabled[0]))
		return -EINVAL;
	pthread_mutex_lock(&disabled_mu);
	for (i = 0; i < n_disabled && strcmp(disabled[i], db) != 0; i++)
		;
	if (disable && i == n_disabled) {
		if (n_disabled == DISABLED_MAX)
			rc = -ENOSPC;
		else {
			snprintf(disabled[i], sizeof(disabled[i]), "%s", db);
			__atomic_store_n(&n_disabled, n_disabled + 1, __ATOMIC_RELEASE);
		}
	} else if (!disable && i < n_disabled) {
		memcpy(disabled[i], disabled[n_disabled - 1], sizeof(disabled[i]));
		__atomic_store_n(&n_disabled, n_disabled - 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&disabled_mu);
	return rc;
}

bool conn_database_disabled(const char *db)
{
	bool found = false;

	if (!__atomic_load_n(&n_disabled, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&disabled_mu);
	for (int i = 0; i < n_disabled && !found; i++)
		found = strcmp(disabled[i], db) == 0;
	pthread_mutex_unlock(&disabled_mu);
	return found;
}

size_t conn_disabled_databases(char (*names)[64], size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&disabled_mu);
	for (int i = 0; i < n_disabled && n < cap; i++)
		memcpy(names[n++], disabled[i], sizeof(disabled[i]));
	pthread_mutex_unlock(&disabled_mu);
	return n;
}

/* ---- RECONNECT ---- */

static bool pool_matches(struct pool *p, const char *db)
{
	return !db || !db[0] || strcmp(pool_database(p), db) == 0;
}

struct reconnect_post {
	struct worker_msg m;
	char db[64];
};

/* Idle servers live in the pools, not on a worker: worker 0 closes them
 * as it does for a drain. Busy ones go when released (sv_close_needed). */
static void reconnect_run(struct worker *w, struct worker_msg *m)
{
	struct reconnect_post *p = (struct reconnect_post *)m;

	for (struct pool *pl = pool_first(); pl; pl = pool_next_of(pl))
		if (pool_matches(pl, p->db))
			sv_pool_close_idle(w, pl);
	free(p);
}

int conn_reconnect(const char *db)
{
	int64_t now = (int64_t)conn_now_ns();
	int marked = 0;

	for (struct pool *pl = pool_first(); pl; pl = pool_next_of(pl))
		if (pool_matches(pl, db)) {
			/* +1: a server created in this very nanosecond is old too */
			pool_retire(pl, now + 1);
			marked++;
		}
	if (!marked || workers_started() < 1)
		return marked;
	struct reconnect_post *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->db, sizeof(p->db), "%s", db ? db : "");
	p->m.fn = reconnect_run;
	if (worker_post(&g_workers[0], &p->m) < 0) {
		free(p);
		return -ESHUTDOWN;
	}
	return marked;
}
