/* event_repo.c - what both event repository backends share: the backend picked from the
 * configuration, and the members of the documents they return (see event_repo.h). */
#include "event_repo.h"

#include <string.h>

#include "config.h"
#include "event_repo_mongo.h"

rp_event_repo_t *rp_event_repo_open(const struct rp_config *cfg, int sqlite_conns, rp_err_t *err) {
    if (strcmp(cfg->store, "mongodb") == 0)
        return rp_event_repo_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err);
    return rp_event_repo_sqlite_open(cfg->sqlite_dir, sqlite_conns, err);
}

/* clang-format off */
static const rp_json_field_t def_fields[] = {
    {"id", RP_JSON_STR}, {"name", RP_JSON_STR}, {"type", RP_JSON_STR}, {"value", RP_JSON_OPAQUE},
    {"description", RP_JSON_STR}, {"isActive", RP_JSON_BOOL}, {"referenced", RP_JSON_BOOL},
    {"createdBy", RP_JSON_STR}, {"createdAt", RP_JSON_TIME}, {"updatedAt", RP_JSON_TIME},
};
static const rp_json_field_t event_fields[] = {
    {"id", RP_JSON_STR}, {"title", RP_JSON_STR}, {"description", RP_JSON_STR}, {"startDate", RP_JSON_TIME},
    {"endDate", RP_JSON_TIME}, {"canceledAt", RP_JSON_TIME}, {"conditions", RP_JSON_OPAQUE},
    {"conditionLogic", RP_JSON_STR}, {"claimPeriod", RP_JSON_STR}, {"maxClaims", RP_JSON_INT_OR_NULL},
    {"requiresApproval", RP_JSON_BOOL}, {"dayOffsetMinutes", RP_JSON_INT}, {"createdBy", RP_JSON_STR},
    {"createdAt", RP_JSON_TIME}, {"updatedAt", RP_JSON_TIME},
};
static const rp_json_field_t reward_fields[] = {
    {"rewardIndex", RP_JSON_INT}, {"rewardDefinitionId", RP_JSON_STR}, {"quantity", RP_JSON_INT},
    {"stock", RP_JSON_INT_OR_NULL}, {"stockLeft", RP_JSON_INT_OR_NULL}, {"customData", RP_JSON_OPAQUE},
};
static const rp_json_field_t reward_def_fields[] = {
    {"name", RP_JSON_STR}, {"type", RP_JSON_STR}, {"value", RP_JSON_OPAQUE}, {"isActive", RP_JSON_BOOL},
};
/* clang-format on */

const rp_json_table_t rp_event_def_json = RP_JSON_TABLE(def_fields);
const rp_json_table_t rp_event_json = RP_JSON_TABLE(event_fields);
const rp_json_table_t rp_event_reward_json = RP_JSON_TABLE(reward_fields);
const rp_json_table_t rp_event_reward_def_json = RP_JSON_TABLE(reward_def_fields);

void rp_stored_fact_clear(rp_stored_fact_t *s) {
    if (!s) return;
    json_decref(s->value);
    memset(s, 0, sizeof *s);
}
