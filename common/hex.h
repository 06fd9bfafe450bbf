/*
 * Lowercase hex of bytes (digests in logs, file names and reports).
 */
#ifndef HELIOS_HEX_H
#define HELIOS_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2 * n hex digits and a NUL to out. */
static inline void hex_encode(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

#endif
