/*
 * A growable text/byte buffer for building replies off the hot path
 * (admin HTTP, helioctl output, console rows). An allocation failure sets
 * ->oom and later appends do nothing, so callers check once at the end.
 */
#ifndef HELIOS_SBUF_H
#define HELIOS_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *p; /* NUL-terminated while !oom */
	size_t len, cap;
	bool oom;
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b); /* len = 0, keeps memory */
void sbuf_append(struct sbuf *b, const void *data, size_t len);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_putc(struct sbuf *b, char c);
__attribute__((format(printf, 2, 3))) void sbuf_printf(struct sbuf *b, const char *fmt, ...);
/* Hands the buffer over (caller frees); the sbuf is empty afterwards. NULL on oom. */
char *sbuf_take(struct sbuf *b, size_t *len);

#endif
