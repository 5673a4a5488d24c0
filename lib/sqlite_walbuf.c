/* sqlite_walbuf.c - the WAL-gathering VFS (see sqlite_walbuf.h). A file of this VFS wraps the
 * default VFS's file for the same path; only files opened as a write-ahead log gather writes,
 * every other file and every other method goes straight through. A file is used by one
 * connection, which SQLite uses from one thread at a time, so a file needs no lock; the counters
 * are atomic. */
#include "sqlite_walbuf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define VFS_NAME "rp-walbuf"
#define WAL_HEADER_BYTES 32   /* the log's own header, at offset 0 */
#define FRAME_HEADER_BYTES 24 /* before each page: its number, the database size after a commit, ... */

typedef struct walbuf_file {
    sqlite3_file base;  /* first: SQLite sees this */
    sqlite3_file *real; /* the default VFS's file, in the bytes after this struct */
    bool wal;           /* gathers its writes */
    bool after_commit;  /* the last write was a commit frame's header: its page comes next */
    unsigned char *buf; /* RP_SQLITE_WALBUF_BYTES once the first write came, else NULL */
    int len;            /* buf[0..len) belongs at offset at of the file */
    sqlite3_int64 at;
} walbuf_file_t;

/* The struct rounded up so that the real file after it is aligned as the struct is. */
#define HEAD_BYTES ((sizeof(walbuf_file_t) + 15) & ~(size_t)15)

static sqlite3_vfs vfs;
static sqlite3_vfs *base_vfs;
static const char *vfs_name;
static pthread_once_t registered = PTHREAD_ONCE_INIT;
static _Atomic uint64_t stat_writes, stat_bytes;

/* One write of the real file, counted in the stats. */
static int write_through(walbuf_file_t *f, const void *data, int amt, sqlite3_int64 off) {
    int rc = f->real->pMethods->xWrite(f->real, data, amt, off);
    if (rc == SQLITE_OK) {
        atomic_fetch_add(&stat_writes, 1);
        atomic_fetch_add(&stat_bytes, (uint64_t)amt);
    }
    return rc;
}

/* Writes out what the file gathered. On failure the gathered bytes are dropped, as a direct write
 * that failed would have left them unwritten, and the caller returns the error: SQLite then
 * abandons the transaction those frames belonged to. */
static int flush(walbuf_file_t *f) {
    if (f->len == 0) return SQLITE_OK;
    int rc = write_through(f, f->buf, f->len, f->at);
    f->len = 0;
    return rc;
}

static bool is_commit_header(const void *data, int amt, sqlite3_int64 off) {
    if (amt != FRAME_HEADER_BYTES || off < WAL_HEADER_BYTES) return false;
    const unsigned char *h = data;
    return (h[4] | h[5] | h[6] | h[7]) != 0; /* the database size after the commit, big-endian */
}

/* A write that extends the gathered bytes joins them; any other writes them out first, so the
 * file receives every write in SQLite's order. A commit frame's header writes out everything up to
 * it at once, and its page right after it: a commit frame is written only at the end of a commit
 * (appended, then its header written again when SQLite recomputes the checksums of frames the
 * transaction overwrote), and no write may wait past the commit, since the next thing SQLite does
 * is to publish the frames to the other connections, and a process that died with a header
 * unwritten would lose the commit at recovery. */
static int walbuf_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    if (!f->wal) return f->real->pMethods->xWrite(f->real, data, amt, off);
    bool commit_page = f->after_commit;
    bool commit_header = is_commit_header(data, amt, off);
    f->after_commit = commit_header;
    int rc = SQLITE_OK;
    if (f->len > 0 && (off != f->at + f->len || amt > RP_SQLITE_WALBUF_BYTES - f->len)) rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    if (amt > RP_SQLITE_WALBUF_BYTES) return write_through(f, data, amt, off);
    if (!f->buf) f->buf = rp_malloc(RP_SQLITE_WALBUF_BYTES);
    if (f->len == 0) f->at = off;
    memcpy(f->buf + f->len, data, (size_t)amt);
    f->len += amt;
    return commit_header || commit_page ? flush(f) : SQLITE_OK;
}

/* Every other method of a WAL file writes out what it gathered first, so that what it reads,
 * syncs, sizes or truncates is the file SQLite wrote. */
static int walbuf_close(sqlite3_file *file) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    /* nothing gathered here was committed (a commit writes out at once): a transaction that was
     * never committed leaves its frames behind, and nobody reads them */
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
    return f->real->pMethods->xClose(f->real);
}

static int walbuf_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, data, amt, off);
}

static int walbuf_truncate(sqlite3_file *file, sqlite3_int64 size) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int walbuf_sync(sqlite3_file *file, int flags) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int walbuf_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int walbuf_file_control(sqlite3_file *file, int op, void *arg) {
    walbuf_file_t *f = (walbuf_file_t *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int walbuf_lock(sqlite3_file *file, int level) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xLock(r, level);
}

static int walbuf_unlock(sqlite3_file *file, int level) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xUnlock(r, level);
}

static int walbuf_check_reserved_lock(sqlite3_file *file, int *out) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xCheckReservedLock(r, out);
}

static int walbuf_sector_size(sqlite3_file *file) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xSectorSize(r);
}

static int walbuf_device_characteristics(sqlite3_file *file) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xDeviceCharacteristics(r);
}

/* The shared-memory and memory-map methods serve the database file, never its log. */
static int walbuf_shm_map(sqlite3_file *file, int page, int page_size, int extend, void volatile **out) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xShmMap(r, page, page_size, extend, out);
}

static int walbuf_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void walbuf_shm_barrier(sqlite3_file *file) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    r->pMethods->xShmBarrier(r);
}

static int walbuf_shm_unmap(sqlite3_file *file, int delete_flag) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xShmUnmap(r, delete_flag);
}

static int walbuf_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xFetch(r, off, amt, out);
}

static int walbuf_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p) {
    sqlite3_file *r = ((walbuf_file_t *)file)->real;
    return r->pMethods->xUnfetch(r, off, p);
}

/* iVersion is the real file's, at most 3 (the methods below cover up to 3): SQLite calls no
 * method a file's version lacks. One table per version. */
#define WALBUF_METHODS(version)                                                                                        \
    {                                                                                                                  \
        version, walbuf_close, walbuf_read, walbuf_write, walbuf_truncate, walbuf_sync, walbuf_file_size, walbuf_lock, \
            walbuf_unlock, walbuf_check_reserved_lock, walbuf_file_control, walbuf_sector_size,                        \
            walbuf_device_characteristics, walbuf_shm_map, walbuf_shm_lock, walbuf_shm_barrier, walbuf_shm_unmap,      \
            walbuf_fetch, walbuf_unfetch                                                                               \
    }
static const sqlite3_io_methods methods_by_version[4] = {WALBUF_METHODS(0), WALBUF_METHODS(1), WALBUF_METHODS(2),
                                                         WALBUF_METHODS(3)};

static int walbuf_open(sqlite3_vfs *self, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
    (void)self;
    walbuf_file_t *f = (walbuf_file_t *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)((char *)file + HEAD_BYTES);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
    /* SQLite closes a file whose methods are set even when its open failed */
    if (f->real->pMethods) {
        int version = f->real->pMethods->iVersion;
        f->base.pMethods = &methods_by_version[version < 0 ? 0 : version > 3 ? 3 : version];
    } else {
        f->base.pMethods = NULL;
    }
    return rc;
}

static void register_vfs(void) {
    base_vfs = sqlite3_vfs_find(NULL);
    if (!base_vfs) return;
    vfs = *base_vfs; /* every other method and field is the default VFS's */
    vfs.szOsFile = (int)HEAD_BYTES + base_vfs->szOsFile;
    vfs.zName = VFS_NAME;
    vfs.pNext = NULL;
    vfs.xOpen = walbuf_open;
    if (sqlite3_vfs_register(&vfs, 0) == SQLITE_OK) vfs_name = VFS_NAME;
}

const char *rp_sqlite_walbuf_vfs(void) {
    pthread_once(&registered, register_vfs);
    return vfs_name;
}

void rp_sqlite_walbuf_stats(uint64_t *writes, uint64_t *bytes) {
    if (writes) *writes = atomic_load(&stat_writes);
    if (bytes) *bytes = atomic_load(&stat_bytes);
}
