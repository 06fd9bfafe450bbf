/*
 * libFuzzer target: pgw_parse_startup on arbitrary bytes. Beyond memory
 * safety it checks the parser's promises: results only from bytes it was
 * given, every returned string terminated inside the packet, a reason on BAD.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/pg/pgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* s must lie inside buf[0..total) and be NUL-terminated there. */
static void check_str(const uint8_t *buf, uint32_t total, const char *s)
{
	if (!s)
		return;
	const uint8_t *p = (const uint8_t *)s;
	if (p < buf || p >= buf + total || !memchr(p, 0, (size_t)(buf + total - p)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pgw_startup st;
	const char *why = NULL;

	switch (pgw_parse_startup(data, size, &st, &why)) {
	case PGW_OK:
		if (why || st.total < 8 || st.total > size || st.total > PGW_MAX_STARTUP)
			abort();
		if (st.code == PGW_SSL_REQUEST || st.code == PGW_GSSENC_REQUEST) {
			if (st.total != 8)
				abort();
			break;
		}
		if (st.code == PGW_CANCEL_REQUEST) {
			if (st.total != 16)
				abort();
			break;
		}
		if (st.code >> 16 != 3 || !st.user || !st.user[0] || !st.database ||
		    !st.database[0] || st.n_params < 0 || st.n_params > PGW_MAX_PARAMS)
			abort();
		/* The packet must end with the list terminator. */
		if (data[st.total - 1] != 0)
			abort();
		check_str(data, st.total, st.user);
		check_str(data, st.total, st.database);
		for (int i = 0; i < st.n_params; i++) {
			check_str(data, st.total, st.params[i].name);
			check_str(data, st.total, st.params[i].value);
			if (!st.params[i].name[0])
				abort();
		}
		break;
	case PGW_NEED_MORE:
		/* Only a packet whose declared length exceeds what we have may wait. */
		if (why)
			abort();
		if (size >= 4) {
			uint32_t len = pgw_get_u32(data);
			if (len < 8 || len > PGW_MAX_STARTUP || len <= size)
				abort();
		}
		break;
	case PGW_BAD:
		if (!why || !why[0])
			abort();
		break;
	default:
		abort();
	}
	return 0;
}
