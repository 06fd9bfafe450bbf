/*
 * The live plugin set (plugin_set.h). Three kinds of state:
 *
 *   struct pmod  a compiled module with its name and digest, its failure
 *                switch and the counters of workers that have exited;
 *                shared by every set that holds the same name and bytes,
 *                so a push that changes another plugin keeps it compiled
 *                and keeps its counters;
 *   struct pset  one applied set: its plugins in order (pmod + config +
 *                limits), reference counted by the workers on it;
 *   struct wstate  a worker's own: the set it runs, an instance and the
 *                counters per plugin. Only its thread writes it; the stats
 *                reader takes set_mu, which the worker takes only when it
 *                moves to a new set.
 *
 * Per call: one relaxed atomic load (live_seq) tells a worker whether the
 * set changed; no lock, no allocation unless an instance is (re)built.
 */
#include "dataplane/plugin/plugin_set.h"

#include "common/hex.h"
#include "common/log.h"
#include "common/sbuf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ctr {
	uint64_t calls, time_ns, denials, rewrites, traps, timeouts, budget, failures;
};

struct pmod {
	int refs; /* atomic */
	char name[64];
	uint8_t sha[32];
	char sha_hex[65];
	struct plugin_module *m;
	uint32_t hooks;      /* 1u << enum plugin_hook it exports */
	bool disabled;       /* atomic */
	uint32_t consec;     /* atomic: consecutive failed calls, all workers */
	struct ctr gone;     /* counters of workers that exited (set_mu) */
	uint64_t n_disabled; /* times it was disabled (atomic) */
	uint32_t epoch;      /* bumped by plugin_set_reset: instances made before go (set_mu) */
};

struct pent {
	struct pmod *pm;
	char *config_json;
	enum plugin_on_failure on_failure;
	struct plugin_limits lim;
	uint32_t max_failures;
};

struct pset {
	int refs; /* atomic: the live pointer + each worker on it */
	uint64_t seq;
	size_t n;
	uint32_t hooks;
	struct pent e[];
};

struct wslot {
	struct pmod *pm;               /* == set->e[i].pm */
	struct plugin_instance *in;    /* NULL: built at the next call */
	const struct pent *built_with; /* the entry in was made with */
	uint32_t epoch;                /* pm->epoch when in was made */
	struct ctr c;                  /* written by the worker only (relaxed atomics) */
	/* the plugin's log lines: at most LOG_BURST per second per worker */
	time_t log_sec;
	uint32_t log_n, log_dropped;
	time_t fail_log_sec; /* failure lines: one per second per worker */
	uint32_t fail_dropped;
};

struct wstate {
	struct wstate *next; /* all_ws, under set_mu */
	struct pset *set;
	uint64_t seq;
	struct wslot *slot; /* set->n */
};

#define LOG_BURST 1000

static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pset *live;     /* set_mu */
static uint64_t live_seq;     /* atomic: live->seq, 0 = none */
static uint32_t live_hooks;   /* atomic: hooks some enabled live plugin exports */
static uint64_t live_gen;     /* atomic: the control plane's number */
static struct wstate *all_ws; /* set_mu */
static __thread struct wstate *ws;
static void (*on_empty_change)(void); /* set once at start-up */

void plugin_set_notify(void (*fn)(void))
{
	on_empty_change = fn;
}

static void ctr_add(struct ctr *to, const struct ctr *c)
{
	to->calls += __atomic_load_n(&c->calls, __ATOMIC_RELAXED);
	to->time_ns += __atomic_load_n(&c->time_ns, __ATOMIC_RELAXED);
	to->denials += __atomic_load_n(&c->denials, __ATOMIC_RELAXED);
	to->rewrites += __atomic_load_n(&c->rewrites, __ATOMIC_RELAXED);
	to->traps += __atomic_load_n(&c->traps, __ATOMIC_RELAXED);
	to->timeouts += __atomic_load_n(&c->timeouts, __ATOMIC_RELAXED);
	to->budget += __atomic_load_n(&c->budget, __ATOMIC_RELAXED);
	to->failures += __atomic_load_n(&c->failures, __ATOMIC_RELAXED);
}

/* One writer: a relaxed load and store, no read-modify-write. */
#define BUMP(field, by) __atomic_store_n(&(field), (field) + (by), __ATOMIC_RELAXED)

static void pmod_put(struct pmod *pm)
{
	if (pm && __atomic_sub_fetch(&pm->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		plugin_module_free(pm->m);
		free(pm);
	}
}

static void pset_put(struct pset *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < s->n; i++) {
		pmod_put(s->e[i].pm);
		free(s->e[i].config_json);
	}
	free(s);
}

/* The hooks of the set's enabled plugins. */
static uint32_t enabled_hooks(const struct pset *s)
{
	uint32_t h = 0;

	for (size_t i = 0; s && i < s->n; i++)
		if (!__atomic_load_n(&s->e[i].pm->disabled, __ATOMIC_RELAXED))
			h |= s->e[i].pm->hooks;
	return h;
}

static bool same_entry(const struct pent *a, const struct pent *b)
{
	return a->pm == b->pm && strcmp(a->config_json, b->config_json) == 0 &&
	       a->on_failure == b->on_failure && a->max_failures == b->max_failures &&
	       a->lim.fuel == b->lim.fuel && a->lim.timeout_ms == b->lim.timeout_ms &&
	       a->lim.memory_mb == b->lim.memory_mb;
}

int plugin_set_apply(const struct plugin_def *defs, size_t n, uint64_t generation, char *err,
                     size_t errlen)
{
	struct pset *s = calloc(1, sizeof(*s) + n * sizeof(s->e[0]));
	char why[256];
	int rc = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->refs = 1;
	/* compile what is new; reuse the module of a plugin whose name and bytes
	 * the live set already has */
	pthread_mutex_lock(&set_mu);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; live && j < live->n; j++)
			if (!strcmp(live->e[j].pm->name, defs[i].name) &&
			    !memcmp(live->e[j].pm->sha, defs[i].sha256, 32)) {
				s->e[i].pm = live->e[j].pm;
				__atomic_add_fetch(&s->e[i].pm->refs, 1, __ATOMIC_RELAXED);
				break;
			}
	pthread_mutex_unlock(&set_mu);
	s->n = n;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct plugin_def *d = &defs[i];
		struct pent *e = &s->e[i];
		struct plugin_instance *probe;

		for (size_t j = 0; j < i; j++)
			if (!strcmp(defs[j].name, d->name)) {
				snprintf(err, errlen, "plugin %s: the name is used twice", d->name);
				rc = -EINVAL;
			}
		if (rc)
			break;
		if (!d->name[0] || strlen(d->name) >= sizeof(e->pm->name)) {
			snprintf(err, errlen, "plugin \"%.64s\": a name of 1..63 bytes is needed",
			         d->name);
			rc = -EINVAL;
			break;
		}
		e->config_json =
		    strdup(d->config_json && d->config_json[0] ? d->config_json : "{}");
		e->on_failure = d->on_failure;
		e->lim = d->lim;
		e->max_failures = d->max_failures;
		if (!e->config_json) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			break;
		}
		if (!e->pm) {
			struct pmod *pm = calloc(1, sizeof(*pm));
			if (!pm) {
				snprintf(err, errlen, "out of memory");
				rc = -ENOMEM;
				break;
			}
			pm->refs = 1;
			snprintf(pm->name, sizeof(pm->name), "%s", d->name);
			memcpy(pm->sha, d->sha256, 32);
			hex_encode(pm->sha, 32, pm->sha_hex);
			e->pm = pm;
			pm->m = plugin_module_new(d->wasm, d->len, why, sizeof(why));
			if (!pm->m) {
				snprintf(err, errlen, "plugin %s: %s", d->name, why);
				rc = -EINVAL;
				break;
			}
			for (int h = 0; h < PLUGIN_HOOKS; h++)
				if (plugin_module_has(pm->m, (enum plugin_hook)h))
					pm->hooks |= 1u << h;
		}
		/* helios_init runs here once, so a config the plugin refuses is
		 * refused now and not at some worker's first query */
		probe = plugin_instance_new(e->pm->m, e->config_json, &e->lim, why, sizeof(why));
		if (!probe) {
			snprintf(err, errlen, "plugin %s: %s", d->name, why);
			rc = -EINVAL;
			break;
		}
		plugin_instance_free(probe);
	}
	if (rc) {
		pset_put(s);
		return rc;
	}
	pthread_mutex_lock(&set_mu);
	/* a plugin that changed (or is new) starts enabled; an unchanged one
	 * keeps its switch: reload it (plugin_set_reset) to enable it again */
	for (size_t i = 0; i < n; i++) {
		bool kept = false;
		for (size_t j = 0; live && j < live->n && !kept; j++)
			kept = same_entry(&s->e[i], &live->e[j]);
		if (!kept) {
			__atomic_store_n(&s->e[i].pm->disabled, false, __ATOMIC_RELAXED);
			__atomic_store_n(&s->e[i].pm->consec, 0, __ATOMIC_RELAXED);
		}
	}
	struct pset *old = live;
	s->seq = (old ? old->seq : 0) + 1;
	s->hooks = enabled_hooks(s);
	live = s;
	__atomic_store_n(&live_hooks, s->hooks, __ATOMIC_RELAXED);
	__atomic_store_n(&live_gen, generation, __ATOMIC_RELAXED);
	__atomic_store_n(&live_seq, s->seq, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&set_mu);
	/* from no plugins to some, or back: pipelines built from now on
	 * gain or lose the plugin stage */
	if (on_empty_change && (!old || !old->n) != !s->n)
		on_empty_change();
	pset_put(old);
	return 0;
}

uint64_t plugin_set_generation(void)
{
	return __atomic_load_n(&live_gen, __ATOMIC_RELAXED);
}

uint32_t plugin_set_hooks(void)
{
	return __atomic_load_n(&live_hooks, __ATOMIC_RELAXED);
}

size_t plugin_set_count(void)
{
	size_t n;

	pthread_mutex_lock(&set_mu);
	n = live ? live->n : 0;
	pthread_mutex_unlock(&set_mu);
	return n;
}

int plugin_set_reset(const char *name)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&set_mu);
	for (size_t i = 0; live && i < live->n; i++)
		if (!strcmp(live->e[i].pm->name, name)) {
			__atomic_store_n(&live->e[i].pm->disabled, false, __ATOMIC_RELAXED);
			__atomic_store_n(&live->e[i].pm->consec, 0, __ATOMIC_RELAXED);
			__atomic_add_fetch(&live->e[i].pm->epoch, 1, __ATOMIC_RELAXED);
			rc = 0;
		}
	if (rc == 0) {
		__atomic_store_n(&live_hooks, enabled_hooks(live), __ATOMIC_RELAXED);
		/* every worker syncs again and leaves its old instance */
		live->seq++;
		__atomic_store_n(&live_seq, live->seq, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&set_mu);
	return rc;
}

/* Moves this worker to the live set: keeps the instance and counters of
 * every plugin that stays the same. */
static struct wstate *worker_sync(void)
{
	struct wstate *w = ws;
	struct wslot *slot;
	struct pset *s;

	if (w && w->seq == __atomic_load_n(&live_seq, __ATOMIC_ACQUIRE))
		return w;
	pthread_mutex_lock(&set_mu);
	if (!w) {
		if (!(w = calloc(1, sizeof(*w)))) {
			pthread_mutex_unlock(&set_mu);
			return NULL;
		}
		w->next = all_ws;
		all_ws = w;
		ws = w;
	}
	s = live;
	slot = calloc(s && s->n ? s->n : 1, sizeof(*slot));
	if (!slot) {
		pthread_mutex_unlock(&set_mu);
		return NULL; /* stays on its set; tries again at the next call */
	}
	for (size_t i = 0; s && i < s->n; i++) {
		slot[i].pm = s->e[i].pm;
		for (size_t j = 0; w->set && j < w->set->n; j++) {
			struct wslot *o = &w->slot[j];
			if (o->pm != slot[i].pm)
				continue;
			slot[i].c = o->c;
			if (o->in && same_entry(o->built_with, &s->e[i]) &&
			    o->epoch == slot[i].pm->epoch) {
				slot[i].in = o->in;
				slot[i].epoch = o->epoch;
				o->in = NULL;
			}
		}
		slot[i].built_with = &s->e[i];
	}
	for (size_t j = 0; w->set && j < w->set->n; j++)
		plugin_instance_free(w->slot[j].in);
	free(w->slot);
	struct pset *old = w->set;
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	w->set = s;
	w->slot = slot;
	w->seq = s ? s->seq : 0;
	pthread_mutex_unlock(&set_mu);
	pset_put(old);
	return w;
}

struct log_ud {
	const struct pmod *pm;
	struct wslot *slot;
};

static void plugin_log(void *arg, int level, const char *msg, size_t len)
{
	struct log_ud *ud = arg;
	struct wslot *sl = ud->slot;
	time_t now = time(NULL);
	enum log_level lv = level >= 3   ? LOG_ERROR
	                    : level == 2 ? LOG_WARN
	                    : level == 1 ? LOG_INFO
	                                 : LOG_DEBUG;

	if (now != sl->log_sec) {
		if (sl->log_dropped)
			log_warn("plugin %s: %u log lines dropped (more than %d a second)",
			         ud->pm->name, sl->log_dropped, LOG_BURST);
		sl->log_sec = now;
		sl->log_n = sl->log_dropped = 0;
	}
	if (sl->log_n >= LOG_BURST) {
		sl->log_dropped++;
		return;
	}
	sl->log_n++;
	if (len > 4000)
		len = 4000;
	log_at(lv, "plugin %s: %.*s", ud->pm->name, (int)len, msg);
}

/* A call that trapped, timed out, ran out of fuel, or whose instance could
 * not be made: counted, logged (one line a second per worker), and the
 * plugin disabled after max_failures in a row. */
static void failed(const struct pent *e, struct wslot *sl, enum plugin_rc rc, const char *what,
                   enum plugin_hook h)
{
	struct pmod *pm = e->pm;
	time_t now = time(NULL);
	uint32_t n;

	BUMP(sl->c.failures, 1);
	if (rc == PLUGIN_TIMEOUT)
		BUMP(sl->c.timeouts, 1);
	else if (rc == PLUGIN_BUDGET)
		BUMP(sl->c.budget, 1);
	else
		BUMP(sl->c.traps, 1);
	if (now != sl->fail_log_sec) {
		log_warn("plugin %s: %s (%s %s; on_failure = %s)%s", pm->name, what,
		         plugin_hook_name(h), plugin_rc_name(rc),
		         e->on_failure == PLUGIN_FAIL_DENY ? "deny" : "continue",
		         sl->fail_dropped ? " (more failures since the last line)" : "");
		sl->fail_log_sec = now;
		sl->fail_dropped = 0;
	} else {
		sl->fail_dropped++;
	}
	n = __atomic_add_fetch(&pm->consec, 1, __ATOMIC_RELAXED);
	if (e->max_failures && n >= e->max_failures) {
		bool was = false;
		if (__atomic_compare_exchange_n(&pm->disabled, &was, true, false, __ATOMIC_RELAXED,
		                                __ATOMIC_RELAXED)) {
			__atomic_add_fetch(&pm->n_disabled, 1, __ATOMIC_RELAXED);
			log_error("plugin %s disabled after %u consecutive failures (last: %s); "
			          "reload it to enable it again",
			          pm->name, n, what);
			pthread_mutex_lock(&set_mu);
			__atomic_store_n(&live_hooks, enabled_hooks(live), __ATOMIC_RELAXED);
			pthread_mutex_unlock(&set_mu);
		}
	}
}

void plugin_set_run(const struct plugin_call *in, struct plugin_outcome *out)
{
	struct wstate *w;
	const char *field[PLUGIN_F_COUNT];
	uint32_t field_len[PLUGIN_F_COUNT];
	enum plugin_hook h = in->hook;
	struct plugin_call c;
	char why[160];

	memset(out, 0, sizeof(*out));
	if (!(w = worker_sync()) || !w->set)
		return;
	memcpy(field, in->field, sizeof(field));
	memcpy(field_len, in->field_len, sizeof(field_len));
	for (size_t i = 0; i < w->set->n; i++) {
		const struct pent *e = &w->set->e[i];
		struct wslot *sl = &w->slot[i];
		struct log_ud ud = {e->pm, sl};
		enum plugin_rc rc;

		if (!(e->pm->hooks & (1u << h)) ||
		    __atomic_load_n(&e->pm->disabled, __ATOMIC_RELAXED))
			continue;
		if (!sl->in) {
			sl->in = plugin_instance_new(e->pm->m, e->config_json, &e->lim, why,
			                             sizeof(why));
			sl->built_with = e;
			sl->epoch = __atomic_load_n(&e->pm->epoch, __ATOMIC_RELAXED);
			if (!sl->in) {
				BUMP(sl->c.calls, 1);
				failed(e, sl, PLUGIN_TRAP, why, h);
				rc = PLUGIN_TRAP;
				goto failure;
			}
		}
		memset(&c, 0, sizeof(c));
		c.hook = h;
		memcpy(c.field, field, sizeof(field));
		memcpy(c.field_len, field_len, sizeof(field_len));
		rc = plugin_call(sl->in, &c, plugin_log, &ud);
		out->ran++;
		BUMP(sl->c.calls, 1);
		BUMP(sl->c.time_ns, c.elapsed_ns);
		if (rc == PLUGIN_ABSENT)
			continue;
		if (rc != PLUGIN_OK) {
			/* its state may be torn: a new instance for the next call */
			plugin_instance_free(sl->in);
			sl->in = NULL;
			free(c.rewrite);
			failed(e, sl, rc, c.trap[0] ? c.trap : plugin_rc_name(rc), h);
			goto failure;
		}
		if (__atomic_load_n(&e->pm->consec, __ATOMIC_RELAXED))
			__atomic_store_n(&e->pm->consec, 0, __ATOMIC_RELAXED);
		if (c.decision == PLUGIN_DENY &&
		    (h == PLUGIN_ON_CONNECTION || h == PLUGIN_ON_QUERY_START)) {
			BUMP(sl->c.denials, 1);
			free(c.rewrite);
			out->decision = PLUGIN_DENY;
			snprintf(out->by, sizeof(out->by), "%s", e->pm->name);
			snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", c.sqlstate);
			snprintf(out->message, sizeof(out->message), "%s", c.message);
			return;
		}
		if (c.rewrite && h == PLUGIN_ON_QUERY_START) {
			BUMP(sl->c.rewrites, 1);
			free(out->rewrite);
			out->rewrite = c.rewrite;
			out->rewrite_len = c.rewrite_len;
			/* the next plugin sees the statement as rewritten */
			field[PLUGIN_F_SQL] = out->rewrite;
			field_len[PLUGIN_F_SQL] = out->rewrite_len;
		} else {
			free(c.rewrite);
		}
		if (c.route[0])
			snprintf(out->route, sizeof(out->route), "%s", c.route);
		out->cache_skip |= c.cache_skip;
		continue;
	failure:
		if (e->on_failure == PLUGIN_FAIL_DENY &&
		    (h == PLUGIN_ON_CONNECTION || h == PLUGIN_ON_QUERY_START)) {
			out->decision = PLUGIN_DENY;
			out->failed = true;
			snprintf(out->by, sizeof(out->by), "%s", e->pm->name);
			snprintf(out->message, sizeof(out->message),
			         "plugin %s failed (%s) and its on_failure is deny", e->pm->name,
			         plugin_rc_name(rc));
			return;
		}
	}
}

void plugin_set_unseen(enum plugin_hook h, struct plugin_outcome *out)
{
	struct wstate *w;

	memset(out, 0, sizeof(*out));
	if (!(w = worker_sync()) || !w->set)
		return;
	for (size_t i = 0; i < w->set->n; i++) {
		const struct pent *e = &w->set->e[i];
		if (!(e->pm->hooks & (1u << h)) || e->on_failure != PLUGIN_FAIL_DENY ||
		    __atomic_load_n(&e->pm->disabled, __ATOMIC_RELAXED))
			continue;
		out->decision = PLUGIN_DENY;
		out->failed = true;
		snprintf(out->by, sizeof(out->by), "%s", e->pm->name);
		snprintf(out->message, sizeof(out->message),
		         "plugin %s cannot see a statement this large (its on_failure is deny)",
		         e->pm->name);
		return;
	}
}

size_t plugin_set_stats(struct plugin_stats *out, size_t max)
{
	size_t k = 0;

	pthread_mutex_lock(&set_mu);
	for (size_t i = 0; live && i < live->n && k < max; i++, k++) {
		struct pmod *pm = live->e[i].pm;
		struct plugin_stats *st = &out[k];
		struct ctr sum = {0};

		ctr_add(&sum, &pm->gone);
		memset(st, 0, sizeof(*st));
		for (struct wstate *w = all_ws; w; w = w->next)
			for (size_t j = 0; w->set && j < w->set->n; j++)
				if (w->slot[j].pm == pm) {
					ctr_add(&sum, &w->slot[j].c);
					st->instances += w->slot[j].in != NULL;
				}
		snprintf(st->name, sizeof(st->name), "%s", pm->name);
		memcpy(st->sha256, pm->sha_hex, sizeof(st->sha256));
		st->disabled = __atomic_load_n(&pm->disabled, __ATOMIC_RELAXED);
		st->calls = sum.calls;
		st->time_ns = sum.time_ns;
		st->denials = sum.denials;
		st->rewrites = sum.rewrites;
		st->traps = sum.traps;
		st->timeouts = sum.timeouts;
		st->budget_exhausted = sum.budget;
		st->failures = sum.failures;
		st->disabled_total = __atomic_load_n(&pm->n_disabled, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&set_mu);
	return k;
}

static void wstate_drop(struct wstate *w)
{
	for (size_t j = 0; w->set && j < w->set->n; j++)
		plugin_instance_free(w->slot[j].in);
	free(w->slot);
	pset_put(w->set);
	free(w);
}

void plugin_set_worker_exit(void)
{
	struct wstate *w = ws;

	if (!w)
		return;
	ws = NULL;
	pthread_mutex_lock(&set_mu);
	for (struct wstate **p = &all_ws; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	/* counters folded under the lock: stats never see them twice */
	for (size_t j = 0; w->set && j < w->set->n; j++)
		ctr_add(&w->slot[j].pm->gone, &w->slot[j].c);
	for (size_t j = 0; w->set && j < w->set->n; j++)
		memset(&w->slot[j].c, 0, sizeof(w->slot[j].c));
	pthread_mutex_unlock(&set_mu);
	wstate_drop(w);
}

void plugin_set_shutdown(void)
{
	struct pset *s;

	plugin_set_worker_exit();
	pthread_mutex_lock(&set_mu);
	s = live;
	live = NULL;
	__atomic_store_n(&live_hooks, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&live_seq, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&live_gen, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&set_mu);
	pset_put(s);
}

/* A label value: quotes, backslashes and newlines escaped. */
static void label(struct sbuf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sbuf_putc(out, '\\');
		if (*s == '\n')
			sbuf_puts(out, "\\n");
		else
			sbuf_putc(out, *s);
	}
}

void plugin_set_metrics(struct sbuf *out)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"helios_plugin_calls_total", "counter", "Hook calls of the plugin."},
	    {"helios_plugin_time_seconds_total", "counter", "Time spent in the plugin's hooks."},
	    {"helios_plugin_denials_total", "counter",
	     "Connections and statements the plugin denied."},
	    {"helios_plugin_rewrites_total", "counter", "Statements the plugin rewrote."},
	    {"helios_plugin_traps_total", "counter",
	     "Hook calls that trapped (or whose instance could not be made)."},
	    {"helios_plugin_timeouts_total", "counter",
	     "Hook calls cut at the plugin's wall-clock limit."},
	    {"helios_plugin_budget_exhausted_total", "counter",
	     "Hook calls cut at the plugin's instruction budget."},
	    {"helios_plugin_disabled", "gauge",
	     "1 while the plugin is disabled after max_failures consecutive failures."},
	    {"helios_plugin_disabled_total", "counter",
	     "Times the plugin was disabled after max_failures consecutive failures."},
	    {"helios_plugin_instances", "gauge", "Workers that hold an instance of the plugin."},
	};
	struct plugin_stats st[64];
	size_t n = plugin_set_stats(st, sizeof(st) / sizeof(st[0]));

	sbuf_printf(out,
	            "# HELP helios_plugins Plugins in the live set.\n# TYPE helios_plugins "
	            "gauge\nhelios_plugins %zu\n"
	            "# HELP helios_plugin_set_generation Generation of the live plugin set.\n"
	            "# TYPE helios_plugin_set_generation gauge\nhelios_plugin_set_generation "
	            "%llu\n",
	            n, (unsigned long long)plugin_set_generation());
	for (size_t f = 0; n && f < sizeof(fam) / sizeof(fam[0]); f++) {
		sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
		            fam[f].name, fam[f].type);
		for (size_t i = 0; i < n; i++) {
			sbuf_printf(out, "%s{plugin=\"", fam[f].name);
			label(out, st[i].name);
			sbuf_puts(out, "\"} ");
			switch (f) {
			case 0:
				sbuf_printf(out, "%llu\n", (unsigned long long)st[i].calls);
				break;
			case 1:
				sbuf_printf(out, "%.9f\n", (double)st[i].time_ns / 1e9);
				break;
			case 2:
				sbuf_printf(out, "%llu\n", (unsigned long long)st[i].denials);
				break;
			case 3:
				sbuf_printf(out, "%llu\n", (unsigned long long)st[i].rewrites);
				break;
			case 4:
				sbuf_printf(out, "%llu\n", (unsigned long long)st[i].traps);
				break;
			case 5:
				sbuf_printf(out, "%llu\n", (unsigned long long)st[i].timeouts);
				break;
			case 6:
				sbuf_printf(out, "%llu\n",
				            (unsigned long long)st[i].budget_exhausted);
				break;
			case 7:
				sbuf_printf(out, "%d\n", st[i].disabled ? 1 : 0);
				break;
			case 8:
				sbuf_printf(out, "%llu\n",
				            (unsigned long long)st[i].disabled_total);
				break;
			default:
				sbuf_printf(out, "%u\n", st[i].instances);
				break;
			}
		}
	}
}
