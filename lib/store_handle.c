/* store_handle.c - a store's handle with its backend in front (see store_handle.h). */
#include "store_handle.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* One allocation: the backend, then the interface's handle (what callers hold). */
typedef struct block {
    void *backend;
    void (*close)(void *backend);
    max_align_t handle[];
} block_t;

static block_t *block_of(void *handle) {
    return (block_t *)(void *)((char *)handle - offsetof(block_t, handle));
}

void *rp_store_handle_new(void *backend, void (*close)(void *backend), const void *handle, size_t handle_size) {
    block_t *b = rp_malloc(sizeof *b + handle_size);
    b->backend = backend;
    b->close = close;
    memcpy(b->handle, handle, handle_size);
    return b->handle;
}

void *rp_store_handle_backend(void *handle) {
    return block_of(handle)->backend;
}

void rp_store_handle_free(void *handle) {
    if (!handle) return;
    block_t *b = block_of(handle);
    b->close(b->backend);
    free(b);
}
