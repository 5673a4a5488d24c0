/* ids.c - ObjectIds and random hex (see ids.h); one atomic counter and a lazily drawn process id. */
#include "ids.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static unsigned char process_bytes[5];
static atomic_uint counter;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_process(void) {
    randombytes_buf(process_bytes, sizeof process_bytes);
    atomic_store(&counter, randombytes_uniform(0xFFFFFF));
}

void rp_oid_new(char out[RP_OID_LEN]) {
    pthread_once(&once, init_process);
    uint32_t t = (uint32_t)time(NULL);
    uint32_t c = atomic_fetch_add(&counter, 1) & 0xFFFFFF;
    unsigned char b[12] = {(unsigned char)(t >> 24), (unsigned char)(t >> 16), (unsigned char)(t >> 8),
                           (unsigned char)t,         process_bytes[0],         process_bytes[1],
                           process_bytes[2],         process_bytes[3],         process_bytes[4],
                           (unsigned char)(c >> 16), (unsigned char)(c >> 8),  (unsigned char)c};
    sodium_bin2hex(out, RP_OID_LEN, b, sizeof b);
}

bool rp_oid_valid(const char *s, size_t len) {
    if (!s || len != 24) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return false;
    }
    return true;
}

/* Each thread draws its random bytes from the kernel RANDOM_POOL at a time and hands them out in
 * order, each byte once: libsodium's randombytes_buf is one getrandom system call per call, and
 * every request without an X-Request-Id drew one for its id (1.7 % of an embedded claim's
 * samples; bench/README.md, 2026-12-05 sixth sitting). The bytes are the kernel's as before. */
#define RANDOM_POOL 512

static _Thread_local unsigned char pool[RANDOM_POOL];
static _Thread_local size_t pool_used = RANDOM_POOL;

void rp_random_hex(char *out, size_t nbytes) {
    assert(nbytes <= 64);
    if (pool_used + nbytes > RANDOM_POOL) {
        randombytes_buf(pool, sizeof pool);
        pool_used = 0;
    }
    sodium_bin2hex(out, nbytes * 2 + 1, pool + pool_used, nbytes);
    sodium_memzero(pool + pool_used, nbytes); /* handed out: not kept for anyone to find */
    pool_used += nbytes;
}
