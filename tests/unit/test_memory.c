/* Tests lib/memory.c (the process's memory figures) and the log's report line (rp_log_report),
 * which together answer SIGUSR1 (lib/process.c; the e2e test_memory_report.py sends it). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "memory.h"

#define MIB (1024 * 1024)

Test(memory, the_resident_set_counts_pages_once_touched) {
    rp_memory_t before, mapped, touched;
    rp_memory_read(&before);
    cr_assert_gt(before.resident, 0);
    size_t n = 16 * MIB;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    rp_memory_read(&mapped);
    memset(p, 1, n);
    rp_memory_read(&touched);
    /* mapped, nothing is resident yet; written, all of it is (give or take what else moved) */
    cr_assert_lt(mapped.resident, before.resident + 2 * MIB, "%zu -> %zu", before.resident, mapped.resident);
    cr_assert_gt(touched.resident, mapped.resident + 14 * MIB, "%zu -> %zu", mapped.resident, touched.resident);
    munmap(p, n);
}

Test(memory, the_heap_in_use_counts_live_blocks) {
    rp_memory_t before, held, after;
    rp_memory_read(&before);
    enum { N = 4096, SIZE = 1000 };
    /* written to, and through volatile pointers: a block the program never uses is one the
     * compiler may leave unallocated */
    static char *volatile small[N];
    for (int i = 0; i < N; i++)
        memset(small[i] = malloc(SIZE), 1, SIZE);
    char *volatile big = malloc(8 * MIB); /* above the mmap threshold: a block of its own */
    memset(big, 1, 8 * MIB);
    rp_memory_read(&held);
    cr_assert_geq(held.heap_in_use, before.heap_in_use + N * SIZE + 8 * MIB);
#if !defined(__SANITIZE_ADDRESS__) /* its allocator keeps no such count (lib/memory.c) */
    cr_assert_geq(held.heap_mmapped, before.heap_mmapped + 8 * MIB);
#endif
    for (int i = 0; i < N; i++)
        free(small[i]);
    free(big);
    rp_memory_read(&after);
    cr_assert_leq(after.heap_in_use, held.heap_in_use - N * SIZE - 8 * MIB);
    cr_assert_gt(after.heap_free, 0);
}

Test(log, a_report_is_written_whatever_the_level, .init = cr_redirect_stderr) {
    rp_log_set_level(RP_LOG_WARN);
    rp_log_set_component("test");
    rp_log(RP_LOG_INFO, "main", "not written at warn");
    rp_log_report("memory", json_pack("{s:I, s:I, s:s}", "pid", (json_int_t)42, "heapInUseBytes", (json_int_t)123456789,
                                      "level", "debug"));
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[1024];
    cr_assert(fgets(line, sizeof line, f), "nothing was written");
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    cr_assert(j, "not JSON: %s", line);
    cr_assert_str_eq(json_string_value(json_object_get(j, "module")), "memory");
    cr_assert_str_eq(json_string_value(json_object_get(j, "component")), "test");
    /* the line's own fields win over a member of the same name */
    cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), 42);
    cr_assert_eq(json_integer_value(json_object_get(j, "heapInUseBytes")), 123456789);
    cr_assert(json_is_string(json_object_get(j, "ts")));
    json_decref(j);
    cr_assert_null(fgets(line, sizeof line, f), "one line only, got also: %s", line);
}
