/* Tests of lib/sqlite_walbuf.c: a commit's WAL frames go out in a few writes instead of two per
 * page; other connections (on the default VFS) see every commit whole as soon as it returns; a
 * process killed right after its commits loses none of them, also when the transaction spilled
 * pages and rewrote them (SQLite then writes the frames' headers again after the commit frame);
 * a rolled-back spill leaves nothing behind; the pool's writer is opened on the VFS. Recovery is
 * forced by removing the -shm file, so that SQLite rebuilds the WAL index from the frames'
 * headers in the file, as after a crash of the machine's only connection. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlite_fixture.h"
#include "sqlite_util.h"
#include "sqlite_walbuf.h"

TestSuite(walbuf, .init = make_dir, .fini = remove_dir, .timeout = 60);

static void exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

/* A connection to path in WAL mode with synchronous=NORMAL, as the stores open theirs, on the
 * gathering VFS or (walbuf false) on the default one; cache_pages 0 keeps SQLite's default. */
static sqlite3 *open_on(bool walbuf, int cache_pages) {
    sqlite3 *db = NULL;
    const char *vfs = NULL;
    if (walbuf) cr_assert_not_null(vfs = rp_sqlite_walbuf_vfs());
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
    if (cache_pages > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA cache_size=%d", cache_pages);
        exec(db, sql);
    }
    return db;
}

static void assert_intact(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

/* The WAL's frame count after each commit, from the commit hook SQLite calls with it. */
static int wal_frames;
static int note_frames(void *arg, sqlite3 *db, const char *name, int frames) {
    (void)arg, (void)db, (void)name;
    wal_frames = frames;
    return SQLITE_OK;
}

Test(walbuf, a_commit_writes_its_frames_in_a_few_writes) {
    sqlite3 *db = open_on(true, 0);
    sqlite3_wal_hook(db, note_frames, NULL);
    exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    int before_frames = wal_frames;
    uint64_t writes0, bytes0, writes1, bytes1;
    rp_sqlite_walbuf_stats(&writes0, &bytes0);
    /* about 100 leaf pages of 4 KiB (each row nearly a page of its own): more than one buffer's
     * worth, so that a write of a full buffer is taken too (the default VFS fails longer ones) */
    exec(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
             "INSERT INTO t (v) SELECT randomblob(3000) FROM n; COMMIT");
    rp_sqlite_walbuf_stats(&writes1, &bytes1);
    int frames = wal_frames - before_frames;
    cr_assert_geq(frames, 100);
    /* every frame went out, header and page, and nothing else */
    cr_assert_eq(bytes1 - bytes0, (uint64_t)frames * (4096 + 24));
    /* two writes a frame without the VFS; with it, the frames up to the commit frame's header in
     * writes of up to RP_SQLITE_WALBUF_BYTES, then that frame's page */
    uint64_t most = (uint64_t)frames * (4096 + 24) / RP_SQLITE_WALBUF_BYTES + 2;
    cr_assert_leq(writes1 - writes0, most, "%d frames in %lu writes", frames, (unsigned long)(writes1 - writes0));
    sqlite3_close(db);
}

/* Another connection, on the default VFS, sees each commit whole right after it: a row count and
 * a running total kept in one row move together. Every 40 commits the reader checkpoints the
 * whole WAL and truncates it, so the writer starts the WAL over (its header at offset 0, then
 * frames from the start) many times. */
Test(walbuf, other_connections_see_each_commit_at_once) {
    sqlite3 *w = open_on(true, 0), *r = open_on(false, 0);
    exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); CREATE TABLE total (n INTEGER);"
            "INSERT INTO total VALUES (0)");
    for (int i = 1; i <= 400; i++) {
        exec(w, "BEGIN; INSERT INTO t (v) VALUES (randomblob(700)); UPDATE total SET n = n + 1; COMMIT");
        cr_assert_eq(scalar(r, "SELECT count(*) FROM t"), i);
        cr_assert_eq(scalar(r, "SELECT n FROM total"), i);
        if (i % 40 == 0) exec(r, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    assert_intact(r);
    sqlite3_close(w);
    sqlite3_close(r);
}

/* In a forked child nothing may assert (a failed assertion there would run the test framework in
 * the child): a failed statement ends the child with status 2 instead, which the parent reports. */
static void child_exec(sqlite3 *db, const char *sql) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) _exit(2);
}

/* Runs in a child: 30 small commits, then one large transaction on a 20-page cache that spills
 * pages to the WAL, changes the spilled rows again (SQLite rewrites their frames in place and, at
 * the commit, the headers of the frames from the first rewritten one on), and commits; then the
 * child dies at once, closing nothing. */
static void commit_then_die(void) {
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, rp_sqlite_walbuf_vfs()) != SQLITE_OK)
        _exit(2);
    child_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=20;"
                   "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)");
    for (int i = 0; i < 30; i++)
        child_exec(db, "INSERT INTO t (v, n) VALUES (randomblob(500), 1)");
    child_exec(db, "BEGIN; WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 2000) "
                   "INSERT INTO t (v, n) SELECT randomblob(500), 1 FROM k;"
                   "UPDATE t SET n = 2 WHERE id <= 1000; COMMIT");
    raise(SIGKILL);
    _exit(3);
}

static void remove_shm(void) {
    char shm[128];
    snprintf(shm, sizeof shm, "%s-shm", path);
    cr_assert_eq(unlink(shm), 0);
}

Test(walbuf, a_process_killed_after_its_commits_keeps_them) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) commit_then_die();
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child ended with status %d", status);
    remove_shm(); /* the next open rebuilds the WAL index from the frames in the file */
    sqlite3 *db = open_on(false, 0);
    cr_assert_eq(scalar(db, "SELECT count(*) FROM t"), 2030);
    cr_assert_eq(scalar(db, "SELECT sum(n) FROM t"), 2030 + 1000);
    assert_intact(db);
    sqlite3_close(db);
}

/* A transaction that spilled frames and was rolled back: its frames are gone from what anyone
 * reads, before and after recovery, and the next commit reads and writes as usual. */
Test(walbuf, a_rolled_back_spill_leaves_nothing) {
    sqlite3 *w = open_on(true, 20), *r = open_on(false, 0);
    exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER);"
            "INSERT INTO t (v, n) VALUES (randomblob(500), 1)");
    exec(w, "BEGIN; WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 1000) "
            "INSERT INTO t (v, n) SELECT randomblob(500), 1 FROM k");
    cr_assert_eq(scalar(w, "SELECT count(*) FROM t"), 1001); /* reads its own spilled frames */
    exec(w, "ROLLBACK");
    cr_assert_eq(scalar(r, "SELECT count(*) FROM t"), 1);
    exec(w, "INSERT INTO t (v, n) VALUES (randomblob(500), 5)");
    cr_assert_eq(scalar(r, "SELECT sum(n) FROM t"), 6);
    sqlite3_close(r);
    /* the files as the writer leaves them, recovered by a connection without the WAL index */
    sqlite3 *again = NULL;
    char copy[512];
    snprintf(copy, sizeof copy, "cp %s %s/copy.db && cp %s-wal %s/copy.db-wal", path, dir, path, dir);
    cr_assert_eq(system(copy), 0);
    snprintf(copy, sizeof copy, "%s/copy.db", dir);
    cr_assert_eq(sqlite3_open(copy, &again), SQLITE_OK);
    cr_assert_eq(scalar(again, "SELECT count(*) FROM t"), 2);
    cr_assert_eq(scalar(again, "SELECT sum(n) FROM t"), 6);
    assert_intact(again);
    sqlite3_close(again);
    sqlite3_close(w);
}

static rp_txn_end_t insert_rows(sqlite3 *db, void *arg, rp_err_t *err) {
    (void)arg;
    return rp_sqlite_exec(db,
                          "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 50) "
                          "INSERT INTO t (v) SELECT randomblob(1000) FROM k",
                          err)
               ? RP_TXN_COMMIT
               : RP_TXN_FAILED;
}

static const char *const t_steps[] = {"CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", NULL};

/* The stores' writes go through the pool's writer, which is opened on the gathering VFS. */
Test(walbuf, the_pools_writer_gathers) {
    rp_err_t err;
    rp_sqlite_pool_t *p = rp_sqlite_pool_new(path, (const rp_sqlite_schema_t[]){{"t", t_steps, 0}, {0}}, 2, &err);
    cr_assert_not_null(p, "%s", err.message);
    uint64_t writes0, bytes0, writes1, bytes1;
    rp_sqlite_walbuf_stats(&writes0, &bytes0);
    cr_assert(rp_sqlite_transact(p, insert_rows, NULL, &err), "%s", err.message);
    rp_sqlite_walbuf_stats(&writes1, &bytes1);
    cr_assert_geq(bytes1 - bytes0, 12 * (4096 + 24), "the writer's frames did not go through the VFS");
    cr_assert_leq(writes1 - writes0, 4);
    rp_sqlite_pool_free(p);
}
