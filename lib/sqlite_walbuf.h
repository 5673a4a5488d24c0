/* sqlite_walbuf.h - a SQLite VFS over the default one ("unix") that gathers the frames a
 * connection appends to its write-ahead log and writes them in about two system calls at the
 * commit, instead of two per page (SQLite writes each frame's 24-byte header, then its page). Everything
 * else goes through to the default VFS unchanged, and the files are ordinary SQLite files that
 * connections on any VFS may share. Thread-safe to register; each file belongs to its connection.
 *
 * Why: on the virtual machines this runs on a system call costs microseconds, and a group commit
 * of ~40 grants wrote ~400 of them, on the one thread every write of a file waits for
 * (bench/README.md, 2026-12-04 fourth sitting).
 *
 * What keeps it correct: SQLite makes a transaction's frames visible to other connections only
 * through the wal-index (shared memory), and only after sqlite3WalFrames has written every frame
 * of the commit; the last frame it writes is the commit frame, whose header carries the database
 * size. The gathered bytes are written out when that frame's page arrives, so they are in the
 * file before any reader can look for them. Before anything else that reads or shapes the WAL
 * through this file (a read, a sync, a truncate, its size, a file control, the close) they are
 * written out too, so the connection itself never reads a frame it gathered; a write that does not
 * extend the gathered bytes (SQLite rewriting a frame of the same transaction) writes them out
 * first and keeps the order. Frames of a transaction that spills its cache before its commit wait
 * in the buffer, or are written when it fills: either way no reader looks at them before the
 * commit. A failed write fails the call that made it, as a direct write would have. */
#ifndef RP_LIB_SQLITE_WALBUF_H
#define RP_LIB_SQLITE_WALBUF_H

#include <stdint.h>

/* The bytes a connection gathers before it writes them out regardless of a commit: 31 frames of
 * 4 KiB pages. Allocated at its first WAL write, freed with the connection. The default VFS takes
 * at most 128 KiB - 1 per write: os_unix.c keeps the low 17 bits of the length, so a longer write
 * goes out short and SQLite reports the disk full (seen with 256 KiB). */
#define RP_SQLITE_WALBUF_BYTES (127 * 1024)

/* Registers the VFS (not as the default) on the first call and returns its name, to pass to
 * sqlite3_open_v2; NULL if SQLite has no default VFS or refused it (then open on the default). */
const char *rp_sqlite_walbuf_vfs(void);

/* How many writes this process's connections on the VFS have made to their WAL files since it
 * was registered (each one a pwrite of one or more frames), and how many bytes they carried. */
void rp_sqlite_walbuf_stats(uint64_t *writes, uint64_t *bytes);

#endif
