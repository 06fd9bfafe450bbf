/*
 * UTF-8 validation for text that arrives from the wire (user, database and
 * statement texts) on its way into JSON, log lines and metrics output, all
 * of which must be valid UTF-8. Pure; no allocation.
 */
#ifndef HELIOS_UTF8_H
#define HELIOS_UTF8_H

#include <stddef.h>

/* U+FFFD, what an invalid byte becomes */
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/* Length (1..4) of the valid UTF-8 sequence at s, n bytes left; 0 when it
 * is not one: overlong forms, surrogates, code points above U+10FFFF and a
 * sequence cut short included (jansson refuses all of them). */
size_t utf8_seq(const unsigned char *s, size_t n);

#endif
