/* Tests workers/reward/outbox_relay.c against a real RabbitMQ: pending outbox rows are published
 * to rewards.events with their message ids, marked only after confirms, and published once. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_broker.h"
#include "reward/outbox_relay.h"
#include "reward/reward_store.h"

Test(outbox_relay, publishes_confirmed_rows_once, .timeout = 60) {
    amqp_connection_state_t c = broker_connect();
    if (!c) cr_skip_test("no RabbitMQ on 127.0.0.1:5672");
    char dir[] = "/tmp/rp-relay-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rp_err_t err;
    rp_reward_store_t *store = rp_reward_store_sqlite_open(dir, 2, &err);
    cr_assert_not_null(store, "%s", err.message);
    char path[128], sql[256];
    snprintf(path, sizeof path, "%s/events.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO outbox (message_id, routing_key, request_id, payload, created_at) "
                 "VALUES ('relay-test-%d-%s', 'reward.granted', 'r%d', '{\"n\":%d}', 1)",
                 i, dir + 13, i, i);
        cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    /* a private queue bound to the exchange sees what the relay publishes */
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("rewards.events"), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    amqp_queue_declare_ok_t *q = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    cr_assert_not_null(q);
    amqp_bytes_t qname = amqp_bytes_malloc_dup(q->queue);
    amqp_queue_bind(c, 1, qname, amqp_cstring_bytes("rewards.events"), amqp_cstring_bytes("reward.#"),
                    amqp_empty_table);

    rp_outbox_relay_t *relay = rp_outbox_relay_new(store, broker_url(), "test-relay", &err);
    cr_assert_not_null(relay);
    int n = 0;
    cr_assert(rp_outbox_relay_pass(relay, &n, &err), "%s", err.message);
    cr_assert_eq(n, 3);
    cr_assert(rp_outbox_relay_pass(relay, &n, &err));
    cr_assert_eq(n, 0, "published rows must not be published again");

    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 3);
    sqlite3_finalize(st);

    amqp_basic_consume(c, 1, qname, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        amqp_envelope_t env;
        struct timeval tv = {5, 0};
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        cr_assert_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
        char want[64];
        snprintf(want, sizeof want, "relay-test-%d-%s", i, dir + 13);
        cr_assert(env.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
        cr_assert_eq(env.message.properties.delivery_mode, 2);
        cr_assert(env.message.properties.message_id.len == strlen(want) &&
                  memcmp(env.message.properties.message_id.bytes, want, strlen(want)) == 0);
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        cr_assert(env.message.body.len == strlen(want) && memcmp(env.message.body.bytes, want, strlen(want)) == 0,
                  "the payload as stored: %.*s", (int)env.message.body.len, (char *)env.message.body.bytes);
        seen++;
        amqp_destroy_envelope(&env);
    }
    cr_assert_eq(seen, 3);
    rp_outbox_relay_free(relay);
    store->ops->free(store);
    sqlite3_close(db);
    amqp_bytes_free(qname);
    broker_close(c);
    snprintf(sql, sizeof sql, "rm -rf %s", dir);
    cr_assert_eq(system(sql), 0);
}

Test(outbox_relay, broker_down_is_an_error_not_a_mark) {
    char dir[] = "/tmp/rp-relay-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rp_err_t err;
    rp_reward_store_t *store = rp_reward_store_sqlite_open(dir, 2, &err);
    char path[128];
    snprintf(path, sizeof path, "%s/events.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO outbox (message_id, routing_key, request_id, payload, created_at) "
                              "VALUES ('down-1', 'reward.granted', 'r1', '{}', 1)",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    rp_outbox_relay_t *relay = rp_outbox_relay_new(store, "amqp://guest:guest@127.0.0.1:1/", "down", &err);
    int n = -1;
    cr_assert_not(rp_outbox_relay_pass(relay, &n, &err));
    cr_assert_eq(n, 0);
    cr_assert_eq(err.kind, RP_ERR_UNAVAILABLE);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox WHERE published_at IS NULL", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 1, "an unconfirmed row must stay pending");
    sqlite3_finalize(st);
    sqlite3_close(db);
    rp_outbox_relay_free(relay);
    store->ops->free(store);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
