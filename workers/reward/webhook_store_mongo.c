/* webhook_store_mongo.c - the webhook store (webhook_store.h) on MongoDB. */
#include "webhook_store.h"

rp_webhook_store_t *rp_webhook_store_mongo_open(const char *uri, const char *db_name, rp_err_t *err) {
    (void)uri;
    (void)db_name;
    rp_err_set(err, RP_ERR_CONFIG, "CONFIG_INVALID", "webhooks on MongoDB: not yet");
    return NULL;
}
