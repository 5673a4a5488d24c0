/* mongo_driver.h - shared by the C side of the MongoDB wire-contract tests: the fixed ids the
 * Python side scripts replies for and checks filters against, and the JSON result helpers. Each
 * driver_*.c runs the scenarios of one store; mongo_driver.c dispatches. */
#ifndef RP_TESTS_CONTRACT_MONGO_DRIVER_H
#define RP_TESTS_CONTRACT_MONGO_DRIVER_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"

#define DB_NAME "rp_contract"
#define USER_ID "5f0000000000000000000001"
#define OPERATOR_ID "5f000000000000000000000f"
#define EVENT_ID "5f00000000000000000000e1"
#define REQUEST_ID "5f00000000000000000000a1"
#define BATCH_ID "5f00000000000000000000b1"
#define DEF0_ID "5f00000000000000000000d0"
#define DEF1_ID "5f00000000000000000000d1"
#define ACTIVE_KEY USER_ID ":" EVENT_ID ":ONCE"
#define NOW_ISO "2026-01-02T03:04:05.000Z"
#define NOW_MS 1767323045000LL
#define NOW_DAY (NOW_MS / 86400000)
#define USER2_ID "5f0000000000000000000002"
#define FAMILY_ID "5f00000000000000000000fa"
#define TOKEN0_ID "5f00000000000000000000c0"
#define TOKEN1_ID "5f00000000000000000000c1"
#define TOKEN1_HASH "11111111111111111111111111111111111111111111111111111111111111aa"

/* {ok: true, ...fields} or {ok: false, error}; takes ownership of fields. */
json_t *result(bool ok, const rp_err_t *e, json_t *fields);
/* A list result {items, more} (takes items). */
json_t *page(bool ok, const rp_err_t *err, json_t *items, bool more);

/* One scenario of a store on uri: its JSON result line, or NULL when the scenario is not this
 * store's (driver_reward.c, driver_event.c, driver_auth.c). */
json_t *contract_reward(const char *uri, const char *scenario);
json_t *contract_event(const char *uri, const char *scenario);
json_t *contract_auth(const char *uri, const char *scenario);
json_t *contract_webhook(const char *uri, const char *scenario);

#endif
