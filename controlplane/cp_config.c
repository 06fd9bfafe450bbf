/*
 * The control plane's live configuration: the config file plus the changes
 * made with helioctl config set/reset, persisted in the overrides file
 * (replaced atomically, with the generation in its header); installing a
 * configuration as a new generation and the snapshot data planes get;
 * helioctl config get, show, diff, set and reset.
 */
#include "controlplane/cp_internal.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "controlplane/xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ overrides file */

char *cp_config_overrides_text(const struct cp *cp, char **skip_key, const char *add_key,
                               const char *add_line, uint64_t gen)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b,
	            "# HeliosProxy live configuration: changes made with `helioctl config set`,\n"
	            "# applied over %s. Written by the control plane; edit with helioctl.\n"
	            "# generation = %llu\n",
	            cp->path, (unsigned long long)gen);
	for (size_t i = 0; i < cp->n_ovr; i++) {
		if ((skip_key && *skip_key && !strcmp(cp->ovr_keys[i], *skip_key)) ||
		    (add_key && !strcmp(cp->ovr_keys[i], add_key)))
			continue;
		sbuf_printf(&b, "%s\n", cp->ovr_lines[i]);
	}
	if (add_key && add_line)
		sbuf_printf(&b, "%s\n", add_line);
	return sbuf_take(&b, NULL);
}

/* Atomic replace: temp file, fsync, rename, fsync the folder. */
int cp_config_write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
	return cp_write_file_atomic(path, text, strlen(text), err, errlen);
}

int cp_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
	const char *text = data;
	char tmp[CFG_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	char dir[CFG_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Appends one override to the parallel key and line lists: both or
 * neither, so they never get out of step when memory runs out. */
static int ovr_add(struct cp *cp, const char *key, const char *line)
{
	size_t n = cp->n_ovr;
	if (cp_strv_add(&cp->ovr_keys, &n, key) < 0)
		return -1;
	n = cp->n_ovr;
	if (cp_strv_add(&cp->ovr_lines, &n, line) < 0) {
		free(cp->ovr_keys[cp->n_ovr]);
		return -1;
	}
	cp->n_ovr = n;
	return 0;
}

/* Reads the overrides file: its lines ("key = value") and the generation
 * recorded in its header. Missing file = no overrides. */
int cp_config_read_overrides(struct cp *cp, char **text_out, uint64_t *gen, char *err,
                             size_t errlen)
{
	*text_out = NULL;
	*gen = 0;
	const char *from = cp->ovr_path;
	FILE *f = fopen(from, "r");
	/* state_dir newly set: the live changes made so far are in the old
	 * place, beside the config file; read them once (the caller writes
	 * them to the new place) */
	char legacy[CFG_PATH_MAX + 16];
	snprintf(legacy, sizeof(legacy), "%s.live.toml", cp->path);
	if (!f && errno == ENOENT && cp->file && cp->file->state_dir[0] &&
	    strcmp(legacy, cp->ovr_path) && (f = fopen(legacy, "r"))) {
		from = legacy;
		log_info("control plane: live overrides read from %s, their place before state_dir "
		         "was set; from now on they are kept in %s",
		         legacy, cp->ovr_path);
	}
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", from, strerror(errno));
		return -1;
	}
	struct sbuf b;
	sbuf_init(&b);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		sbuf_puts(&b, line);
		unsigned long long g;
		if (sscanf(line, "# generation = %llu", &g) == 1)
			*gen = g;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		char *eq = strchr(p, '=');
		if (!eq)
			continue; /* the TOML reader reports it with its line */
		char *e = eq;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		char key[256];
		snprintf(key, sizeof(key), "%.*s", (int)(e - p), p);
		p[strcspn(p, "\n")] = '\0';
		ovr_add(cp, key, p);
	}
	fclose(f);
	*text_out = sbuf_take(&b, NULL);
	return 0;
}

/* ------------------------------------------------------------ snapshots */

/* Makes c the live config with a new generation (the callers write the
 * overrides file that records it); the XDP filter follows it (a failure there is logged and
 * shown by helioctl xdp, the configuration stays). Takes c. */
void cp_config_install(struct cp *cp, struct cfg *c, const char *source)
{
	char *toml = cfg_to_toml(c);
	if (!toml) {
		log_error("control plane: out of memory building a snapshot");
		cfg_free(c);
		return;
	}
	cfg_free(cp->live);
	cp->live = c;
	cp_free_secret(cp->snapshot_toml);
	cp->snapshot_toml = toml;
	cp->generation++;
	snprintf(cp->source, sizeof(cp->source), "%s", source);
	log_apply_cfg(c);
	log_info("control plane: configuration generation %llu (%s)",
	         (unsigned long long)cp->generation, source);
	char err[600];
	(void)xf_apply(cp->xdp, c, err, sizeof(err));
}

Helios__ConfigSnapshot *cp_config_snapshot_msg(struct cp *cp, Helios__ConfigSnapshot *s)
{
	helios__config_snapshot__init(s);
	s->schema_version = cp->schema;
	s->generation = cp->generation;
	s->toml = cp->snapshot_toml;
	s->source = cp->source;
	return s;
}

/* Loads file + overrides text; on success installs it. */
int cp_config_apply(struct cp *cp, const char *ovr_text, const char *source, char *msg, size_t cap)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_file_with(cp->path, cp->ovr_path, ovr_text, &err);
	if (!c) {
		snprintf(msg, cap, "%s", err.msg);
		return -1;
	}
	struct cfg *f = cfg_load_file(cp->path, &err);
	if (!f) {
		cfg_free(c);
		snprintf(msg, cap, "%s", err.msg);
		return -1;
	}
	/* the modules of [[plugins]] again: a changed file goes out */
	struct cp_plist plugins;
	if (cp_plugins_read_cfg(cp, c, &plugins, msg, cap) < 0) {
		cfg_free(c);
		cfg_free(f);
		return -1;
	}
	cfg_free(cp->file);
	cp->file = f;
	cp_config_install(cp, c, source);
	cp_plugins_install_cfg(cp, &plugins);
	log_info("configuration reloaded from %s (generation %llu)", cp->path,
	         (unsigned long long)cp->generation);
	return 0;
}

/* ------------------------------------------------------------ helioctl config */

static const char *key_value(const struct cfg *c, const struct cfg_key *k, char *buf, size_t cap)
{
	if (cfg_format_value(c, k, buf, cap) != 0)
		snprintf(buf, cap, "?");
	return buf;
}

static bool overridden(const struct cp *cp, const char *key)
{
	return cp_strv_has(cp->ovr_keys, cp->n_ovr, key);
}

/* config get / show / diff rows. */
static Helios__ConfigItem **config_rows(struct cp *cp, const char *only, bool diff, size_t *n)
{
	size_t nk;
	const struct cfg_key *keys = cfg_key_table(&nk);
	Helios__ConfigItem **v = calloc(nk ? nk : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; v && i < nk; i++) {
		char name[128], live[2048], file[2048];
		cfg_key_name(&keys[i], name, sizeof(name));
		if (only && strcmp(only, name))
			continue;
		key_value(cp->live, &keys[i], live, sizeof(live));
		key_value(cp->file, &keys[i], file, sizeof(file));
		bool ov = overridden(cp, name);
		if (diff && !ov && !strcmp(live, file))
			continue;
		Helios__ConfigItem *it = malloc(sizeof(*it));
		if (!it)
			break;
		helios__config_item__init(it);
		it->key = cp_xstrdup(name);
		it->value = cp_xstrdup(live);
		it->file_value = cp_xstrdup(file);
		it->overridden = ov;
		it->restart = (keys[i].flags & CFG_KEY_RESTART) != 0;
		it->doc = cp_xstrdup(keys[i].doc);
		v[k++] = it;
	}
	*n = k;
	return v;
}

static void config_rows_free(Helios__ConfigItem **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

/* Replaces the in-memory override list after a successful change. */
static void set_override(struct cp *cp, const char *key, const char *line)
{
	for (size_t i = 0; i < cp->n_ovr; i++) {
		if (!strcmp(cp->ovr_keys[i], key)) {
			if (line) {
				free(cp->ovr_lines[i]);
				cp->ovr_lines[i] = cp_xstrdup(line);
			} else {
				free(cp->ovr_keys[i]);
				free(cp->ovr_lines[i]);
				memmove(cp->ovr_keys + i, cp->ovr_keys + i + 1,
				        (cp->n_ovr - i - 1) * sizeof(char *));
				memmove(cp->ovr_lines + i, cp->ovr_lines + i + 1,
				        (cp->n_ovr - i - 1) * sizeof(char *));
				cp->n_ovr--;
			}
			return;
		}
	}
	if (line)
		ovr_add(cp, key, line);
}

/* config set KEY VALUE / config reset KEY. */
static nng_msg *config_change(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	bool reset = !strcmp(req->args[0], "reset");
	if ((reset && req->n_args != 2) || (!reset && req->n_args != 3))
		return cp_ctl_simple(
		    cp, 2, reset ? "usage: config reset KEY" : "usage: config set KEY VALUE");
	const char *key = req->args[1];
	const struct cfg_key *k = cfg_key_find(key);
	char msg[1400];
	if (k && (k->flags & CFG_KEY_RESTART)) {
		snprintf(msg, sizeof(msg),
		         "key '%s' cannot change while running: set it in %s and restart "
		         "heliosproxy",
		         key, cp->path);
		return cp_ctl_simple(cp, 1, msg);
	}
	char line[4096];
	struct cfg_error err;
	if (reset) {
		if (!overridden(cp, key)) {
			snprintf(msg, sizeof(msg), "key '%s' has no live override to reset", key);
			return cp_ctl_simple(cp, 1, msg);
		}
	} else if (cfg_override_line(key, req->args[2], line, sizeof(line), &err) != 0) {
		snprintf(msg, sizeof(msg), "refused: %s", err.msg);
		return cp_ctl_simple(cp, 1, msg);
	}
	char *skip = (char *)key;
	char *text = cp_config_overrides_text(cp, reset ? &skip : NULL, reset ? NULL : key,
	                                      reset ? NULL : line, cp->generation + 1);
	if (!text)
		return cp_ctl_simple(cp, 1, "out of memory");
	struct cfg *c = cfg_load_file_with(cp->path, cp->ovr_path, text, &err);
	if (!c) {
		free(text);
		snprintf(msg, sizeof(msg), "refused: %s", err.msg);
		return cp_ctl_simple(cp, 1, msg);
	}
	/* the file was read again: so are the modules its [[plugins]] name */
	struct cp_plist plugins;
	char perr[1200];
	if (cp_plugins_read_cfg(cp, c, &plugins, perr, sizeof(perr)) < 0) {
		free(text);
		cfg_free(c);
		snprintf(msg, sizeof(msg), "refused: %s", perr);
		return cp_ctl_simple(cp, 1, msg);
	}
	char werr[1200];
	if (cp_config_write_atomic(cp->ovr_path, text, werr, sizeof(werr)) < 0) {
		free(text);
		cfg_free(c);
		cp_plist_free(&plugins);
		snprintf(msg, sizeof(msg), "refused, nothing changed: %s", werr);
		log_error("control plane: %s", msg);
		return cp_ctl_simple(cp, 1, msg);
	}
	free(text);
	set_override(cp, key, reset ? NULL : line);
	char source[300];
	snprintf(source, sizeof(source), "helioctl config %s %s", reset ? "reset" : "set", key);
	cp_config_install(cp, c, source);
	cp_plugins_install_cfg(cp, &plugins);
	char val[512];
	key_value(cp->live, k, val, sizeof(val));
	snprintf(msg, sizeof(msg), "%s = %s", key, val);
	if (!strncmp(key, "xdp.", 4))
		cp_ctl_xdp_note(cp, msg, sizeof(msg));
	cp_dp_kick_heartbeats(cp);
	cp_ctl_park(cp, w, req, WAIT_GEN, cp->generation, NULL, msg);
	*parked = true;
	return NULL;
}

nng_msg *cp_config_handle(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	if (req->n_args < 1)
		return cp_ctl_simple(cp, 2,
		                     "usage: config get KEY | show | diff | set KEY VALUE | "
		                     "reset KEY");
	const char *sub = req->args[0];
	if (!strcmp(sub, "set") || !strcmp(sub, "reset"))
		return config_change(cp, w, req, parked);
	bool get = !strcmp(sub, "get");
	if (!get && strcmp(sub, "show") && strcmp(sub, "diff"))
		return cp_ctl_simple(cp, 2,
		                     "unknown config verb: use get, show, diff, set or reset");
	if (get && req->n_args != 2)
		return cp_ctl_simple(cp, 2, "usage: config get KEY");
	if (get && !cfg_key_find(req->args[1])) {
		char msg[512];
		struct cfg_error err;
		char line[64];
		/* the override checker names the key and suggests a spelling */
		if (cfg_override_line(req->args[1], "0", line, sizeof(line), &err) != 0)
			snprintf(msg, sizeof(msg), "%s", err.msg);
		else
			snprintf(msg, sizeof(msg), "unknown key '%s'", req->args[1]);
		return cp_ctl_simple(cp, 1, msg);
	}
	Helios__CtlResponse r;
	cp_ctl_resp_init(cp, &r);
	r.config = config_rows(cp, get ? req->args[1] : NULL, !strcmp(sub, "diff"), &r.n_config);
	nng_msg *m = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	config_rows_free(r.config, r.n_config);
	return m;
}

int cp_config_reload(struct cp *cp, const char *source, char *msg, size_t cap)
{
	char *text = cp_config_overrides_text(cp, NULL, NULL, NULL, cp->generation + 1);
	if (!text) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	int r = cp_config_apply(cp, text, source, msg, cap);
	if (r == 0) {
		char werr[1200];
		if (cp_config_write_atomic(cp->ovr_path, text, werr, sizeof(werr)) < 0)
			log_warn("control plane: %s", werr);
		cp_dp_kick_heartbeats(cp);
	}
	free(text);
	return r;
}
