/* memory.c - the process's memory figures (see memory.h). */
#include "memory.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

void rp_memory_read(rp_memory_t *m) {
    struct mallinfo2 mi = mallinfo2();
    m->heap_in_use = mi.uordblks + mi.hblkhd;
    m->heap_mmapped = mi.hblkhd;
    m->heap_free = mi.fordblks;
    m->resident = 0;
    /* statm's second field is the resident set in pages: one short read, no parsing of status */
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return;
    unsigned long size, resident;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2) m->resident = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    fclose(f);
}
