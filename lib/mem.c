/* mem.c - aborting allocation wrappers (see mem.h); thread-safe. */
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "{\"level\":\"fatal\",\"module\":\"mem\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void *rp_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *rp_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *rp_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *rp_strndup(const char *s, size_t n) {
    char *d = rp_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *rp_strdup(const char *s) {
    return s ? rp_strndup(s, strlen(s)) : NULL;
}
