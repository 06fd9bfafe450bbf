/*
 * A deterministic pseudo-random source for test inputs (xorshift64*),
 * seeded by assigning rng_state. One copy per test program.
 */
#ifndef HELIOS_RNG_TESTUTIL_H
#define HELIOS_RNG_TESTUTIL_H

#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

#endif
