/* store_handle.h - the allocation behind a store's handle: the backend's connection (a SQLite
 * pool, a MongoDB client pool) kept in front of the store interface's handle that callers hold,
 * so that no store needs a struct of its own to carry it (rp_sqlite_store_open and
 * rp_mongo_store_open use it). No shared state: thread-safe. */
#ifndef RP_LIB_STORE_HANDLE_H
#define RP_LIB_STORE_HANDLE_H

#include <stddef.h>

/* Returns a new copy of handle (handle_size bytes: the store interface's handle, its ops set),
 * aligned for any type, with backend (taken) kept in front of it and released by close when the
 * copy is freed. Free with rp_store_handle_free. */
void *rp_store_handle_new(void *backend, void (*close)(void *backend), const void *handle, size_t handle_size);
/* The backend of handle (borrowed, valid until the handle is freed). */
void *rp_store_handle_backend(void *handle);
/* Closes the backend and frees the handle. Accepts NULL. */
void rp_store_handle_free(void *handle);

#endif
