/* mem.h - allocation wrappers that abort on exhaustion, so error paths stay for real errors; thread-safe. */
#ifndef RP_LIB_MEM_H
#define RP_LIB_MEM_H

#include <stddef.h>

/* malloc/calloc/realloc that never return NULL (abort with a log line instead). Free with free(). */
void *rp_malloc(size_t n);
void *rp_calloc(size_t count, size_t size);
void *rp_realloc(void *p, size_t n);
/* Copies a NUL-terminated string; NULL in gives NULL out. Free with free(). */
char *rp_strdup(const char *s);
/* Copies n bytes and appends a NUL. Free with free(). */
char *rp_strndup(const char *s, size_t n);

#endif
