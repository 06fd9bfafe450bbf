/*
 * Per-worker slabs: fixed-size objects carved from mmap'd pages, apart from
 * the malloc heap, so long-lived objects (a client per connection) are not
 * interleaved with short-lived login buffers that would leave holes the
 * heap can never give back. Single-threaded: one slab per worker.
 */
#ifndef HELIOS_SLAB_H
#define HELIOS_SLAB_H

#include <stddef.h>

struct slab {
	size_t obj_size;
	void *free_list;
	size_t pages;
};

void slab_init(struct slab *s, size_t obj_size);
/* A zeroed object, or NULL when out of memory. */
void *slab_alloc(struct slab *s);
void slab_free(struct slab *s, void *p);

#endif
