/* event_repo.c - picks the event repository's backend from the configuration (see event_repo.h). */
#include "event_repo.h"

#include <string.h>

#include "config.h"
#include "event_repo_mongo.h"

rp_event_repo_t *rp_event_repo_open(const struct rp_config *cfg, int sqlite_conns, rp_err_t *err) {
    if (strcmp(cfg->store, "mongodb") == 0)
        return rp_event_repo_mongo_open(cfg->mongodb_uri, cfg->mongodb_db_name, err);
    return rp_event_repo_sqlite_open(cfg->sqlite_dir, sqlite_conns, err);
}
