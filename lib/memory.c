/* memory.c - the process's memory figures (see memory.h). */
#include "memory.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* from libasan (compiler-rt's sanitizer/allocator_interface.h, which GCC does not install) */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t __sanitizer_get_free_bytes(void);

/* AddressSanitizer brings an allocator of its own, of which glibc's mallinfo2 counts nothing:
 * its own statistics stand in (the tests run such builds), nothing counted as mapped apart. */
void rp_memory_read_heap(rp_memory_t *m) {
    m->heap_in_use = __sanitizer_get_current_allocated_bytes();
    m->heap_mmapped = 0;
    m->heap_free = __sanitizer_get_free_bytes();
}
#else
void rp_memory_read_heap(rp_memory_t *m) {
    struct mallinfo2 mi = mallinfo2();
    m->heap_in_use = mi.uordblks + mi.hblkhd;
    m->heap_mmapped = mi.hblkhd;
    m->heap_free = mi.fordblks;
}
#endif

void rp_memory_read(rp_memory_t *m) {
    rp_memory_read_heap(m);
    m->resident = 0;
    /* statm's second field is the resident set in pages: one short read, no parsing of status */
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return;
    unsigned long size, resident;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2) m->resident = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    fclose(f);
}
