/*
 * WASM plugins on the control plane (docs/plugins.md): the set it hands
 * its data planes, made of the [[plugins]] of the live configuration (each
 * file read here, relative to the config file's folder, with its sha256)
 * and of the modules loaded with `helioctl plugin load` (helioctl reads the
 * file and sends the bytes). The set travels whole, bytes and digests, so
 * data planes on other hosts need no shared file system; it is numbered
 * apart from the configuration, and a change of the config that leaves the
 * set alone sends no module again. Each data plane acknowledges the plugin
 * generation in its heartbeats or reports why it refused the set (it then
 * keeps the one it runs).
 *
 * helioctl-loaded modules are kept across config reloads and, like
 * `config set`, across restarts: in a folder beside the overrides file
 * (<overrides file without .toml>.plugins/: manifest.json and the modules
 * named by their sha256, mode 0600 in a 0700 folder), read back at start.
 * Plugin generations start at the control plane's start time in
 * milliseconds, so a restarted control plane never reuses a number a data
 * plane holds.
 *
 * The control plane does not run plugins: whether a module compiles is for
 * the data planes to say. A helioctl load that every connected data plane
 * refuses is undone, so the control plane's set stays the one they run.
 */
#include "controlplane/cp_internal.h"

#include "common/cfg.h"
#include "common/cfg_keys.h"
#include "common/cpwire.h"
#include "common/hex.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A plugin's config as JSON, at most (bytes): as [[plugins]] config. */
#define PLUGIN_CONFIG_MAX 65536

static void sha256(const uint8_t *p, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
}

/* A [[plugins]] key's default from the key table (the same as the file's). */
static uint64_t key_default(const char *name, uint64_t fallback)
{
	const struct cfg_key *k = cfg_key_in("plugins", name, strlen(name));
	return k && k->def ? strtoull(k->def, NULL, 10) : fallback;
}

static struct cp_blob *blob_ref(struct cp_blob *b)
{
	if (b)
		b->refs++;
	return b;
}

static void blob_unref(struct cp_blob *b)
{
	if (b && --b->refs == 0)
		free(b);
}

static void plugin_clear(struct cp_plugin *p)
{
	blob_unref(p->wasm);
	free(p->config_json);
	free(p->path);
	memset(p, 0, sizeof(*p));
}

void cp_plist_free(struct cp_plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		plugin_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A deep copy (bytes shared); -1 when out of memory. */
static int plist_copy(const struct cp_plist *from, struct cp_plist *to)
{
	to->n = 0;
	to->v = calloc(from->n ? from->n : 1, sizeof(*to->v));
	if (!to->v)
		return -1;
	for (size_t i = 0; i < from->n; i++) {
		const struct cp_plugin *s = &from->v[i];
		struct cp_plugin *d = &to->v[to->n];
		*d = *s;
		d->config_json = strdup(s->config_json);
		d->path = strdup(s->path ? s->path : "");
		if (!d->config_json || !d->path) {
			free(d->config_json);
			free(d->path);
			cp_plist_free(to);
			return -1;
		}
		blob_ref(d->wasm);
		to->n++;
	}
	return 0;
}

/* Reads a module file; NULL with why in msg. */
static struct cp_blob *read_module(const char *path, char *msg, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(msg, cap, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	struct cp_blob *b = NULL;
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, cap, "%s is not a regular file", path);
	} else if (st.st_size == 0) {
		snprintf(msg, cap, "%s is empty", path);
	} else if ((uint64_t)st.st_size > CP_PLUGIN_MAX_BYTES) {
		snprintf(msg, cap, "%s has %lld bytes, more than the %u a module may have", path,
		         (long long)st.st_size, CP_PLUGIN_MAX_BYTES);
	} else if (!(b = malloc(sizeof(*b) + (size_t)st.st_size))) {
		snprintf(msg, cap, "out of memory reading %s", path);
	} else {
		b->refs = 1;
		b->len = fread(b->data, 1, (size_t)st.st_size, f);
		if (b->len != (size_t)st.st_size) {
			snprintf(msg, cap, "cannot read %s: short read", path);
			free(b);
			b = NULL;
		}
	}
	fclose(f);
	return b;
}

/* The folder of the config file, for relative module paths. */
static void resolve(const struct cp *cp, const char *path, char *out, size_t cap)
{
	if (path[0] == '/') {
		snprintf(out, cap, "%s", path);
		return;
	}
	const char *slash = strrchr(cp->path, '/');
	int dl = slash ? (int)(slash - cp->path) : 1;
	snprintf(out, cap, "%.*s/%s", dl, slash ? cp->path : ".", path);
}

int cp_plugins_read_cfg(const struct cp *cp, const struct cfg *c, struct cp_plist *out, char *msg,
                        size_t cap)
{
	out->n = 0;
	out->v = calloc(c->n_plugins ? c->n_plugins : 1, sizeof(*out->v));
	if (!out->v) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	double now = cpwire_now();
	size_t total = 0;
	for (size_t i = 0; i < c->n_plugins; i++) {
		const struct cfg_plugin *cp_ = &c->plugins[i];
		struct cp_plugin *p = &out->v[out->n];
		char path[CFG_PATH_MAX + 64], why[CFG_PATH_MAX + 200];
		resolve(cp, cp_->path ? cp_->path : "", path, sizeof(path));
		p->wasm = read_module(path, why, sizeof(why));
		if (!p->wasm) {
			snprintf(msg, cap, "plugin '%s': %s", cp_->name, why);
			cp_plist_free(out);
			return -1;
		}
		total += p->wasm->len;
		if (total > CP_PLUGIN_SET_BYTES) {
			snprintf(
			    msg, cap,
			    "plugin '%s': the modules of [[plugins]] add up to more than %u bytes",
			    cp_->name, CP_PLUGIN_SET_BYTES);
			blob_unref(p->wasm);
			p->wasm = NULL;
			cp_plist_free(out);
			return -1;
		}
		snprintf(p->name, sizeof(p->name), "%s", cp_->name);
		sha256(p->wasm->data, p->wasm->len, p->sha256);
		p->config_json = strdup(cp_->config_json ? cp_->config_json : "{}");
		p->path = strdup(path);
		p->deny = cp_->deny_on_failure;
		p->fuel = cp_->fuel;
		p->timeout_ms = cp_->timeout_ms;
		p->memory_mb = cp_->memory_mb;
		p->max_failures = cp_->max_failures;
		p->loaded_at = now;
		out->n++;
		if (!p->config_json || !p->path) {
			cp_plist_free(out);
			snprintf(msg, cap, "out of memory");
			return -1;
		}
	}
	return 0;
}

static const struct cp_plugin *find_in(const struct cp_plist *l, const char *name, size_t *at)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name)) {
			if (at)
				*at = i;
			return &l->v[i];
		}
	return NULL;
}

/* What the data planes run follows from this digest: name, module,
 * config, limits and serial of each plugin, in order. */
static void set_digest(const struct cp *cp, uint8_t out[32])
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	unsigned int n = 32;
	if (!x || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		memset(out, 0, 32);
		EVP_MD_CTX_free(x);
		return;
	}
	for (size_t i = 0; i < cp->n_set; i++) {
		const struct cp_plugin *p = cp->set[i];
		char head[256];
		int hl = snprintf(head, sizeof(head), "%s|%d|%llu|%u|%u|%u|%llu|", p->name, p->deny,
		                  (unsigned long long)p->fuel, p->timeout_ms, p->memory_mb,
		                  p->max_failures, (unsigned long long)p->serial);
		EVP_DigestUpdate(x, head, (size_t)hl);
		EVP_DigestUpdate(x, p->sha256, 32);
		EVP_DigestUpdate(x, p->config_json, strlen(p->config_json) + 1);
	}
	EVP_DigestFinal_ex(x, out, &n);
	EVP_MD_CTX_free(x);
}

/* The set from the two lists: [[plugins]] first, then helioctl's. */
static int rebuild_set(struct cp *cp)
{
	const struct cp_plugin **set = calloc(cp->cfg_plugins.n + cp->loaded.n + 1, sizeof(*set));
	if (!set) {
		log_error("control plane: out of memory building the plugin set");
		return -1;
	}
	free(cp->set);
	cp->set = set;
	cp->n_set = 0;
	for (size_t i = 0; i < cp->cfg_plugins.n; i++)
		cp->set[cp->n_set++] = &cp->cfg_plugins.v[i];
	for (size_t i = 0; i < cp->loaded.n; i++)
		cp->set[cp->n_set++] = &cp->loaded.v[i];
	return 0;
}

/* Rebuilds the set; a changed one gets the next generation and the data
 * planes are woken. Returns whether it changed. */
static bool commit(struct cp *cp, const char *why)
{
	if (rebuild_set(cp) < 0)
		return false;
	uint8_t d[32];
	set_digest(cp, d);
	if (cp->plugin_gen && !memcmp(d, cp->set_digest, 32))
		return false;
	memcpy(cp->set_digest, d, 32);
	if (!cp->plugin_next) {
		/* unique across restarts of this control plane: see above */
		cp->plugin_next = (uint64_t)(cpwire_now() * 1000.0);
	}
	cp->plugin_gen = ++cp->plugin_next;
	char names[512] = "";
	for (size_t i = 0; i < cp->n_set; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         i ? ", " : "", cp->set[i]->name);
	log_info("control plane: plugin set generation %llu (%s): %s",
	         (unsigned long long)cp->plugin_gen, why, cp->n_set ? names : "no plugins");
	cp->plugin_undo.valid = false;
	cp_dp_kick_heartbeats(cp);
	return true;
}

void cp_plugins_install_cfg(struct cp *cp, struct cp_plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		/* a plugin reload's serial outlives config reloads */
		const struct cp_plugin *old = find_in(&cp->cfg_plugins, l->v[i].name, NULL);
		if (old)
			l->v[i].serial = old->serial;
		size_t at;
		if (find_in(&cp->loaded, l->v[i].name, &at)) {
			log_warn("control plane: plugin '%s' is now in [[plugins]] of %s: it "
			         "replaces the module loaded with helioctl",
			         l->v[i].name, cp->path);
			plugin_clear(&cp->loaded.v[at]);
			memmove(&cp->loaded.v[at], &cp->loaded.v[at + 1],
			        (cp->loaded.n - at - 1) * sizeof(cp->loaded.v[0]));
			cp->loaded.n--;
		}
	}
	struct cp_plist old = cp->cfg_plugins;
	cp->cfg_plugins = *l;
	l->v = NULL;
	l->n = 0;
	commit(cp, "configuration");
	cp_plist_free(&old);
}

Helios__PluginSet *cp_plugins_msg(struct cp *cp)
{
	Helios__PluginSet *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	helios__plugin_set__init(s);
	s->generation = cp->plugin_gen;
	s->plugins = calloc(cp->n_set ? cp->n_set : 1, sizeof(*s->plugins));
	Helios__PluginModule *m = calloc(cp->n_set ? cp->n_set : 1, sizeof(*m));
	if (!s->plugins || !m) {
		free(s->plugins);
		free(m);
		free(s);
		return NULL;
	}
	if (!cp->n_set)
		free(m); /* cp_plugins_msg_free finds the array in plugins[0] */
	for (size_t i = 0; i < cp->n_set; i++) {
		const struct cp_plugin *p = cp->set[i];
		helios__plugin_module__init(&m[i]);
		m[i].name = (char *)p->name;
		m[i].wasm.data = p->wasm->data;
		m[i].wasm.len = p->wasm->len;
		m[i].sha256.data = (uint8_t *)p->sha256;
		m[i].sha256.len = 32;
		m[i].config_json = p->config_json;
		m[i].on_failure = p->deny ? "deny" : "continue";
		m[i].fuel = p->fuel;
		m[i].timeout_ms = p->timeout_ms;
		m[i].memory_mb = p->memory_mb;
		m[i].max_failures = p->max_failures;
		m[i].source = p->helioctl ? "helioctl" : "config";
		m[i].size = p->wasm->len;
		m[i].path = p->path;
		m[i].loaded_at = (uint64_t)p->loaded_at;
		m[i].serial = p->serial;
		s->plugins[s->n_plugins++] = &m[i];
	}
	return s;
}

void cp_plugins_msg_free(Helios__PluginSet *s)
{
	if (!s)
		return;
	free(s->n_plugins ? s->plugins[0] : NULL); /* the module array */
	free(s->plugins);
	free(s);
}

static bool name_ok(const char *n)
{
	size_t len = strlen(n);
	if (!len || len >= CFG_NAME_MAX)
		return false;
	for (const char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
			return false;
	return true;
}

/* The first 12 hex digits of a digest, for messages. */
static const char *short_sha(const uint8_t d[32], char buf[13])
{
	char full[65];
	hex_encode(d, 32, full);
	memcpy(buf, full, 12);
	buf[12] = '\0';
	return buf;
}

/* Where helioctl-loaded modules are kept: beside the overrides file. */
static void plugins_dir(const struct cp *cp, char *out, size_t cap)
{
	size_t n = strlen(cp->ovr_path);
	if (n > 5 && !strcmp(cp->ovr_path + n - 5, ".toml"))
		n -= 5;
	snprintf(out, cap, "%.*s.plugins", (int)n, cp->ovr_path);
}

static json_t *manifest_entry(const struct cp_plugin *p, const char *sha)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:f}", "name", p->name,
	                 "sha256", sha, "config", p->config_json, "on_failure",
	                 p->deny ? "deny" : "continue", "fuel", (json_int_t)p->fuel, "timeout_ms",
	                 (json_int_t)p->timeout_ms, "memory_mb", (json_int_t)p->memory_mb,
	                 "max_failures", (json_int_t)p->max_failures, "path",
	                 p->path ? p->path : "", "loaded_at", p->loaded_at);
}

/* Writes the helioctl-loaded modules and their manifest (modules first,
 * then the manifest atomically, then modules nobody names any more go). A
 * failure is logged: the change is live but will not survive a restart. */
static void persist(struct cp *cp)
{
	char dir[CFG_PATH_MAX + 16], path[CFG_PATH_MAX + 100], err[CFG_PATH_MAX * 2 + 200];
	plugins_dir(cp, dir, sizeof(dir));
	struct stat st;
	if (!cp->loaded.n && stat(dir, &st) < 0)
		return; /* nothing kept, nothing to keep */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("control plane: cannot create %s: %s: plugins loaded with helioctl will "
		         "not survive a restart",
		         dir, strerror(errno));
		return;
	}
	json_t *arr = json_array();
	char(*shas)[65] = calloc(cp->loaded.n + 1, sizeof(*shas));
	int rc = arr && shas ? 0 : -1;
	snprintf(err, sizeof(err), "out of memory");
	for (size_t i = 0; rc == 0 && i < cp->loaded.n; i++) {
		const struct cp_plugin *p = &cp->loaded.v[i];
		hex_encode(p->sha256, 32, shas[i]);
		snprintf(path, sizeof(path), "%s/%s.wasm", dir, shas[i]);
		if (stat(path, &st) < 0 &&
		    cp_write_file_atomic(path, p->wasm->data, p->wasm->len, err, sizeof(err)) < 0)
			rc = -1;
		else if (json_array_append_new(arr, manifest_entry(p, shas[i])) < 0)
			rc = -1;
	}
	char *text = NULL;
	if (rc == 0) {
		json_t *root = json_pack("{s:i, s:O}", "version", 1, "plugins", arr);
		text = root ? json_dumps(root, JSON_INDENT(1)) : NULL;
		json_decref(root);
		snprintf(path, sizeof(path), "%s/manifest.json", dir);
		rc = text ? cp_config_write_atomic(path, text, err, sizeof(err)) : -1;
	}
	if (rc < 0)
		log_warn(
		    "control plane: %s: plugins loaded with helioctl will not survive a restart",
		    err);
	DIR *d = rc == 0 ? opendir(dir) : NULL;
	for (struct dirent *e; d && (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (n != 64 + 5 || strcmp(e->d_name + 64, ".wasm"))
			continue;
		bool used = false;
		for (size_t i = 0; i < cp->loaded.n; i++)
			used |= !strncmp(e->d_name, shas[i], 64);
		if (!used &&
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
			unlink(path);
	}
	if (d)
		closedir(d);
	free(text);
	free(shas);
	json_decref(arr);
}

void cp_plugins_restore(struct cp *cp)
{
	char dir[CFG_PATH_MAX + 16], path[CFG_PATH_MAX + 100], why[CFG_PATH_MAX + 200];
	plugins_dir(cp, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		if (access(path, F_OK) == 0)
			log_error(
			    "control plane: %s: %s (line %d): plugins loaded with helioctl are "
			    "not restored",
			    path, jerr.text, jerr.line);
		return;
	}
	json_t *arr = json_object_get(root, "plugins"), *e;
	size_t i, n = 0;
	json_array_foreach(arr, i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		const char *cfgj = json_string_value(json_object_get(e, "config"));
		const char *of = json_string_value(json_object_get(e, "on_failure"));
		const char *src = json_string_value(json_object_get(e, "path"));
		if (!name || !name_ok(name) || !sha || strlen(sha) != 64 || !cfgj || !of) {
			log_error("control plane: %s: plugin entry %zu is malformed: left out",
			          path, i);
			continue;
		}
		if (find_in(&cp->cfg_plugins, name, NULL) || find_in(&cp->loaded, name, NULL) ||
		    cp->loaded.n + cp->cfg_plugins.n >= CP_PLUGINS_MAX) {
			log_warn("control plane: plugin '%s' loaded with helioctl is not restored: "
			         "[[plugins]] has that name now, or the set is full",
			         name);
			continue;
		}
		char mod[CFG_PATH_MAX + 100];
		snprintf(mod, sizeof(mod), "%s/%s.wasm", dir, sha);
		struct cp_plugin p = {0};
		char got[65];
		p.wasm = read_module(mod, why, sizeof(why));
		if (p.wasm) {
			sha256(p.wasm->data, p.wasm->len, p.sha256);
			hex_encode(p.sha256, 32, got);
		}
		if (!p.wasm || strcmp(got, sha)) {
			log_error(
			    "control plane: plugin '%s' loaded with helioctl is not restored: %s",
			    name, p.wasm ? "its module does not match its sha256" : why);
			plugin_clear(&p);
			continue;
		}
		struct cp_plugin *v = realloc(cp->loaded.v, (cp->loaded.n + 1) * sizeof(*v));
		snprintf(p.name, sizeof(p.name), "%s", name);
		p.config_json = strdup(cfgj);
		p.path = strdup(src ? src : "");
		p.deny = !strcmp(of, "deny");
		p.fuel = (uint64_t)json_integer_value(json_object_get(e, "fuel"));
		p.timeout_ms = (uint32_t)json_integer_value(json_object_get(e, "timeout_ms"));
		p.memory_mb = (uint32_t)json_integer_value(json_object_get(e, "memory_mb"));
		p.max_failures = (uint32_t)json_integer_value(json_object_get(e, "max_failures"));
		p.loaded_at = json_number_value(json_object_get(e, "loaded_at"));
		p.helioctl = true;
		if (!v || !p.config_json || !p.path || !p.fuel || !p.timeout_ms || !p.memory_mb) {
			log_error(
			    "control plane: plugin '%s' loaded with helioctl is not restored: %s",
			    name, v ? "malformed entry" : "out of memory");
			if (v)
				cp->loaded.v = v;
			plugin_clear(&p);
			continue;
		}
		cp->loaded.v = v;
		cp->loaded.v[cp->loaded.n++] = p;
		n++;
	}
	json_decref(root);
	if (n) {
		log_info("control plane: %zu plugin%s loaded with helioctl restored from %s", n,
		         n == 1 ? "" : "s", dir);
		commit(cp, "helioctl plugin load, kept from the last run");
	}
}

static nng_msg *plugin_list(struct cp *cp)
{
	Helios__PluginSet *s = cp_plugins_msg(cp);
	if (!s)
		return cp_ctl_simple(cp, 1, "out of memory");
	Helios__CtlResponse r;
	cp_ctl_resp_init(cp, &r);
	for (size_t i = 0; i < s->n_plugins; i++)
		s->plugins[i]->wasm.len = 0; /* a listing: no bytes */
	r.plugins = s->plugins;
	r.n_plugins = s->n_plugins;
	r.plugin_generation = cp->plugin_gen;
	/* with each data plane's plugin generation and last refusal */
	size_t k = 0;
	for (struct dp *d = cp->dps; d; d = d->next)
		k++;
	Helios__DataPlaneStatus *rows = calloc(k ? k : 1, sizeof(*rows));
	Helios__DataPlaneStatus **pr = calloc(k ? k : 1, sizeof(*pr));
	uint64_t now = cpwire_mono_ms();
	if (rows && pr) {
		for (struct dp *d = cp->dps; d; d = d->next) {
			Helios__DataPlaneStatus *st = &rows[r.n_dataplanes];
			helios__data_plane_status__init(st);
			st->dataplane_id = d->id;
			st->connected = cp_dp_connected(cp, d, now);
			st->generation = d->generation;
			st->last_seen_secs = (double)(now - d->last_seen_ms) / 1000.0;
			st->plugin_generation = d->plugin_gen;
			st->plugin_error = d->plugin_error;
			pr[r.n_dataplanes++] = st;
		}
		r.dataplanes = pr;
	}
	nng_msg *m = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	free(rows);
	free(pr);
	cp_plugins_msg_free(s);
	return m ? m : cp_ctl_simple(cp, 1, "out of memory");
}

/* Fills the limits of a helioctl-loaded plugin: what it sent, else the
 * [[plugins]] defaults. */
static void limits_of(const Helios__PluginModule *pm, struct cp_plugin *p)
{
	p->fuel = pm->fuel ? pm->fuel : key_default("fuel", 10000000);
	p->timeout_ms = pm->timeout_ms ? pm->timeout_ms : (uint32_t)key_default("timeout_ms", 100);
	p->memory_mb = pm->memory_mb ? pm->memory_mb : (uint32_t)key_default("memory_mb", 16);
	p->max_failures = (uint32_t)key_default("max_failures", 5);
}

/* plugin load NAME PATH (the module in req->plugin). */
static nng_msg *plugin_load(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	const Helios__PluginModule *pm = req->plugin;
	char msg[1200], sh[13];
	if (!pm || req->n_args < 2)
		return cp_ctl_simple(cp, 2,
		                     "usage: plugin load NAME PATH [--config JSON] "
		                     "[--on-failure continue|deny] (the module comes with "
		                     "the request: use helioctl)");
	const char *name = req->args[1];
	if (!name_ok(name) || strcmp(pm->name, name)) {
		snprintf(
		    msg, sizeof(msg),
		    "plugin name '%s': letters, digits, '_', '-' and '.' only, at most %d bytes",
		    name, CFG_NAME_MAX - 1);
		return cp_ctl_simple(cp, 1, msg);
	}
	if (find_in(&cp->cfg_plugins, name, NULL)) {
		snprintf(
		    msg, sizeof(msg),
		    "plugin '%s' comes from [[plugins]] in %s: change it there and run helioctl "
		    "reload, or load this module under another name",
		    name, cp->path);
		return cp_ctl_simple(cp, 1, msg);
	}
	if (!pm->wasm.len || pm->wasm.len > CP_PLUGIN_MAX_BYTES) {
		snprintf(msg, sizeof(msg), "module of %zu bytes: a module has 1 to %u bytes",
		         pm->wasm.len, CP_PLUGIN_MAX_BYTES);
		return cp_ctl_simple(cp, 1, msg);
	}
	uint8_t d[32];
	sha256(pm->wasm.data, pm->wasm.len, d);
	if (pm->sha256.len != 32 || memcmp(d, pm->sha256.data, 32))
		return cp_ctl_simple(cp, 1, "the module's sha256 does not match its bytes");
	const char *cj = pm->config_json && *pm->config_json ? pm->config_json : "{}";
	json_error_t jerr;
	json_t *j = json_loads(cj, JSON_REJECT_DUPLICATES, &jerr);
	bool parsed = j != NULL, obj = j && json_is_object(j);
	char *compact = obj ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!obj || !compact || strlen(compact) > PLUGIN_CONFIG_MAX) {
		if (!obj)
			snprintf(msg, sizeof(msg), "--config: %s",
			         parsed ? "expected a JSON object" : jerr.text);
		else
			snprintf(msg, sizeof(msg), "--config: more than %d bytes",
			         PLUGIN_CONFIG_MAX);
		free(compact);
		return cp_ctl_simple(cp, 1, msg);
	}
	const char *of = pm->on_failure && *pm->on_failure ? pm->on_failure : "continue";
	if (strcmp(of, "continue") && strcmp(of, "deny")) {
		free(compact);
		return cp_ctl_simple(cp, 1, "--on-failure wants continue or deny");
	}
	size_t at;
	const struct cp_plugin *old = find_in(&cp->loaded, name, &at);
	size_t total = pm->wasm.len;
	for (size_t i = 0; i < cp->n_set; i++)
		if (strcmp(cp->set[i]->name, name))
			total += cp->set[i]->wasm->len;
	if (total > CP_PLUGIN_SET_BYTES) {
		free(compact);
		snprintf(msg, sizeof(msg),
		         "the plugin set would hold %zu bytes of modules, more than %u", total,
		         CP_PLUGIN_SET_BYTES);
		return cp_ctl_simple(cp, 1, msg);
	}
	if (!old && cp->n_set >= CP_PLUGINS_MAX) {
		free(compact);
		snprintf(msg, sizeof(msg), "%u plugins are loaded already, the most a set holds",
		         CP_PLUGINS_MAX);
		return cp_ctl_simple(cp, 1, msg);
	}
	struct cp_plist before;
	if (plist_copy(&cp->loaded, &before) < 0) {
		free(compact);
		return cp_ctl_simple(cp, 1, "out of memory");
	}
	struct cp_plugin p = {0};
	snprintf(p.name, sizeof(p.name), "%s", name);
	p.wasm = malloc(sizeof(*p.wasm) + pm->wasm.len);
	p.path = strdup(pm->path ? pm->path : "");
	if (!p.wasm || !p.path) {
		free(p.wasm);
		free(p.path);
		free(compact);
		cp_plist_free(&before);
		return cp_ctl_simple(cp, 1, "out of memory");
	}
	p.wasm->refs = 1;
	p.wasm->len = pm->wasm.len;
	memcpy(p.wasm->data, pm->wasm.data, pm->wasm.len);
	memcpy(p.sha256, d, 32);
	p.config_json = compact;
	p.deny = !strcmp(of, "deny");
	limits_of(pm, &p);
	p.helioctl = true;
	p.loaded_at = cpwire_now();
	if (old) {
		p.serial = old->serial + 1; /* the same bytes again: a reload */
		plugin_clear(&cp->loaded.v[at]);
		cp->loaded.v[at] = p;
	} else {
		struct cp_plugin *v = realloc(cp->loaded.v, (cp->loaded.n + 1) * sizeof(*v));
		if (!v) {
			plugin_clear(&p);
			cp_plist_free(&before);
			return cp_ctl_simple(cp, 1, "out of memory");
		}
		cp->loaded.v = v;
		cp->loaded.v[cp->loaded.n++] = p;
	}
	uint64_t gen_before = cp->plugin_gen;
	bool reload = req->n_args >= 4 && !strcmp(req->args[3], "reload");
	snprintf(msg, sizeof(msg), "%s plugin %s (sha256 %s..., %zu bytes, on_failure %s)",
	         reload ? "reloaded"
	         : old  ? "replaced"
	                : "loaded",
	         name, short_sha(d, sh), pm->wasm.len, of);
	char why[300];
	snprintf(why, sizeof(why), "helioctl plugin %s %s", reload ? "reload" : "load", name);
	commit(cp, why);
	persist(cp);
	log_info("control plane: %s", msg);
	cp_plist_free(&cp->plugin_undo.loaded);
	cp->plugin_undo.loaded = before;
	cp->plugin_undo.gen_before = gen_before;
	cp->plugin_undo.gen_after = cp->plugin_gen;
	cp->plugin_undo.valid = true;
	cp_ctl_park(cp, w, req, WAIT_PLUGIN, cp->plugin_gen, NULL, msg);
	*parked = true;
	return NULL;
}

bool cp_plugins_undo(struct cp *cp, uint64_t refused_gen)
{
	if (!cp->plugin_undo.valid || cp->plugin_undo.gen_after != refused_gen ||
	    cp->plugin_gen != refused_gen)
		return false;
	cp_plist_free(&cp->loaded);
	cp->loaded = cp->plugin_undo.loaded;
	cp->plugin_undo.loaded.v = NULL;
	cp->plugin_undo.loaded.n = 0;
	cp->plugin_undo.valid = false;
	/* back to the set they run, under its own number: nothing to send */
	(void)rebuild_set(cp);
	cp->plugin_gen = cp->plugin_undo.gen_before;
	set_digest(cp, cp->set_digest);
	persist(cp);
	cp_dp_kick_heartbeats(cp);
	log_warn("control plane: every data plane refused plugin set generation %llu: back to "
	         "generation %llu",
	         (unsigned long long)refused_gen, (unsigned long long)cp->plugin_gen);
	return true;
}

/* plugin unload NAME | plugin reload NAME */
static nng_msg *plugin_change(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	bool unload = !strcmp(req->args[0], "unload");
	char msg[1400], sh[13];
	if (req->n_args != 2)
		return cp_ctl_simple(
		    cp, 2, unload ? "usage: plugin unload NAME" : "usage: plugin reload NAME");
	const char *name = req->args[1];
	size_t at;
	struct cp_plugin *cfgp = (struct cp_plugin *)find_in(&cp->cfg_plugins, name, &at);
	struct cp_plugin *lp = cfgp ? NULL : (struct cp_plugin *)find_in(&cp->loaded, name, &at);
	if (!cfgp && !lp) {
		snprintf(msg, sizeof(msg), "no plugin named '%s' (helioctl plugin list shows them)",
		         name);
		return cp_ctl_simple(cp, 1, msg);
	}
	char why[300];
	snprintf(why, sizeof(why), "helioctl plugin %s %s", req->args[0], name);
	if (unload && cfgp) {
		snprintf(
		    msg, sizeof(msg),
		    "plugin '%s' comes from [[plugins]] in %s: remove it there and run helioctl "
		    "reload",
		    name, cp->path);
		return cp_ctl_simple(cp, 1, msg);
	}
	if (unload) {
		plugin_clear(lp);
		memmove(lp, lp + 1, (cp->loaded.n - at - 1) * sizeof(*lp));
		cp->loaded.n--;
		snprintf(msg, sizeof(msg), "unloaded plugin %s", name);
	} else if (cfgp) {
		/* the file again (it may have changed), fresh instances */
		char err[CFG_PATH_MAX + 200];
		struct cp_blob *b = read_module(cfgp->path, err, sizeof(err));
		if (!b) {
			snprintf(msg, sizeof(msg), "plugin '%s': %s; it runs as it was", name, err);
			return cp_ctl_simple(cp, 1, msg);
		}
		uint8_t d[32];
		sha256(b->data, b->len, d);
		bool same = !memcmp(d, cfgp->sha256, 32);
		blob_unref(cfgp->wasm);
		cfgp->wasm = b;
		memcpy(cfgp->sha256, d, 32);
		cfgp->serial++;
		cfgp->loaded_at = cpwire_now();
		snprintf(msg, sizeof(msg), "reloaded plugin %s from %s (sha256 %s..., %s)", name,
		         cfgp->path, short_sha(d, sh), same ? "unchanged" : "changed");
	} else {
		/* helioctl reads a helioctl-loaded module again and loads it;
		 * this (an older helioctl) makes fresh instances of the same bytes */
		lp->serial++;
		snprintf(msg, sizeof(msg), "reloaded plugin %s (the same module: fresh instances)",
		         name);
	}
	commit(cp, why);
	if (unload)
		persist(cp);
	log_info("control plane: %s", msg);
	cp_ctl_park(cp, w, req, WAIT_PLUGIN, cp->plugin_gen, NULL, msg);
	*parked = true;
	return NULL;
}

nng_msg *cp_plugin_handle(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	const char *sub = req->n_args ? req->args[0] : "list";
	if (!strcmp(sub, "list") && req->n_args <= 1)
		return plugin_list(cp);
	if (!strcmp(sub, "load"))
		return plugin_load(cp, w, req, parked);
	if (!strcmp(sub, "unload") || !strcmp(sub, "reload"))
		return plugin_change(cp, w, req, parked);
	if (!strcmp(sub, "stats") && req->n_args == 1) {
		/* fresh counters: every data plane reports now */
		uint64_t id;
		cp_dp_add_command(cp, "report", NULL, NULL, &id);
		cp_dp_kick_heartbeats(cp);
		cp_ctl_park(cp, w, req, WAIT_REPORT, id, NULL, "");
		*parked = true;
		return NULL;
	}
	return cp_ctl_simple(cp, 2,
	                     "usage: plugin list | load NAME PATH [--config JSON] [--on-failure "
	                     "continue|deny] | unload NAME | reload NAME | stats");
}

void cp_plugins_free(struct cp *cp)
{
	cp_plist_free(&cp->cfg_plugins);
	cp_plist_free(&cp->loaded);
	cp_plist_free(&cp->plugin_undo.loaded);
	free(cp->set);
	cp->set = NULL;
	cp->n_set = 0;
}
