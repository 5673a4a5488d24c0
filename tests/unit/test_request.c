/* Tests workers/reward/request.c: the grant's records and the JSON the API and game servers see
 * of them (the only place that JSON is made). */
#include <criterion/criterion.h>
#include <string.h>

#include "reward/request.h"

static void sample(rp_request_t *r) {
    rp_request_init(r);
    snprintf(r->id, sizeof r->id, "5f00000000000000000000a1");
    snprintf(r->user_id, sizeof r->user_id, "5f0000000000000000000001");
    snprintf(r->event_id, sizeof r->event_id, "5f00000000000000000000e1");
    snprintf(r->period_key, sizeof r->period_key, "D:2026-01-02");
    r->status = RP_REQ_SUCCESS;
    r->nrewards = 2;
    r->rewards[0] =
        (rp_claimed_reward_t){0, "5f00000000000000000000d0", "Gold", "CURRENCY", json_pack("{s:i}", "g", 5), 2};
    r->rewards[1] = (rp_claimed_reward_t){3, "5f00000000000000000000d1", "Badge", "ITEM", json_string("b"), 1};
    r->requested_at = r->created_at = r->updated_at = 1767323045000;
    r->processed_at = 1767323046000;
}

Test(request, the_api_shape_with_nulls_for_what_is_absent) {
    rp_request_t r;
    sample(&r);
    json_t *j = rp_request_to_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "SUCCESS");
    cr_assert_str_eq(json_string_value(json_object_get(j, "requestedAt")), "2026-01-02T03:04:05.000Z");
    cr_assert_str_eq(json_string_value(json_object_get(j, "processedAt")), "2026-01-02T03:04:06.000Z");
    cr_assert(json_is_null(json_object_get(j, "processorId")), "\"\" = the system = null");
    cr_assert(json_is_null(json_object_get(j, "failureReason")));
    cr_assert(json_is_null(json_object_get(j, "failureDetails")));
    cr_assert(json_is_null(json_object_get(j, "notes")));
    cr_assert(json_is_null(json_object_get(j, "batchId")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "CLAIM");
    cr_assert_null(json_object_get(j, "activeKey"), "the active key is the store's business, not the API's");
    json_t *c = json_object_get(j, "claimedRewards");
    cr_assert_eq(json_array_size(c), 2u);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(c, 1), "rewardIndex")), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(c, 0), "value"), "g")), 5);
    json_decref(j);
    rp_request_clear(&r);
}

Test(request, claimed_rewards_round_trip_and_copies_are_deep) {
    rp_request_t r, back, copy;
    sample(&r);
    rp_request_set_notes(&r, "hello");
    rp_request_set_details(&r, json_pack("[{s:s}]", "type", "LEVEL_ACHIEVE"));
    json_t *c = rp_claimed_to_json(&r);
    rp_request_init(&back);
    cr_assert(rp_claimed_from_json(&back, c));
    cr_assert_eq(back.nrewards, 2u);
    cr_assert_str_eq(back.rewards[1].name, "Badge");
    cr_assert(json_equal(back.rewards[0].value, r.rewards[0].value));
    cr_assert_not(rp_claimed_from_json(&back, json_object_get(c, "nope")), "not an array: refused");
    json_decref(c);
    rp_request_init(&copy);
    rp_request_copy(&copy, &r);
    rp_request_clear(&r); /* the copy owns its own values */
    cr_assert_str_eq(copy.notes, "hello");
    cr_assert_eq(json_integer_value(json_object_get(copy.rewards[0].value, "g")), 5);
    cr_assert_eq(json_array_size(copy.failure_details), 1u);
    rp_request_clear(&copy);
    rp_request_clear(&back);
}

Test(request, a_message_carries_its_own_id) {
    rp_request_t r;
    sample(&r);
    json_t *m = rp_request_message(&r, "reward.revoked", "5f00000000000000000000a1:revoked", 1767323047000, "oops");
    cr_assert_str_eq(json_string_value(json_object_get(m, "messageId")), "5f00000000000000000000a1:revoked");
    cr_assert_str_eq(json_string_value(json_object_get(m, "requestId")), "5f00000000000000000000a1");
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "reward.revoked");
    cr_assert_str_eq(json_string_value(json_object_get(m, "reason")), "oops");
    cr_assert_eq(json_array_size(json_object_get(m, "rewards")), 2u);
    json_decref(m);
    m = rp_request_message(&r, "reward.granted", r.id, 1, NULL);
    cr_assert_null(json_object_get(m, "reason"), "a grant has no reason");
    json_decref(m);
    rp_request_clear(&r);
}

Test(request, batch_counts_and_status) {
    rp_batch_t b;
    memset(&b, 0, sizeof b);
    snprintf(b.id, sizeof b.id, "5f00000000000000000000b1");
    b.reason = strdup("launch");
    rp_batch_count(&b, RP_ITEM_SUCCESS, NULL, 3);
    rp_batch_count(&b, RP_ITEM_FAILED, "OUT_OF_STOCK", 2);
    rp_batch_count(&b, RP_ITEM_FAILED, "OUT_OF_STOCK", 1);
    rp_batch_count(&b, RP_ITEM_FAILED, "ALREADY_CLAIMED", 1);
    json_t *j = rp_batch_to_json(&b, true);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "COMPLETED");
    cr_assert_str_eq(json_string_value(json_object_get(j, "batchId")), b.id);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "FAILED")), 4);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "failures"), "OUT_OF_STOCK")), 3);
    json_decref(j);
    rp_batch_count(&b, RP_ITEM_QUEUED, NULL, 1);
    j = rp_batch_to_json(&b, true);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "RUNNING", "any QUEUED item: still running");
    json_decref(j);
    j = rp_batch_to_json(&b, false);
    cr_assert_null(json_object_get(j, "counts"), "lists carry no counts");
    json_decref(j);
    rp_item_status_t st;
    cr_assert(rp_item_status_parse("FAILED", &st) && st == RP_ITEM_FAILED);
    cr_assert_not(rp_item_status_parse("failed", &st));
    rp_batch_clear(&b);
}

/* rp_request_print against jansson printing rp_request_to_json: the same bytes for the sample, for
 * a request with every optional field absent or present, and for texts holding everything jansson
 * escapes (quote, backslash, each control character), what it does not (slash, DEL, UTF-8 of 2,
 * 3 and 4 bytes), and values of every JSON type, reals included. */
static void assert_same_text(char *got, json_t *j) {
    char *want = json_dumps(j, JSON_COMPACT);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    json_decref(j);
}

/* The request, its claimed rewards (the store's column) and its messages (with and without a
 * reason, a time and a processor) each printed as jansson prints their objects. */
static void assert_prints_as_jansson(const rp_request_t *r) {
    json_t *j = rp_request_to_json(r);
    size_t len = 0;
    char *got = rp_request_print(r, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, strlen(got));
    assert_same_text(got, j);
    assert_same_text(rp_claimed_print(r), rp_claimed_to_json(r));
    const char *reason = r->notes ? r->notes : "oops";
    assert_same_text(rp_request_message_print(r, "reward.granted", r->id, r->created_at, NULL),
                     rp_request_message(r, "reward.granted", r->id, r->created_at, NULL));
    assert_same_text(rp_request_message_print(r, "reward.revoked", "x:\"revoked\"", 0, reason),
                     rp_request_message(r, "reward.revoked", "x:\"revoked\"", 0, reason));
}

Test(request, printed_as_jansson_prints_it) {
    rp_request_t r;
    sample(&r);
    assert_prints_as_jansson(&r);
    rp_request_clear(&r);

    rp_request_init(&r); /* everything absent: empty ids, no lines, no times */
    assert_prints_as_jansson(&r);

    sample(&r);
    char odd[64];
    for (int i = 1; i < 32; i++)
        odd[i - 1] = (char)i;
    snprintf(odd + 31, sizeof odd - 31, "\"\\/\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x81.");
    r.status = RP_REQ_REVOKED;
    r.source = RP_SOURCE_BATCH;
    snprintf(r.processor_id, sizeof r.processor_id, "5f00000000000000000000b2");
    snprintf(r.failure_reason, sizeof r.failure_reason, "%.40s", odd + 20);
    snprintf(r.batch_id, sizeof r.batch_id, "5f00000000000000000000c3");
    snprintf(r.period_key, sizeof r.period_key, "W:\t\"x\"");
    rp_request_set_notes(&r, odd);
    rp_request_set_details(&r, json_pack("{s:[i,f,f,b,n,s],s:{}}", "a", -7, 0.1, 1e300, 1, "\n\xe2\x82\xac", "o"));
    snprintf(r.rewards[0].name, sizeof r.rewards[0].name, "%s", odd);
    r.rewards[1].type[0] = '\0';
    json_decref(r.rewards[1].value);
    r.rewards[1].value = json_real(-2.5e-7);
    r.rewards[1].quantity = -9007199254740993LL;
    assert_prints_as_jansson(&r);
    json_decref(r.rewards[1].value);
    r.rewards[1].value = NULL;
    r.processed_at = 0;
    assert_prints_as_jansson(&r);
    rp_request_clear(&r);
}

Test(request, a_text_that_is_not_utf8_is_not_printed) {
    rp_request_t r;
    sample(&r);
    size_t len = 0;
    rp_request_set_notes(&r, "a\xc3(b");
    cr_assert_null(rp_request_print(&r, &len));
    cr_assert_null(rp_request_message_print(&r, "reward.revoked", r.id, 1, r.notes), "nor the message with it");
    char *claimed = rp_claimed_print(&r);
    cr_assert_not_null(claimed, "the rewards do not hold the notes");
    free(claimed);
    rp_request_set_notes(&r, "\xed\xa0\x80"); /* a surrogate */
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, "\xc0\xaf"); /* overlong, in 2, 3 and 4 bytes */
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, "\xe0\x80\xaf");
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, "\xf0\x8f\xbf\xbf");
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, "\xf4\x90\x80\x80"); /* beyond U+10FFFF */
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, "\xf0\x9f\x8e"); /* cut short */
    cr_assert_null(rp_request_print(&r, &len));
    rp_request_set_notes(&r, NULL);
    snprintf(r.rewards[1].name, sizeof r.rewards[1].name, "\xff");
    cr_assert_null(rp_claimed_print(&r));
    cr_assert_null(rp_request_message_print(&r, "reward.granted", r.id, 1, NULL));
    rp_request_clear(&r);
}
