/* memory.h - what a process's memory is made of: the heap as glibc counts it (mallinfo2) and the
 * resident set. The resident set alone cannot tell a leak from memory glibc keeps free in its
 * arenas for reuse (a grant worker's swings by 5 MiB with the batches while its heap in use stays
 * level; bench/README.md), so operators and the soak read both. */
#ifndef RP_LIB_MEMORY_H
#define RP_LIB_MEMORY_H

#include <stddef.h>

typedef struct rp_memory {
    size_t heap_in_use;  /* bytes allocated and not yet freed: arena chunks plus mmapped blocks */
    size_t heap_mmapped; /* of which in blocks of their own (MMAP_THRESHOLD and up), resident or
                          * not: a zeroed table is counted whole before it is touched */
    size_t heap_free;    /* bytes free in the arenas: kept for reuse until trimmed */
    size_t resident;     /* VmRSS; 0 when /proc cannot be read */
} rp_memory_t;

/* Reads the process's figures now. Takes each malloc arena's lock in turn while it counts (tens
 * of microseconds): for a sampler once a second or a scrape, not for a request's path. */
void rp_memory_read(rp_memory_t *m);
/* The heap figures only (resident left as it was): what a sampler needs between reports. */
void rp_memory_read_heap(rp_memory_t *m);

#endif
