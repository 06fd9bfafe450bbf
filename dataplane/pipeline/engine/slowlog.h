/*
 * The slow query log: one JSON object per line, appended to a file by a
 * dedicated writer thread so that workers never block on file I/O (or on
 * the parser). A worker fills a struct slowlog_rec and hands it over with
 * slowlog_submit, which only copies the record into a bounded queue under
 * a mutex held for a few instructions; when the queue is full the record
 * is dropped and counted instead of waiting.
 *
 * The raw statement text is never written: the writer replaces every
 * constant with $n (pg_query_normalize, then libpg_query's scanner for any
 * literal normalisation leaves behind, e.g. in COMMENT ON or COPY), and
 * writes "<unparsable statement>" for text that does not parse, including
 * text cut at SLOWLOG_TEXT_MAX in the middle of a statement. Comments are
 * kept as pg_stat_statements keeps them (they carry routing hints).
 *
 * A line, keys always in this order (sqlstate only when error is true):
 *   {"time":"2024-05-01T12:34:56.789Z","duration_ms":1234.567,"user":"u",
 *    "database":"d","node":"n","application_name":"a",
 *    "fingerprint":"0123456789abcdef","rows":3,"error":true,
 *    "sqlstate":"57014","query":"SELECT * FROM t WHERE id = $1"}
 * Strings that are not valid UTF-8 have the offending bytes replaced by
 * U+FFFD so every line is valid JSON.
 *
 * The file is opened with O_APPEND and created with mode 0600. Before a
 * line that would take it past max_bytes it is rotated by renaming: path ->
 * path.1 -> path.2 -> path.3, the oldest dropped (a single line longer than
 * max_bytes still goes, alone, into a fresh file). A failed write is
 * counted and the line dropped; the writer never stops or crashes on I/O
 * errors and retries opening the file on the next line.
 */
#ifndef HELIOS_SLOWLOG_H
#define HELIOS_SLOWLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLOWLOG_TEXT_MAX      8192 /* statement bytes kept per record */
#define SLOWLOG_KEEP_FILES    3    /* rotated files kept: path.1 .. path.3 */
#define SLOWLOG_QUEUE_DEFAULT 1024 /* records slowlog_open queues at most */
#define SLOWLOG_UNPARSABLE    "<unparsable statement>"

struct slowlog_rec {
	double ts; /* unix seconds when the statement finished */
	uint64_t duration_us;
	/* NUL-terminated; longer names are cut (slowlog_rec_set copies safely) */
	char user[64], database[64], node[64], application_name[64];
	uint64_t fingerprint;
	uint64_t rows;
	bool error;
	char sqlstate[6]; /* "" when none */
	/* Owned copy (malloc), freed by the log; at most SLOWLOG_TEXT_MAX bytes
	 * are looked at. Need not be NUL-terminated; text stops at a NUL. */
	char *text;
	size_t text_len;
};

/* Fills rec's fixed-size strings (NULL means "") and sets rec->text to a
 * malloc'd copy of the first SLOWLOG_TEXT_MAX bytes of text[0..len); the
 * rest of rec is left alone. False (rec->text NULL) when memory is short:
 * the record can still be submitted and is logged as unparsable. Runs on
 * the worker, so it only copies. */
bool slowlog_rec_set(struct slowlog_rec *rec, const char *user, const char *database,
                     const char *node, const char *application_name, const char *text, size_t len);

/* The statement with every literal replaced by $n (pg_query_normalize,
 * then the literals it leaves: COMMENT, COPY paths, DDL defaults, ...);
 * SLOWLOG_UNPARSABLE when that cannot be done safely. malloc'd; NULL only
 * when out of memory. Used for the slow log and for analytics' text. */
char *slowlog_normalise(const char *text, size_t len);

struct slowlog;

/*
 * Opens (creating it 0600) the file to append to and starts the writer
 * thread. max_bytes: rotate before a line would take the file past it (0:
 * never rotate); keep_lines: how many recent lines to keep in memory for
 * slowlog_recent (0: none). NULL with a message in err on failure (the
 * file cannot be opened, no memory, no thread).
 */
struct slowlog *slowlog_open(const char *path, uint64_t max_bytes, size_t keep_lines, char *err,
                             size_t errlen);
/* As slowlog_open with a queue of queue_cap records (at least 1). */
struct slowlog *slowlog_open_queue(const char *path, uint64_t max_bytes, size_t keep_lines,
                                   size_t queue_cap, char *err, size_t errlen);
/* Writes every queued record, joins the thread, frees everything. No
 * slowlog_submit may run concurrently with or after it. NULL is fine. */
void slowlog_close(struct slowlog *s);

/*
 * From any thread: queues a copy of *rec and takes rec->text, which is
 * NULL afterwards whatever happens. False when the record was dropped
 * (queue full: counted in dropped) or s is NULL (logging off: not
 * counted); the text is freed then.
 */
bool slowlog_submit(struct slowlog *s, struct slowlog_rec *rec);

/* The last min(n, keep_lines) lines written (most recent last, without
 * '\n'), as a malloc'd array of malloc'd strings; *count gets how many.
 * NULL with *count 0 when there are none or memory is short. Thread-safe. */
char **slowlog_recent(struct slowlog *s, size_t n, size_t *count);
void slowlog_free_lines(char **lines, size_t count);

struct slowlog_stats {
	uint64_t written;      /* lines written */
	uint64_t dropped;      /* records not written: queue full or I/O error */
	uint64_t rotations;    /* files rotated */
	uint64_t bytes;        /* bytes written since open, all files */
	uint64_t write_errors; /* of dropped: lost to a failed open or write */
};
void slowlog_stats(struct slowlog *s, struct slowlog_stats *out);

/* Test hook: waits until everything submitted so far is written (or
 * dropped by an I/O error). Never call it while paused. */
void slowlog_flush(struct slowlog *s);
/* Test hook: while paused the writer takes nothing off the queue, so a
 * test can fill it; slowlog_close still writes everything. */
void slowlog_pause(struct slowlog *s, bool paused);

#endif
