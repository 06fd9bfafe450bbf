/*
 * helioctl import-pgbouncer: pgbouncer.ini (plus its userlist and hba
 * file) into a HeliosProxy TOML, with one report line per key saying what
 * it became or why it could not be mapped. Local only: no control plane.
 * The output is rewritten whole on each run (written to a temporary file,
 * then renamed), so the operator edits the ini and runs it again.
 */
#include "cli/pgbimport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *const pgbi_sect_name[S_N] = {"", "pool_mode", "auth", "tls"};

static const char *last_slash_dir(const char *path, char *dir, size_t cap)
{
	const char *s = strrchr(path, '/');
	if (!s)
		snprintf(dir, cap, ".");
	else if (s == path)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(s - path), path);
	return dir;
}

/* ---- TOML output ---- */

void pgbi_toml_str(struct sbuf *b, const char *s)
{
	sbuf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sbuf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			sbuf_printf(b, "\\u%04x", c);
		else
			sbuf_putc(b, (char)c);
	}
	sbuf_putc(b, '"');
}

/* ---- report ---- */

/* file:line; "(command line)" for --userlist/--hba; "(default)" for a
 * PgBouncer default or a whole-file finding. */
static const char *src_of(const struct pgbini_ent *e, const char *what, char *buf, size_t cap)
{
	if (e)
		snprintf(buf, cap, "%s:%d", e->file, e->line);
	else
		snprintf(buf, cap, "%s", what[0] == '-' ? "(command line)" : "(default)");
	return buf;
}

void pgbi_report(struct imp *im, const struct pgbini_ent *e, const char *what, const char *status,
                 const char *fmt, ...)
{
	char src[PATH_MAX + 16], *msg = NULL;
	struct pgbi_row *r;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!strcmp(status, "not-mapped"))
		im->n_unmapped++;
	else if (!strcmp(status, "error")) {
		im->n_errors++;
		im->failed = true;
	} else if (!strcmp(status, "default"))
		im->n_default++;
	else if (!strcmp(status, "not-needed"))
		im->n_notneeded++;
	else
		im->n_mapped++;
	if (im->n_rows == im->cap_rows) {
		size_t cap = im->cap_rows ? im->cap_rows * 2 : 128;
		r = realloc(im->rows, cap * sizeof(*r));
		if (!r) {
			free(msg);
			im->oom = true;
			return;
		}
		im->rows = r;
		im->cap_rows = cap;
	}
	r = &im->rows[im->n_rows];
	/* In file order; PgBouncer defaults (no line) last. */
	r->order = e ? (size_t)(e - im->ini.e) : SIZE_MAX;
	r->seq = im->n_rows;
	r->src = strdup(src_of(e, what, src, sizeof(src)));
	r->what = strdup(what);
	r->status = status; /* a literal */
	r->msg = msg;
	if (!r->src || !r->what || !r->msg) {
		free(r->src);
		free(r->what);
		free(r->msg);
		im->oom = true;
		return;
	}
	im->n_rows++;
}

static int cmp_row(const void *a, const void *b)
{
	const struct pgbi_row *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts the rows into the report table and the TOML's head comments. */
static void finish_report(struct imp *im)
{
	qsort(im->rows, im->n_rows, sizeof(*im->rows), cmp_row);
	for (size_t i = 0; i < im->n_rows; i++) {
		const struct pgbi_row *r = &im->rows[i];
		table_add(&im->rep, "%s", r->src);
		table_add(&im->rep, "%s", r->what);
		table_add(&im->rep, "%s", r->status);
		table_add(&im->rep, "%s", r->msg);
		if (!strcmp(r->status, "not-mapped") || !strcmp(r->status, "error"))
			sbuf_printf(&im->head, "# %s %s: %s\n", r->status, r->what, r->msg);
	}
}

static void free_rows(struct imp *im)
{
	for (size_t i = 0; i < im->n_rows; i++) {
		free(im->rows[i].src);
		free(im->rows[i].what);
		free(im->rows[i].msg);
	}
	free(im->rows);
}

/* ---- values ---- */

int pgbi_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"1", "yes", "on", "true"}, *const no[] = {"0", "no",
	                                                                            "off", "false"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(v, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

int pgbi_parse_long(const char *v, long *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0)
		return -EINVAL;
	*out = n;
	return 0;
}

/* PgBouncer times are seconds, fractions allowed ("0.5"). */
int pgbi_parse_secs(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= 0) || d > 1e9)
		return -EINVAL;
	*out = d;
	return 0;
}

void pgbi_path_value(const struct imp *im, const char *v, char *out, size_t cap)
{
	int n = (!v[0] || v[0] == '/') ? snprintf(out, cap, "%s", v)
	                               : snprintf(out, cap, "%s/%s", im->ini_dir, v);
	if (n < 0 || (size_t)n >= cap)
		out[0] = '\0'; /* too long for a path: check-config then names the key */
}

const struct pgbini_ent *pgbi_find_last(const struct imp *im, const char *section, const char *key)
{
	for (size_t i = im->ini.n; i-- > 0;)
		if (!strcmp(im->ini.e[i].section, section) && !strcasecmp(im->ini.e[i].key, key))
			return &im->ini.e[i];
	return NULL;
}

const char *pgbi_val_of(const struct imp *im, const char *key, const char *def)
{
	const struct pgbini_ent *e = pgbi_find_last(im, "pgbouncer", key);
	return e ? e->val : def;
}

/* ---- driver ---- */

static int write_out(struct imp *im, const char *text, size_t len)
{
	char tmp[PATH_MAX + 16];
	int fd;

	if (!im->out_path)
		return fwrite(text, 1, len, stdout) == len ? 0 : -EIO;
	snprintf(tmp, sizeof(tmp), "%s.tmp", im->out_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int rc = -errno;
		close(fd);
		unlink(tmp);
		return rc ? rc : -EIO;
	}
	close(fd);
	if (rename(tmp, im->out_path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static const char import_usage[] =
    "usage: helioctl import-pgbouncer PGBOUNCER.INI [--userlist FILE] [--hba FILE] [-o OUT.toml]\n";

static const char import_help[] =
    "Writes a HeliosProxy configuration equivalent to PGBOUNCER.INI (its %include files\n"
    "too) to OUT.toml (default: standard output), then one line per key: where it came\n"
    "from (file:line, or (default) for a PgBouncer default that differs from\n"
    "HeliosProxy's), and mapped (to what), default, not-needed (HeliosProxy does it\n"
    "anyway), not-mapped (why) or error. The report goes to standard output with -o,\n"
    "else to standard error; the TOML also lists what was not mapped in comments.\n"
    "\n"
    "  --userlist FILE  PgBouncer userlist.txt (default: the ini's auth_file); used in\n"
    "                   place as auth.users_file, the format is the same\n"
    "  --hba FILE       PgBouncer hba file (default: the ini's auth_hba_file); with\n"
    "                   auth_type = hba it becomes auth.hba_file, copied to\n"
    "                   OUT.hba.conf when a line needs a change (methods HeliosProxy\n"
    "                   lacks become reject)\n"
    "  -o OUT.toml      where to write; replaced whole, so rerun after editing the ini\n"
    "\n"
    "[databases] entries become [[databases]] (host/port become [[nodes]] named pg1,\n"
    "pg2, ...), [users] entries [[users]]. Check the result with\n"
    "`heliosproxy --check-config OUT.toml`. See docs/migrating-from-pgbouncer.md.\n"
    "\n"
    "exit status: 0 written (not-mapped keys included), 1 an error in the ini (nothing\n"
    "usable written), 2 usage error or unreadable file.\n";

int pgbimport_main(int argc, char **argv)
{
	struct imp im;
	char err[PATH_MAX + 128];
	int rc = HCTL_OK;

	memset(&im, 0, sizeof(im));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s\n%s", import_usage, import_help);
			return HCTL_OK;
		}
		if (!strcmp(a, "--userlist"))
			slot = &im.userlist;
		else if (!strcmp(a, "--hba"))
			slot = &im.hba;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			slot = &im.out_path;
		if (slot) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				fprintf(stderr, "helioctl import-pgbouncer: %s needs a file\n%s", a,
				        import_usage);
				return HCTL_USAGE;
			}
			*slot = argv[++i];
			continue;
		}
		if (a[0] == '-' && a[1]) {
			fprintf(stderr, "helioctl import-pgbouncer: unknown option '%s'\n%s", a,
			        import_usage);
			return HCTL_USAGE;
		}
		if (im.ini_path) {
			fprintf(stderr, "helioctl import-pgbouncer: one ini file only\n%s",
			        import_usage);
			return HCTL_USAGE;
		}
		im.ini_path = a;
	}
	if (!im.ini_path) {
		fprintf(stderr, "helioctl import-pgbouncer: no ini file given\n%s", import_usage);
		return HCTL_USAGE;
	}
	if (pgbini_load(&im.ini, im.ini_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "helioctl import-pgbouncer: %s\n", err);
		pgbini_free(&im.ini);
		return HCTL_USAGE;
	}
	last_slash_dir(im.ini_path, im.ini_dir, sizeof(im.ini_dir));
	if (im.ini_dir[0] != '/') {
		char cwd[PATH_MAX], tmp[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd))) {
			snprintf(tmp, sizeof(tmp), "%s", im.ini_dir);
			if (!strcmp(tmp, "."))
				snprintf(im.ini_dir, sizeof(im.ini_dir), "%s", cwd);
			else if (snprintf(im.ini_dir, sizeof(im.ini_dir), "%s/%s", cwd, tmp) >=
			         (int)sizeof(im.ini_dir))
				snprintf(im.ini_dir, sizeof(im.ini_dir), "%s", tmp);
		}
	}
	if (im.out_path) {
		size_t l = strlen(im.out_path);
		snprintf(im.out_stem, sizeof(im.out_stem), "%.*s",
		         (int)(l > 5 && !strcmp(im.out_path + l - 5, ".toml") ? l - 5 : l),
		         im.out_path);
	}
	for (size_t s = 0; s < S_N; s++)
		sbuf_init(&im.sect[s]);
	sbuf_init(&im.rules);
	sbuf_init(&im.nodes);
	sbuf_init(&im.dbs);
	sbuf_init(&im.users);
	sbuf_init(&im.head);
	sbuf_init(&im.hba_text);
	table_init(&im.rep, "SOURCE KEY STATUS HELIOSPROXY");
	im.unix_dir = pgbi_val_of(&im, "unix_socket_dir", "/tmp");

	pgbi_map_pgbouncer(&im);
	pgbi_map_sections(&im);
	finish_report(&im);

	struct sbuf out;
	sbuf_init(&out);
	sbuf_printf(
	    &out,
	    "# HeliosProxy configuration written by helioctl import-pgbouncer from %s.\n"
	    "# Edit that file and run the import again rather than editing this one.\n"
	    "# %u keys mapped, %u PgBouncer defaults written, %u not needed, %u not mapped.\n",
	    im.ini_path, im.n_mapped, im.n_default, im.n_notneeded, im.n_unmapped);
	sbuf_puts(&out, im.head.p ? im.head.p : "");
	sbuf_putc(&out, '\n');
	for (size_t s = 0; s < S_N; s++) {
		if (!im.sect[s].len)
			continue;
		if (s)
			sbuf_printf(&out, "\n[%s]\n", pgbi_sect_name[s]);
		sbuf_puts(&out, im.sect[s].p);
	}
	sbuf_puts(&out, im.rules.p ? im.rules.p : "");
	sbuf_puts(&out, im.nodes.p ? im.nodes.p : "");
	sbuf_puts(&out, im.dbs.p ? im.dbs.p : "");
	sbuf_puts(&out, im.users.p ? im.users.p : "");

	if (out.oom || im.oom || im.rep.oom) {
		fprintf(stderr, "helioctl import-pgbouncer: out of memory\n");
		rc = HCTL_REFUSED;
	} else if (im.failed) {
		rc = HCTL_REFUSED; /* the report says why; nothing half-right is written */
	} else {
		int w = 0;
		if (im.hba_path[0]) {
			const char *keep = im.out_path;
			im.out_path = im.hba_path;
			w = im.hba_text.oom ? -ENOMEM
			                    : write_out(&im, im.hba_text.p, im.hba_text.len);
			im.out_path = keep;
			if (w < 0)
				fprintf(stderr, "helioctl import-pgbouncer: writing %s: %s\n",
				        im.hba_path, strerror(-w));
		}
		if (!w)
			w = write_out(&im, out.p, out.len);
		if (w < 0) {
			fprintf(stderr, "helioctl import-pgbouncer: writing %s: %s\n",
			        im.out_path ? im.out_path : "the output", strerror(-w));
			rc = HCTL_USAGE;
		}
	}
	FILE *rep = im.out_path ? stdout : stderr;
	if (table_print(&im.rep, rep) < 0)
		rc = HCTL_REFUSED;
	fprintf(rep, "%u mapped, %u defaults, %u not needed, %u not mapped", im.n_mapped,
	        im.n_default, im.n_notneeded, im.n_unmapped);
	if (im.n_errors)
		fprintf(rep, ", %u error%s", im.n_errors, im.n_errors == 1 ? "" : "s");
	fprintf(rep, "%s%s\n", im.failed ? "; nothing written" : "; written to ",
	        im.failed     ? ""
	        : im.out_path ? im.out_path
	                      : "standard output");

	sbuf_free(&out);
	for (size_t s = 0; s < S_N; s++)
		sbuf_free(&im.sect[s]);
	sbuf_free(&im.rules);
	sbuf_free(&im.nodes);
	sbuf_free(&im.dbs);
	sbuf_free(&im.users);
	sbuf_free(&im.head);
	sbuf_free(&im.hba_text);
	free_rows(&im);
	pgbini_free(&im.ini);
	return rc;
}
