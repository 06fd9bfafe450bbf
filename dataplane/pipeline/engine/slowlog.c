/*
 * The slow query log (see slowlog.h). Workers and the writer share a ring
 * of records under one mutex that is only ever held to copy a record in or
 * a batch out; normalising, formatting and every system call on the file
 * happen on the writer thread with no lock held. The recent-lines ring has
 * its own mutex so helioctl reading it never contends with the workers.
 */
#include "dataplane/pipeline/engine/slowlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Records the writer takes off the queue per lock round trip: enough to
 * amortise the lock under a burst, small enough for the stack. */
#define WRITER_BATCH 32

struct slowlog {
	/* Writer thread only (and open/close around it). */
	char *path;
	char *rotated[SLOWLOG_KEEP_FILES + 1]; /* [i] = "path.i" for i >= 1 */
	uint64_t max_bytes;
	uint64_t rotate_at; /* rotate before size passes this; see append() */
	uint64_t size;      /* of the current file */
	int fd;             /* -1 after a failed open: retried on the next line */

	/* The queue: under mu. */
	pthread_mutex_t mu;
	pthread_cond_t wake; /* writer: records, unpause or stop */
	pthread_cond_t idle; /* slowlog_flush: done moved */
	struct slowlog_rec *q;
	size_t cap, head, n;
	uint64_t accepted, done; /* records queued / handled by the writer, ever */
	bool stop, paused;
	pthread_t thread;

	/* The recent lines: under rmu. */
	pthread_mutex_t rmu;
	char **recent;
	size_t keep, rhead, rn;

	_Atomic uint64_t written, dropped, rotations, bytes, write_errors;
};

static void count(_Atomic uint64_t *c, uint64_t by)
{
	atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

static void set_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "slow log %s: %s: %s", path, what, strerror(e));
}

/* ---- Records ---- */

static void copy_name(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

bool slowlog_rec_set(struct slowlog_rec *rec, const char *user, const char *database,
                     const char *node, const char *application_name, const char *text, size_t len)
{
	copy_name(rec->user, sizeof(rec->user), user);
	copy_name(rec->database, sizeof(rec->database), database);
	copy_name(rec->node, sizeof(rec->node), node);
	copy_name(rec->application_name, sizeof(rec->application_name), application_name);
	rec->text = NULL;
	rec->text_len = 0;
	if (!text)
		return true;
	if (len > SLOWLOG_TEXT_MAX)
		len = SLOWLOG_TEXT_MAX;
	rec->text = malloc(len ? len : 1);
	if (!rec->text)
		return false;
	memcpy(rec->text, text, len);
	rec->text_len = len;
	return true;
}

/* ---- Text: UTF-8 and normalisation ---- */

/* Copies s[0..len) to out (room for 3 * len + 1 bytes), replacing each byte
 * that does not start a well-formed UTF-8 sequence (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF) by U+FFFD, since jansson refuses
 * such strings and the line must stay valid JSON. Returns the length. */
static size_t utf8_clean(const char *s, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t n = 0;
		unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c < 0x80)
			n = 1;
		else if (c >= 0xC2 && c <= 0xDF)
			n = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		}
		bool ok = n > 0 && i + n <= len;
		for (size_t k = 1; ok && k < n; k++) {
			unsigned b = p[i + k];
			ok = k == 1 ? b >= lo && b <= hi : b >= 0x80 && b <= 0xBF;
		}
		if (ok) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return o;
}

static bool is_literal(PgQuery__Token t)
{
	switch (t) {
	case PG_QUERY__TOKEN__SCONST:
	case PG_QUERY__TOKEN__USCONST:
	case PG_QUERY__TOKEN__BCONST:
	case PG_QUERY__TOKEN__XCONST:
	case PG_QUERY__TOKEN__ICONST:
	case PG_QUERY__TOKEN__FCONST:
		return true;
	default:
		return false;
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * sql with every literal token replaced by $n, numbered after the highest
 * $n already in it; NULL when it does not scan or the offsets look off, so
 * a caller never falls back to the text it was given.
 *
 * Token ends are not used: libpg_query reports U&'...' as ending where it
 * starts. Since the scanner returns every token, comments included, only
 * blanks lie between one token and the next, so a literal runs from its
 * start to the next token's start less trailing blanks (no literal ends
 * in one), which also covers 'a' <newline> 'b' continuations.
 */
static char *replace_literals(const char *sql)
{
	PgQueryScanResult sr = pg_query_scan(sql);
	if (sr.error) {
		pg_query_free_scan_result(sr);
		return NULL;
	}
	PgQuery__ScanResult *u =
	    pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	pg_query_free_scan_result(sr);
	if (!u)
		return NULL;

	size_t len = strlen(sql), lits = 0;
	uint64_t param = 0;
	bool ok = true;
	for (size_t i = 0; ok && i < u->n_tokens; i++) {
		const PgQuery__ScanToken *t = u->tokens[i];
		size_t next = i + 1 < u->n_tokens ? (size_t)u->tokens[i + 1]->start : len;
		ok = t->start >= 0 && (size_t)t->start < next && next <= len;
		if (!ok)
			break;
		if (is_literal(t->token)) {
			lits++;
		} else if (t->token == PG_QUERY__TOKEN__PARAM) {
			uint64_t v = 0;
			for (size_t k = (size_t)t->start + 1;
			     k < next && sql[k] >= '0' && sql[k] <= '9' && v < UINT32_MAX; k++)
				v = v * 10 + (uint64_t)(sql[k] - '0');
			if (v > param)
				param = v;
		}
	}
	/* "$" and at most 20 digits for each literal of at least one byte */
	char *out = ok ? malloc(len + lits * 21 + 1) : NULL;
	if (out) {
		size_t o = 0, pos = 0;
		for (size_t i = 0; i < u->n_tokens; i++) {
			const PgQuery__ScanToken *t = u->tokens[i];
			if (!is_literal(t->token))
				continue;
			size_t end = i + 1 < u->n_tokens ? (size_t)u->tokens[i + 1]->start : len;
			while (end > (size_t)t->start + 1 && is_blank(sql[end - 1]))
				end--;
			memcpy(out + o, sql + pos, (size_t)t->start - pos);
			o += (size_t)t->start - pos;
			o += (size_t)sprintf(out + o, "$%" PRIu64, ++param);
			pos = end;
		}
		memcpy(out + o, sql + pos, len - pos);
		out[o + len - pos] = '\0';
	}
	pg_query__scan_result__free_unpacked(u, NULL);
	return out;
}

static bool parses(const char *sql)
{
	PgQuerySplitResult r = pg_query_split_with_parser(sql);
	bool ok = !r.error;
	pg_query_free_split_result(r);
	return ok;
}

/*
 * The statement as it may be logged: constants as $n, or the unparsable
 * marker, never the raw text. pg_query_normalize gives the familiar
 * pg_stat_statements form but only replaces constants that are A_Const
 * nodes (not those of COMMENT ON, COPY, most DDL), so whatever literal it
 * leaves is replaced token by token; and for -(3) it replaces "-(" and
 * leaves "3)", which would merge into the $n before it, so a result that
 * no longer parses is redone by tokens from the original text instead.
 */
char *slowlog_normalise(const char *text, size_t len)
{
	if (!text)
		return strdup(SLOWLOG_UNPARSABLE);
	char *raw = strndup(text, len);
	if (!raw)
		return NULL;
	char *out = NULL;
	PgQueryNormalizeResult r = pg_query_normalize(raw);
	if (!r.error && r.normalized_query) {
		out = replace_literals(r.normalized_query);
		if (out && !parses(out)) {
			free(out);
			out = replace_literals(raw);
		}
	}
	pg_query_free_normalize_result(r);
	free(raw);
	return out ? out : strdup(SLOWLOG_UNPARSABLE);
}

/* ---- Lines ---- */

/* ISO-8601 UTC with milliseconds. Rounded to the microsecond first so a
 * double just below a millisecond boundary does not lose one. */
static void format_time(double ts, char *out, size_t size)
{
	if (!(ts >= 0) || ts > 253402300799.0) /* NaN, negative, past 9999 */
		ts = 0;
	int64_t us = llround(ts * 1e6);
	time_t sec = (time_t)(us / 1000000);
	int ms = (int)(us % 1000000 / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* A JSON string of a fixed-size record field, which may lack its NUL. */
static json_t *field(const char *s, size_t size)
{
	char buf[3 * 64 + 1];
	size_t n = strnlen(s, size < 64 ? size : 64);
	return json_stringn(buf, utf8_clean(s, n, buf));
}

static json_t *text_json(const char *s)
{
	size_t n = strlen(s);
	char *buf = malloc(3 * n + 1);
	if (!buf)
		return NULL;
	json_t *j = json_stringn(buf, utf8_clean(s, n, buf));
	free(buf);
	return j;
}

/* The record's line with its '\n', malloc'd; NULL when memory is short. */
static char *format_line(const struct slowlog_rec *r, size_t *len)
{
	char ts[64], fp[17];
	format_time(r->ts, ts, sizeof(ts));
	snprintf(fp, sizeof(fp), "%016" PRIx64, r->fingerprint);
	char *query = slowlog_normalise(r->text, r->text_len);
	json_t *o = json_object();
	if (!query || !o) {
		free(query);
		json_decref(o);
		return NULL;
	}
	/* json_object_set_new takes (and on failure frees) the value and
	 * fails on NULL, so one flag catches any allocation failure. */
	int bad = 0;
	bad |= json_object_set_new(o, "time", json_string(ts));
	bad |= json_object_set_new(o, "duration_ms", json_real((double)r->duration_us / 1000.0));
	bad |= json_object_set_new(o, "user", field(r->user, sizeof(r->user)));
	bad |= json_object_set_new(o, "database", field(r->database, sizeof(r->database)));
	bad |= json_object_set_new(o, "node", field(r->node, sizeof(r->node)));
	bad |= json_object_set_new(o, "application_name",
	                           field(r->application_name, sizeof(r->application_name)));
	bad |= json_object_set_new(o, "fingerprint", json_string(fp));
	bad |= json_object_set_new(
	    o, "rows", json_integer(r->rows > INT64_MAX ? INT64_MAX : (json_int_t)r->rows));
	bad |= json_object_set_new(o, "error", json_boolean(r->error));
	if (r->error)
		bad |= json_object_set_new(o, "sqlstate", field(r->sqlstate, sizeof(r->sqlstate)));
	bad |= json_object_set_new(o, "query", text_json(query));
	free(query);
	/* 15 significant digits print any duration under ~30 years exactly
	 * to the microsecond, where the default 17 shows binary noise. */
	char *s = bad ? NULL
	              : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	json_decref(o);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

/* ---- The file ---- */

static bool open_file(struct slowlog *s)
{
	s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0)
		return false;
	struct stat st;
	s->size = fstat(s->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return true;
}

/* path -> path.1 -> ... -> path.SLOWLOG_KEEP_FILES, the oldest overwritten.
 * The open descriptor follows the renamed file, so when the last rename
 * fails (say, the directory is read-only) the writer just goes on
 * appending to it and tries again after another max_bytes rather than on
 * every line. */
static void rotate(struct slowlog *s)
{
	for (int i = SLOWLOG_KEEP_FILES - 1; i >= 1; i--)
		(void)rename(s->rotated[i], s->rotated[i + 1]); /* ENOENT: fewer files yet */
	if (rename(s->path, s->rotated[1]) != 0) {
		s->rotate_at =
		    s->size > UINT64_MAX - s->max_bytes ? UINT64_MAX : s->size + s->max_bytes;
		return;
	}
	count(&s->rotations, 1);
	s->rotate_at = s->max_bytes;
	close(s->fd);
	(void)open_file(s); /* on failure fd is -1 and the next line retries */
}

static bool write_all(int fd, const char *buf, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t w = write(fd, buf + *done, len - *done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		*done += (size_t)w;
	}
	return true;
}

static bool append(struct slowlog *s, const char *line, size_t len)
{
	if (s->fd < 0 && !open_file(s))
		return false;
	/* A line longer than max_bytes still goes into an empty file. */
	if (s->max_bytes && s->size > 0 && s->size + len > s->rotate_at) {
		rotate(s);
		if (s->fd < 0)
			return false;
	}
	size_t done;
	bool ok = write_all(s->fd, line, len, &done);
	s->size += done;
	/* End a partial line so the next one still starts a JSON object. */
	if (!ok && done > 0 && write_all(s->fd, "\n", 1, &done))
		s->size += done;
	return ok;
}

/* ---- The recent lines ---- */

static void remember(struct slowlog *s, char *line)
{
	char *old = NULL;
	if (s->keep) {
		pthread_mutex_lock(&s->rmu);
		if (s->rn == s->keep) {
			old = s->recent[s->rhead];
			s->recent[s->rhead] = line;
			s->rhead = (s->rhead + 1) % s->keep;
		} else {
			s->recent[(s->rhead + s->rn) % s->keep] = line;
			s->rn++;
		}
		pthread_mutex_unlock(&s->rmu);
	} else {
		old = line;
	}
	free(old);
}

char **slowlog_recent(struct slowlog *s, size_t n, size_t *count_out)
{
	*count_out = 0;
	if (!s || !n || !s->keep)
		return NULL;
	pthread_mutex_lock(&s->rmu);
	size_t k = n < s->rn ? n : s->rn;
	char **out = k ? malloc(k * sizeof(*out)) : NULL;
	size_t got = 0;
	for (; out && got < k; got++) {
		out[got] = strdup(s->recent[(s->rhead + s->rn - k + got) % s->keep]);
		if (!out[got])
			break;
	}
	pthread_mutex_unlock(&s->rmu);
	if (out && got < k) {
		slowlog_free_lines(out, got);
		return NULL;
	}
	*count_out = k;
	return out;
}

void slowlog_free_lines(char **lines, size_t n)
{
	if (!lines)
		return;
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* ---- The writer ---- */

static void write_rec(struct slowlog *s, const struct slowlog_rec *r)
{
	size_t len = 0;
	char *line = format_line(r, &len);
	if (!line) {
		count(&s->dropped, 1);
		return;
	}
	if (!append(s, line, len)) {
		count(&s->dropped, 1);
		count(&s->write_errors, 1);
		free(line);
		return;
	}
	count(&s->written, 1);
	count(&s->bytes, len);
	line[len - 1] = '\0'; /* kept without its '\n' */
	remember(s, line);
}

static void *writer_main(void *arg)
{
	struct slowlog *s = arg;
	struct slowlog_rec batch[WRITER_BATCH];
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && (s->n == 0 || s->paused))
			pthread_cond_wait(&s->wake, &s->mu);
		if (s->n == 0)
			break; /* stopping, and everything is written */
		size_t k = 0;
		while (k < WRITER_BATCH && s->n) {
			batch[k++] = s->q[s->head];
			s->head = (s->head + 1) % s->cap;
			s->n--;
		}
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < k; i++) {
			write_rec(s, &batch[i]);
			free(batch[i].text);
		}
		pthread_mutex_lock(&s->mu);
		s->done += k;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->mu);
	/* No pg_query_exit(): libpg_query frees the thread's memory context
	 * in a thread-exit destructor, and calling it as well frees it twice. */
	return NULL;
}

bool slowlog_submit(struct slowlog *s, struct slowlog_rec *rec)
{
	char *text = rec->text;
	rec->text = NULL;
	if (!s) {
		free(text);
		return false;
	}
	bool queued = false;
	pthread_mutex_lock(&s->mu);
	if (s->n < s->cap) {
		struct slowlog_rec *slot = &s->q[(s->head + s->n) % s->cap];
		*slot = *rec;
		slot->text = text;
		slot->text_len = !text                              ? 0
		                 : rec->text_len > SLOWLOG_TEXT_MAX ? SLOWLOG_TEXT_MAX
		                                                    : rec->text_len;
		/* The writer only sleeps on an empty queue, so only the first
		 * record needs to wake it. */
		if (++s->n == 1)
			pthread_cond_signal(&s->wake);
		s->accepted++;
		queued = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (!queued) {
		count(&s->dropped, 1);
		free(text);
	}
	return queued;
}

void slowlog_flush(struct slowlog *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	uint64_t target = s->accepted;
	while (s->done < target)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

void slowlog_pause(struct slowlog *s, bool paused)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->paused = paused;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void slowlog_stats(struct slowlog *s, struct slowlog_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	out->written = atomic_load_explicit(&s->written, memory_order_relaxed);
	out->dropped = atomic_load_explicit(&s->dropped, memory_order_relaxed);
	out->rotations = atomic_load_explicit(&s->rotations, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
	out->write_errors = atomic_load_explicit(&s->write_errors, memory_order_relaxed);
}

/* ---- Open and close ---- */

static void free_log(struct slowlog *s)
{
	if (s->fd >= 0)
		close(s->fd);
	for (size_t i = 0; s->q && i < s->n; i++)
		free(s->q[(s->head + i) % s->cap].text);
	free(s->q);
	for (size_t i = 0; s->recent && i < s->rn; i++)
		free(s->recent[(s->rhead + i) % s->keep]);
	free(s->recent);
	for (int i = 1; i <= SLOWLOG_KEEP_FILES; i++)
		free(s->rotated[i]);
	free(s->path);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	free(s);
}

struct slowlog *slowlog_open_queue(const char *path, uint64_t max_bytes, size_t keep_lines,
                                   size_t queue_cap, char *err, size_t errlen)
{
	struct slowlog *s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, errlen, "allocating", path, ENOMEM);
		return NULL;
	}
	s->fd = -1;
	s->max_bytes = max_bytes;
	s->rotate_at = max_bytes;
	s->cap = queue_cap ? queue_cap : 1;
	s->keep = keep_lines;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->idle, NULL);
	atomic_init(&s->written, 0);
	atomic_init(&s->dropped, 0);
	atomic_init(&s->rotations, 0);
	atomic_init(&s->bytes, 0);
	atomic_init(&s->write_errors, 0);

	s->path = strdup(path);
	s->q = calloc(s->cap, sizeof(*s->q));
	bool ok = s->path && s->q && (!s->keep || (s->recent = calloc(s->keep, sizeof(char *))));
	size_t plen = strlen(path) + 8; /* ".N" and the NUL, with room to spare */
	for (int i = 1; ok && i <= SLOWLOG_KEEP_FILES; i++) {
		s->rotated[i] = malloc(plen);
		if ((ok = s->rotated[i] != NULL))
			snprintf(s->rotated[i], plen, "%s.%d", path, i);
	}
	if (!ok) {
		set_err(err, errlen, "allocating", path, ENOMEM);
		free_log(s);
		return NULL;
	}
	if (!open_file(s)) {
		set_err(err, errlen, "opening", path, errno);
		free_log(s);
		return NULL;
	}
	/* Signals are for the main thread; the writer never handles any. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&s->thread, NULL, writer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		set_err(err, errlen, "starting the writer thread", path, rc);
		free_log(s);
		return NULL;
	}
	pthread_setname_np(s->thread, "helios-slowlog");
	return s;
}

struct slowlog *slowlog_open(const char *path, uint64_t max_bytes, size_t keep_lines, char *err,
                             size_t errlen)
{
	return slowlog_open_queue(path, max_bytes, keep_lines, SLOWLOG_QUEUE_DEFAULT, err, errlen);
}

void slowlog_close(struct slowlog *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	free_log(s);
}
