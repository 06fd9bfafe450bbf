/*
 * Shared by the unit tests of the data plane's buffers (test_endpoint.c,
 * test_io_sendv.c): a heap chunk holding a C string's bytes. Include it
 * after cmocka and dataplane/io/io.h.
 */
#ifndef HELIOS_TESTS_CHUNK_TESTUTIL_H
#define HELIOS_TESTS_CHUNK_TESTUTIL_H

#include <string.h>

static inline struct io_chunk *chunk_of(const char *s)
{
	size_t n = strlen(s);
	struct io_chunk *c = io_chunk_new((uint32_t)n);
	assert_non_null(c);
	memcpy(c->data, s, n);
	c->len = (uint32_t)n;
	return c;
}

#endif
