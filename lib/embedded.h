/* embedded.h - the JSON Schemas of schemas/ compiled into every binary (generated at build time
 * by schemas/embed.sh); constant data. */
#ifndef RP_LIB_EMBEDDED_H
#define RP_LIB_EMBEDDED_H

#include <stddef.h>

typedef struct rp_embedded_file {
    const char *name; /* file name without ".json", e.g. "auth.register" */
    const char *data; /* the file's bytes, NUL-terminated */
    size_t len;
} rp_embedded_file_t;

/* Terminated by an entry whose name is NULL. */
extern const rp_embedded_file_t rp_embedded_schemas[];

#endif
