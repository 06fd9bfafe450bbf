/*
 * tenant_tagger: a route hint from application_name. Config:
 *   map       {"reporting": "replica", "billing": "primary",
 *              "etl-*": "node_b"} (required): application_name -> route
 *              ("primary", "replica" or a [[nodes]] name); a key ending in
 *              '*' matches by prefix; the first match wins
 *   default   a route for names no key matches (default: no hint)
 *   cache_skip  ["billing"]: application names whose queries skip the
 *              query cache
 * A route the proxy does not know is reported once per instance at
 * warning level.
 */
#include "helios_plugin.h"

HELIOS_PLUGIN_ABI_V1

#define MAX_ENTRIES 64

static char cfg[8192], app[256];
static struct hp_str keys[MAX_ENTRIES], routes[MAX_ENTRIES], skips[MAX_ENTRIES], dflt;
static int n_entries, n_skips, warned;

HELIOS_EXPORT(helios_init) int helios_init(void)
{
	struct hp_str c = hp_field(HP_F_CONFIG, cfg, sizeof(cfg)), map, v, k, s;
	if (c.n < 0 || c.n >= (int)sizeof(cfg))
		return 1;
	if (!hp_json_get(c, "map", &map) || !hp_json_is(map, '{'))
		return 2; /* nothing to do without a map */
	int pos = 0;
	while (hp_json_next(map, &pos, &k, &v)) {
		if (n_entries == MAX_ENTRIES || k.n <= 0 || !hp_json_string(v, &s) || s.n == 0)
			return 3;
		keys[n_entries] = k;
		routes[n_entries++] = s;
	}
	if (hp_json_get(c, "default", &v) && (!hp_json_string(v, &dflt) || dflt.n == 0))
		return 4;
	if (hp_json_get(c, "cache_skip", &v)) {
		if (!hp_json_is(v, '['))
			return 5;
		pos = 0;
		while (hp_json_next(v, &pos, &k, &s)) {
			if (n_skips == MAX_ENTRIES || !hp_json_string(s, &skips[n_skips]))
				return 5;
			n_skips++;
		}
	}
	return 0;
}

static int name_matches(struct hp_str name, struct hp_str key)
{
	if (key.n > 0 && key.p[key.n - 1] == '*')
		return name.n >= key.n - 1 && memcmp(name.p, key.p, (hp_size)(key.n - 1)) == 0;
	return hp_eq_str(name, key);
}

HELIOS_EXPORT(on_query_start) int on_query_start(void)
{
	struct hp_str a = hp_field(HP_F_APPLICATION_NAME, app, sizeof(app));
	struct hp_str route = dflt;
	if (a.n < 0)
		a.n = 0;
	for (int i = 0; i < n_entries; i++)
		if (name_matches(a, keys[i])) {
			route = routes[i];
			break;
		}
	if (route.n > 0 && helios_hint("route", 5, route.p, route.n) < 0 && !warned) {
		static const char w[] =
		    "tenant_tagger: the proxy refused a route hint from the map";
		helios_log(HP_WARN, w, sizeof(w) - 1);
		warned = 1;
	}
	for (int i = 0; i < n_skips; i++)
		if (name_matches(a, skips[i])) {
			helios_hint("cache", 5, "skip", 4);
			break;
		}
	return HP_CONTINUE;
}
