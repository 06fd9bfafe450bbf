/*
 * [[plugins]] entries (issue 20): read by hand rather than through the key
 * table's offsets, because path and the config JSON are malloc'd and fuel
 * is 64-bit. The key table (cfg_keys.c) still declares the keys, their
 * defaults and bounds: the loader takes them from there, so the docs and
 * the checks cannot drift apart.
 */
#include "common/cfg.h"
#include "common/cfg_internal.h"
#include "common/cfg_keys.h"
#include "common/toml.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC "plugins"

/* The key's bounds and default from the table. */
static const struct cfg_key *key(const char *name)
{
	return cfg_key_in(SEC, name, strlen(name));
}

static long long def_int(const char *name)
{
	return strtoll(key(name)->def, NULL, 10);
}

/* TOML value -> JSON (datetimes as their text). NULL when out of memory. */
static json_t *to_json(const struct toml_value *v)
{
	json_t *j;
	size_t len;
	const char *s;

	switch (toml_type(v)) {
	case TOML_TABLE:
		if (!(j = json_object()))
			return NULL;
		for (size_t i = 0; i < toml_table_len(v); i++) {
			json_t *e = to_json(toml_table_value(v, i));
			char *k = strndup(toml_table_key(v, i), toml_table_key_len(v, i));
			if (!e || !k || json_object_set_new(j, k, e) != 0) {
				free(k);
				json_decref(j);
				return NULL;
			}
			free(k);
		}
		return j;
	case TOML_ARRAY:
		if (!(j = json_array()))
			return NULL;
		for (size_t i = 0; i < toml_array_len(v); i++) {
			json_t *e = to_json(toml_array_at(v, i));
			if (!e || json_array_append_new(j, e) != 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case TOML_STRING:
		s = toml_string(v, &len);
		return json_stringn(s, len);
	case TOML_INT:
		return json_integer((json_int_t)toml_int(v));
	case TOML_FLOAT:
		return json_real(toml_float(v));
	case TOML_BOOL:
		return json_boolean(toml_bool(v));
	default:
		return json_string(toml_datetime(v));
	}
}

/* `config`: an inline table (or [plugins.config]) becomes compact JSON;
 * a string is taken as JSON text and must hold an object. */
static int load_config(struct loader *ld, const char *k, const struct toml_value *v,
                       struct cfg_plugin *p)
{
	json_error_t jerr;
	json_t *j = NULL;
	size_t len;
	const char *s;

	if (toml_type(v) == TOML_TABLE) {
		j = to_json(v);
		if (!j)
			return cfg_fail(ld, toml_line(v), "out of memory");
	} else if (toml_type(v) == TOML_STRING) {
		s = toml_string(v, &len);
		j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!j)
			return cfg_fail(ld, toml_line(v),
			                "key '%s': not JSON (%s at character %d); write a table "
			                "instead: config = { key = \"value\" }",
			                k, jerr.text, jerr.position);
		if (!json_is_object(j)) {
			json_decref(j);
			return cfg_fail(ld, toml_line(v), "key '%s': expected a JSON object", k);
		}
	} else {
		return cfg_fail(ld, toml_line(v), "key '%s': expected table, got %s", k,
		                cfg_type_word(toml_type(v)));
	}
	free(p->config_json);
	p->config_json = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!p->config_json)
		return cfg_fail(ld, toml_line(v), "out of memory");
	if (strlen(p->config_json) > CFG_PLUGIN_CONFIG_MAX)
		return cfg_fail(ld, toml_line(v),
		                "key '%s': %zu bytes as JSON, more than the %d allowed", k,
		                strlen(p->config_json), CFG_PLUGIN_CONFIG_MAX);
	return 0;
}

/* A string key's value into a fresh string; no NUL, at most max - 1 bytes. */
static int get_string(struct loader *ld, const char *k, const struct toml_value *v, size_t max,
                      const char **s, size_t *len)
{
	if (toml_type(v) != TOML_STRING)
		return cfg_fail(ld, toml_line(v), "key '%s': expected string, got %s", k,
		                cfg_type_word(toml_type(v)));
	*s = toml_string(v, len);
	if (memchr(*s, '\0', *len))
		return cfg_fail(ld, toml_line(v), "key '%s': contains a NUL byte", k);
	if (*len >= max)
		return cfg_fail(ld, toml_line(v),
		                "key '%s': value is %zu bytes, longer than the %zu allowed", k,
		                *len, max - 1);
	return 0;
}

static int get_int(struct loader *ld, const char *k, const char *name, const struct toml_value *v,
                   long long *out)
{
	const struct cfg_key *ck = key(name);

	if (toml_type(v) != TOML_INT)
		return cfg_fail(ld, toml_line(v), "key '%s': expected integer, got %s", k,
		                cfg_type_word(toml_type(v)));
	*out = toml_int(v);
	if (*out < ck->min || *out > ck->max)
		return cfg_fail(ld, toml_line(v), "key '%s': %lld is out of range (%lld..%lld)", k,
		                *out, ck->min, ck->max);
	return 0;
}

static bool name_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* path relative to the config file's folder becomes absolute. */
static int set_path(struct loader *ld, const char *k, int line, const char *s, size_t len,
                    struct cfg_plugin *p)
{
	size_t dl = ld->dir && s[0] != '/' ? strlen(ld->dir) : 0;
	bool slash = dl && ld->dir[dl - 1] != '/';
	size_t n = dl + slash + len;

	if (n >= CFG_PATH_MAX)
		return cfg_fail(ld, line, "key '%s': path is longer than %d bytes once resolved", k,
		                CFG_PATH_MAX - 1);
	free(p->path);
	if (!(p->path = malloc(n + 1)))
		return cfg_fail(ld, line, "out of memory");
	memcpy(p->path, ld->dir ? ld->dir : "", dl);
	if (slash)
		p->path[dl] = '/';
	memcpy(p->path + dl + slash, s, len);
	p->path[n] = '\0';
	return 0;
}

int cfg_load_plugin(struct loader *ld, long index, const struct toml_value *t, struct cfg_plugin *p)
{
	char k[128];
	const char *s;
	size_t len;
	long long n = 0;
	int rc = 0;

	if (index >= CFG_PLUGINS_MAX)
		return cfg_fail(ld, toml_line(t), "more than %d [[plugins]]", CFG_PLUGINS_MAX);
	p->timeout_ms = (uint32_t)def_int("timeout_ms");
	p->fuel = (uint64_t)def_int("fuel");
	p->memory_mb = (uint32_t)def_int("memory_mb");
	p->max_failures = (uint32_t)def_int("max_failures");
	p->deny_on_failure = strcmp(key("on_failure")->def, "deny") == 0;
	for (size_t i = 0; i < toml_table_len(t) && rc == 0; i++) {
		const char *name = toml_table_key(t, i);
		size_t nlen = toml_table_key_len(t, i);
		const struct toml_value *v = toml_table_value(t, i);
		const char *hint;

		cfg_key_path(k, sizeof(k), SEC, index, name);
		if (nlen == 6 && memcmp(name, "config", 6) == 0) {
			rc = load_config(ld, k, v, p);
		} else if (!cfg_key_in(SEC, name, nlen)) {
			hint = strlen(name) == nlen ? cfg_key_suggest(SEC, name) : NULL;
			/* config is not in the key table (it is a table, not a value) */
			if (!hint && (!strncmp(name, "conf", 4) || !strncmp(name, "cfg", 3)))
				hint = "config";
			rc = hint ? cfg_fail(ld, toml_line(v),
			                     "unknown key '%s' (did you mean '%s'?)", k, hint)
			          : cfg_fail(ld, toml_line(v), "unknown key '%s'", k);
		} else if (!strcmp(name, "name")) {
			rc = get_string(ld, k, v, sizeof(p->name), &s, &len);
			if (rc == 0 && (len == 0 || !name_ok(s)))
				rc =
				    cfg_fail(ld, toml_line(v),
				             "key '%s': a plugin name is letters, digits, '_', '-' "
				             "and '.' (not empty)",
				             k);
			if (rc == 0) {
				memcpy(p->name, s, len);
				p->name[len] = '\0';
			}
		} else if (!strcmp(name, "path")) {
			rc = get_string(ld, k, v, CFG_PATH_MAX, &s, &len);
			if (rc == 0 && len == 0)
				rc = cfg_fail(ld, toml_line(v), "key '%s' must not be empty", k);
			if (rc == 0)
				rc = set_path(ld, k, toml_line(v), s, len, p);
		} else if (!strcmp(name, "on_failure")) {
			rc = get_string(ld, k, v, 16, &s, &len);
			if (rc == 0 && (len == 4 && !memcmp(s, "deny", 4)))
				p->deny_on_failure = true;
			else if (rc == 0 && len == 8 && !memcmp(s, "continue", 8))
				p->deny_on_failure = false;
			else if (rc == 0)
				rc = cfg_fail(ld, toml_line(v),
				              "key '%s': \"%.*s\" is not one of continue, deny", k,
				              (int)len, s);
		} else if ((rc = get_int(ld, k, name, v, &n)) == 0) {
			if (!strcmp(name, "timeout_ms"))
				p->timeout_ms = (uint32_t)n;
			else if (!strcmp(name, "fuel"))
				p->fuel = (uint64_t)n;
			else if (!strcmp(name, "memory_mb"))
				p->memory_mb = (uint32_t)n;
			else
				p->max_failures = (uint32_t)n;
		}
	}
	if (rc)
		return rc;
	if (!p->name[0] || !p->path) {
		cfg_key_path(k, sizeof(k), SEC, index, p->name[0] ? "path" : "name");
		return cfg_fail_key(ld, SEC, index, NULL, "key '%s' is required", k);
	}
	if (!p->config_json && !(p->config_json = strdup("{}")))
		return cfg_fail(ld, 0, "out of memory");
	for (long j = 0; j < index; j++)
		if (strcmp(ld->c->plugins[j].name, p->name) == 0) {
			cfg_key_path(k, sizeof(k), SEC, index, "name");
			return cfg_fail_key(
			    ld, SEC, index, "name",
			    "key '%s': plugin \"%s\" is already defined (as %s[%ld])", k, p->name,
			    SEC, j);
		}
	return 0;
}

void cfg_plugins_free(struct cfg *c)
{
	for (size_t i = 0; c->plugins && i < c->n_plugins; i++) {
		free(c->plugins[i].path);
		free(c->plugins[i].config_json);
	}
	free(c->plugins);
	c->plugins = NULL;
	c->n_plugins = 0;
}
