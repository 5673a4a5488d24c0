/* Tests workers/reward/event_cache.c: a kept event answers until its lifetime is over, is dropped
 * on demand, and never answers for another event, even one that shares its slot; the documents
 * it hands out outlive their slot. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "reward/event_cache.h"

static json_t *doc(const char *id) {
    return json_pack("{s:s, s:s}", "id", id, "updatedAt", "2026-01-01T00:00:00.000Z");
}

static const char *id_of(const json_t *d) {
    return json_string_value(json_object_get(d, "id"));
}

/* Asserts that c answers id at now_ms with want itself. */
static void assert_kept(rp_event_cache_t *c, const char *id, int64_t now_ms, const json_t *want) {
    json_t *got = rp_event_cache_get(c, id, now_ms);
    cr_assert_eq(got, want, "%s is kept, the same document", id);
    json_decref(got);
}

/* Frees c, then drops the test's references to a and b. */
static void done(rp_event_cache_t *c, json_t *a, json_t *b) {
    rp_event_cache_free(c);
    json_decref(a);
    json_decref(b);
}

Test(event_cache, a_kept_event_answers_until_its_lifetime_is_over) {
    rp_event_cache_t *c = rp_event_cache_new(1000, 64);
    json_t *d = doc("65f0a1b2c3d4e5f601234567");
    cr_assert_null(rp_event_cache_get(c, "65f0a1b2c3d4e5f601234567", 5000), "nothing kept yet");
    rp_event_cache_put(c, "65f0a1b2c3d4e5f601234567", d, 5000);
    json_t *got = rp_event_cache_get(c, "65f0a1b2c3d4e5f601234567", 5999);
    cr_assert_eq(got, d, "the same document, shared");
    json_decref(got);
    cr_assert_null(rp_event_cache_get(c, "65f0a1b2c3d4e5f601234567", 6000), "kept 1000 ms, no longer");
    rp_event_cache_free(c);
    cr_assert_eq(d->refcount, 1u, "the cache let go of its reference");
    json_decref(d);
}

Test(event_cache, forget_drops_one_event_only) {
    rp_event_cache_t *c = rp_event_cache_new(1000, 1024);
    json_t *a = doc("aaaaaaaaaaaaaaaaaaaaaaaa"), *b = doc("bbbbbbbbbbbbbbbbbbbbbbbb");
    rp_event_cache_put(c, "aaaaaaaaaaaaaaaaaaaaaaaa", a, 0);
    rp_event_cache_put(c, "bbbbbbbbbbbbbbbbbbbbbbbb", b, 0);
    rp_event_cache_forget(c, "aaaaaaaaaaaaaaaaaaaaaaaa");
    rp_event_cache_forget(c, "cccccccccccccccccccccccc"); /* never kept: nothing happens */
    cr_assert_null(rp_event_cache_get(c, "aaaaaaaaaaaaaaaaaaaaaaaa", 1));
    assert_kept(c, "bbbbbbbbbbbbbbbbbbbbbbbb", 1, b);
    done(c, a, b);
}

Test(event_cache, events_sharing_a_slot_never_answer_for_each_other) {
    rp_event_cache_t *c = rp_event_cache_new(1000, 1); /* one slot: every event shares it */
    json_t *a = doc("aaaaaaaaaaaaaaaaaaaaaaaa"), *b = doc("bbbbbbbbbbbbbbbbbbbbbbbb");
    rp_event_cache_put(c, "aaaaaaaaaaaaaaaaaaaaaaaa", a, 0);
    json_t *held = rp_event_cache_get(c, "aaaaaaaaaaaaaaaaaaaaaaaa", 1);
    rp_event_cache_put(c, "bbbbbbbbbbbbbbbbbbbbbbbb", b, 0);
    cr_assert_null(rp_event_cache_get(c, "aaaaaaaaaaaaaaaaaaaaaaaa", 1), "overwritten, not mistaken for b");
    cr_assert_str_eq(id_of(held), "aaaaaaaaaaaaaaaaaaaaaaaa", "a document handed out outlives its slot");
    json_decref(held);
    rp_event_cache_forget(c, "aaaaaaaaaaaaaaaaaaaaaaaa"); /* not the slot's event: b stays */
    assert_kept(c, "bbbbbbbbbbbbbbbbbbbbbbbb", 1, b);
    done(c, a, b);
}

Test(event_cache, a_lifetime_of_zero_keeps_nothing_and_odd_ids_are_never_keys) {
    rp_event_cache_t *off = rp_event_cache_new(0, 64);
    json_t *d = doc("aaaaaaaaaaaaaaaaaaaaaaaa");
    rp_event_cache_put(off, "aaaaaaaaaaaaaaaaaaaaaaaa", d, 0);
    cr_assert_null(rp_event_cache_get(off, "aaaaaaaaaaaaaaaaaaaaaaaa", 0), "EVENTS_CACHE_MS=0 reads every time");
    rp_event_cache_free(off);
    rp_event_cache_t *c = rp_event_cache_new(1000, 64);
    char long_id[64];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    rp_event_cache_put(c, long_id, d, 0);
    cr_assert_null(rp_event_cache_get(c, long_id, 0), "an id longer than an ObjectId is never kept");
    rp_event_cache_put(c, "aaaaaaaaaaaaaaaaaaaaaaaa", NULL, 0);
    cr_assert_null(rp_event_cache_get(c, "aaaaaaaaaaaaaaaaaaaaaaaa", 0), "no document, nothing kept");
    rp_event_cache_free(c);
    cr_assert_eq(d->refcount, 1u);
    json_decref(d);
}
