/*
 * Runtime controls the control plane sets (pause, drain, routing table);
 * see control.h. Readers on the hot path only look at an atomic flag; the
 * lists themselves sit behind one mutex. May call: policy/ (breaker,
 * snap). Who must look again after a change registers ctl_on_change.
 */
#include "dataplane/policy/control.h"

#include "dataplane/policy/breaker.h"
#include "dataplane/policy/snap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char **paused, **drained;
static size_t n_paused, n_drained;
static int any_paused, any_drained; /* atomic: hot-path shortcut */
static Helios__NodeStatus **nodes;
static size_t n_nodes;
/* readiness (mu): a table came; since when (monotonic ms) the tables have
 * named no healthy primary, 0 = one is known; the primary's name */
static bool have_table;
static uint64_t primary_lost_at;
static char primary_name[64];

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **copy_list(char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));
	for (size_t i = 0; out && i < n; i++)
		out[i] = strdup(v[i]);
	return out;
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

static void (*on_change)(void); /* atomic: ctl_on_change */

void ctl_on_change(void (*fn)(void))
{
	__atomic_store_n(&on_change, fn, __ATOMIC_RELEASE);
}

static void wake_workers(void)
{
	void (*fn)(void) = __atomic_load_n(&on_change, __ATOMIC_ACQUIRE);
	if (fn)
		fn();
}

/* Replaces one of the lists (and its hot-path flag); wakes the workers
 * when it changed so held clients look again. */
static void set_list(char ***list, size_t *n_list, int *any, char **v, size_t n)
{
	pthread_mutex_lock(&mu);
	bool same = same_list(*list, *n_list, v, n);
	if (!same) {
		free_list(*list, *n_list);
		*list = copy_list(v, n);
		*n_list = *list ? n : 0;
		__atomic_store_n(any, *n_list > 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&mu);
	if (!same)
		wake_workers();
}

void ctl_set_paused(char **dbs, size_t n)
{
	set_list(&paused, &n_paused, &any_paused, dbs, n);
}

void ctl_set_drained(char **names, size_t n)
{
	set_list(&drained, &n_drained, &any_drained, names, n);
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], "*") || !strcmp(v[i], s))
			return true;
	return false;
}

bool ctl_is_paused(const char *database)
{
	if (!__atomic_load_n(&any_paused, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&mu);
	bool r = in_list(paused, n_paused, database);
	pthread_mutex_unlock(&mu);
	return r;
}

bool ctl_any_drained(void)
{
	return __atomic_load_n(&any_drained, __ATOMIC_ACQUIRE);
}

bool ctl_node_drained(const char *node)
{
	if (!ctl_any_drained())
		return false;
	pthread_mutex_lock(&mu);
	bool r = false;
	for (size_t i = 0; i < n_drained; i++)
		if (!strcmp(drained[i], node))
			r = true;
	pthread_mutex_unlock(&mu);
	return r;
}

char **ctl_paused_list(size_t *n)
{
	pthread_mutex_lock(&mu);
	char **v = copy_list(paused, n_paused);
	*n = v ? n_paused : 0;
	pthread_mutex_unlock(&mu);
	return v;
}

static Helios__NodeStatus *node_copy(const Helios__NodeStatus *s)
{
	Helios__NodeStatus *d = malloc(sizeof(*d));
	if (!d)
		return NULL;
	helios__node_status__init(d);
	d->name = strdup(s->name ? s->name : "");
	d->host = strdup(s->host ? s->host : "");
	d->port = s->port;
	d->role = strdup(s->role ? s->role : "");
	d->healthy = s->healthy;
	d->lag_ms = s->lag_ms;
	d->draining = s->draining;
	d->error = strdup(s->error ? s->error : "");
	d->checked_at = s->checked_at;
	d->breaker = strdup(s->breaker && s->breaker[0] ? s->breaker : "closed");
	return d;
}

void ctl_nodes_free(Helios__NodeStatus **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

static uint64_t routing_version;

uint64_t ctl_routing_version(void)
{
	return __atomic_load_n(&routing_version, __ATOMIC_ACQUIRE);
}

size_t ctl_routing_copy(struct route_node *out, size_t max)
{
	pthread_mutex_lock(&mu);
	size_t k = 0;
	for (size_t i = 0; i < n_nodes && k < max; i++) {
		const Helios__NodeStatus *s = nodes[i];
		if (!s)
			continue;
		struct route_node *r = &out[k++];
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", s->name);
		r->known = true;
		r->primary = !strcmp(s->role, "primary");
		r->healthy = s->healthy;
		r->draining = s->draining || in_list(drained, n_drained, s->name);
		r->lag_ms = s->lag_ms;
	}
	pthread_mutex_unlock(&mu);
	return k;
}

/* Whether a new table changes where clients may go (not just lag figures). */
static bool roles_changed(Helios__NodeStatus **a, size_t na, const Helios__RoutingTable *b)
{
	size_t nb = b ? b->n_nodes : 0;
	if (na != nb)
		return true;
	for (size_t i = 0; i < na; i++) {
		const Helios__NodeStatus *x = a[i], *y = b->nodes[i];
		if (!x || strcmp(x->name, y->name) || strcmp(x->role, y->role) ||
		    x->healthy != y->healthy || x->draining != y->draining)
			return true;
	}
	return false;
}

void ctl_set_routing(const Helios__RoutingTable *rt)
{
	size_t n = rt ? rt->n_nodes : 0;
	Helios__NodeStatus **v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = node_copy(rt->nodes[i]);
	const Helios__NodeStatus *prim = NULL;
	for (size_t i = 0; i < n; i++)
		if (v[i] && !strcmp(v[i]->role, "primary") && (!prim || v[i]->healthy))
			prim = v[i];
	pthread_mutex_lock(&mu);
	bool wake = roles_changed(nodes, n_nodes, rt);
	Helios__NodeStatus **old = nodes;
	size_t n_old = n_nodes;
	nodes = v;
	n_nodes = n;
	have_table = true;
	if (prim)
		snprintf(primary_name, sizeof(primary_name), "%s", prim->name);
	if (prim && prim->healthy)
		primary_lost_at = 0;
	else if (!primary_lost_at)
		primary_lost_at = mono_ms();
	__atomic_add_fetch(&routing_version, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&mu);
	ctl_nodes_free(old, n_old);
	if (wake)
		wake_workers(); /* clients held for a primary look again */
}

bool ctl_node_healthy(const char *name)
{
	bool r = true;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n_nodes; i++)
		if (nodes[i] && !strcmp(nodes[i]->name, name))
			r = nodes[i]->healthy;
	pthread_mutex_unlock(&mu);
	return r;
}

bool ctl_primary_known(uint64_t *lost_ms, char *name, size_t cap)
{
	pthread_mutex_lock(&mu);
	bool known = !have_table || !primary_lost_at;
	uint64_t now = mono_ms();
	*lost_ms = known || now < primary_lost_at ? 0 : now - primary_lost_at;
	if (name && cap)
		snprintf(name, cap, "%s", primary_name);
	pthread_mutex_unlock(&mu);
	return known;
}

Helios__NodeStatus **ctl_nodes_copy(size_t *n)
{
	struct snap *cur = snap_current();
	pthread_mutex_lock(&mu);
	Helios__NodeStatus **v = calloc(n_nodes ? n_nodes : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; v && i < n_nodes; i++) {
		Helios__NodeStatus *d = nodes[i] ? node_copy(nodes[i]) : NULL;
		if (d && cur) {
			int idx = cfg_node_index(cur->cfg, d->name);
			free(d->breaker);
			d->breaker = strdup(breaker_state_str(breaker_state(idx)));
		}
		if (d) {
			d->draining = in_list(drained, n_drained, d->name) &&
			              strcmp(d->name, "*"); /* "*" never names a node */
			v[k++] = d;
		}
	}
	pthread_mutex_unlock(&mu);
	snap_unref(cur);
	*n = k;
	return v;
}
