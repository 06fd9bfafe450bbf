/*
 * Slab pages are 256 KiB of anonymous memory; objects are linked through
 * their first word while free. Pages are kept for the life of the worker:
 * the peak number of connections bounds them.
 */
#include "dataplane/rt/slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under AddressSanitizer each object comes from calloc so use-after-free
 * and leaks of clients are still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_USE_MALLOC 1
#endif
#endif

#define SLAB_PAGE (256u * 1024u)

void slab_init(struct slab *s, size_t obj_size)
{
	s->obj_size = (obj_size + 15) & ~(size_t)15;
	s->free_list = NULL;
	s->pages = 0;
}

void *slab_alloc(struct slab *s)
{
#ifdef SLAB_USE_MALLOC
	return calloc(1, s->obj_size);
#endif
	if (!s->free_list) {
		char *page = mmap(NULL, SLAB_PAGE, PROT_READ | PROT_WRITE,
		                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			return NULL;
		s->pages++;
		for (size_t off = 0; off + s->obj_size <= SLAB_PAGE; off += s->obj_size) {
			*(void **)(page + off) = s->free_list;
			s->free_list = page + off;
		}
	}
	void *p = s->free_list;
	s->free_list = *(void **)p;
	memset(p, 0, s->obj_size);
	return p;
}

void slab_free(struct slab *s, void *p)
{
#ifdef SLAB_USE_MALLOC
	free(p);
	return;
#endif
	*(void **)p = s->free_list;
	s->free_list = p;
}
